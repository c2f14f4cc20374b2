"""Generated mutants of both scripts, and which of them the tests catch.

    python benchmark/mutate.py                          # both scripts, every mutant, report under benchmark/results/
    python benchmark/mutate.py --script dqn.py --list   # only print the mutants
    python benchmark/mutate.py --only 12 40             # only these mutants (numbers from --list), one script

Each mutant changes one place in a copy of a script, in the lines a researcher relies on: `QNetwork`,
`linear_schedule`, `crossed`, `evaluate`, `FrameReplayBuffer`, and in the main block the seeding, the networks and
optimizer, the checkpoint and the resume's restore, and the whole training loop (acting, env step, store, sample, TD
target, loss, optimizer step, target update, the logged tags, periodic checkpoints). Console output (prints, the SPS
tag) and input checks (`check_args`, refusals by `fail`) are left out: other tests pin those.
Operators, one change each: a statement replaced by `pass`; a comparison flipped (< and <=, > and >=, == and !=, is
and is not, in and not in); an arithmetic operator swapped (+ and -, * and /, // and /, % and //); `and` and `or`
swapped; `not` or unary minus removed; a number changed (n to n + 1, x to 2x for floats, 0.0 to 1.0); True and False
swapped; a call removed (`x.f(...)` to `x`, `f(x)` to `x`); two adjacent positional arguments swapped.

Why our own mutator: mutmut 3 mutates function bodies only (each function is copied behind a trampoline), and the
training loop of a CleanRL-style script is module-level code under `if __name__ == "__main__":`; cosmic-ray imports
the target as a module by name. Here a mutant is a copy of the folder with one edited span of source, so the tests
run the mutated script exactly as they run the real one (in-process with runpy, or as a subprocess).

The tests a mutant meets: the script's own test file, its learning tests and its resume tests, fastest first, stopping
at the first failure (`pytest -x`); the tests of videos, --cuda without CUDA, other envs, --eval-checkpoint and the
run's lock run after the others, only for the mutants those leave alive and nobody listed as equivalent. Not run: the
tests of flags and files refused at the start and of --help, which end before any mutated line runs. Each mutant runs
in a child forked from this process (torch and the envs already imported), two at a time, one thread each. Outcome:
killed (a test failed), timeout (over 3x the unmutated run: killed), or survived. A survivor must be caught by a new
rule test or be listed in EQUIVALENT below with the reason it cannot change behaviour.
"""

import argparse
import ast
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REGIONS = ("QNetwork", "linear_schedule", "crossed", "evaluate", "FrameReplayBuffer")
MAIN_FROM = "random.seed(args.seed)"  # the main block's mutated statements start here and end with the loop
SKIP_STATEMENTS = re.compile(
    r"print\(|last_print|steps_per_second|sps = |n_envs, 10_000\)|charts/SPS|wandb|lock_run_folder|run_dir = |"
    r"run_name = |SummaryWriter|add_text|table = |mismatches\(|eval_checkpoint|signal\.signal|fail\(|sync_tensorboard|"
    r"if not saved:|recent_returns"
)
NOT_RUN = re.compile(  # tests that end before any mutated line runs: flags and files refused at the start, --help
    r"bad_input|every_problem|help_says|published_defaults|crafted_pickle|not_a_checkpoint|refused|memory_preflight"
)
LAST = re.compile(  # run only for the mutants the other tests leave alive
    r"capture_video|cuda_flag|other_classic|another_env|two_resumes|killed_run_frees|eval_checkpoint|"
    r"cannot_be_written|kill_during_a_save"
)
MODULES = {"np", "torch", "F", "nn", "gym", "os", "random", "sys", "sb3", "glob", "time", "signal", "fcntl"}
COMPARE = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq}
COMPARE |= {ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
ARITHMETIC = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div}
ARITHMETIC |= {ast.Mod: ast.FloorDiv}
EQUIVALENT = {  # (scripts, line, mutated line): why it cannot change what the script computes, stores or logs
    (
        "dqn.py dqn_atari.py",
        'writer.add_scalar("losses/q_values", old_val.mean().item(), global_step)',
        'writer.add_scalar("losses/q_values", (old_val.mean()), global_step)',
    ): "add_scalar takes a one-element tensor as its value",
    (
        "dqn.py dqn_atari.py",
        "return max(slope * t + start_e, end_e)",
        "return (max(end_e, slope * t + start_e))",
    ): "max() is symmetric",
    (
        "dqn.py dqn_atari.py",
        "return step // every > (step - n_steps) // every",
        "return step // every > ((step - n_steps) / every)",
    ): "for an integer k, k > x exactly when k > floor(x): the same steps cross",
    (
        "dqn.py",
        'env = make_env(args.env_id, args.seed + 10_000, 0, args.capture_video, f"{run_name}-eval")()',
        'env = make_env(args.env_id, args.seed + (10001), 0, args.capture_video, f"{run_name}-eval")()',
    ): "make_env's seed only seeds the action space, and evaluate draws its random actions from rng, never from it",
    (
        "dqn.py dqn_atari.py",
        "obs, _ = env.reset(seed=args.seed + 10_000)",
        "obs, _ = env.reset(seed=args.seed + (10001))",
    ): "which seed the evaluation's env starts from is a convention, no rule: any seed apart from the training envs'",
    (
        "dqn.py",
        "q_values = q_network(torch.Tensor(obs[None]).to(device))",
        "q_values = q_network((torch.Tensor(obs[None])))",
    ): "the device is the CPU where the tests run; on a GPU this fails at once, not in silence",
    (
        "dqn.py",
        "action = rng.integers(env.action_space.n) if rng.random() < args.end_e else q_values.argmax().item()",
        "action = rng.integers(env.action_space.n) if (rng.random() <= args.end_e) else q_values.argmax().item()",
    ): "rng.random() equals end_e with probability about 2**-53",
    (
        "dqn.py",
        'returns.append(float(info["episode"]["r"]))',
        "returns.append((info['episode']['r']))",
    ): "float() only turns NumPy's scalar into Python's: the same value is logged and printed",
    (
        "dqn.py dqn_atari.py",
        "random.seed(args.seed)",
        "pass",
    ): "nothing in the run draws from Python's random (seeded as CleanRL does, for a user's own code)",
    (
        "dqn_atari.py",
        "torch.backends.cudnn.deterministic = args.torch_deterministic",
        "pass",
    ): "cuDNN is not used on the CPU where the tests run; the flag only matters on a GPU",
    (
        "dqn.py dqn_atari.py",
        "torch.set_num_threads(args.torch_threads)",
        "pass",
    ): "the torch thread count changes speed and the order of float sums, not what is computed",
    (
        "dqn.py",
        "q_network = QNetwork(obs_dim, n_actions).to(device)",
        "q_network = (QNetwork(obs_dim, n_actions))",
    ): "the device is the CPU where the tests run; on a GPU the first forward pass fails at once",
    (
        "dqn.py dqn_atari.py",
        "optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate, fused=True)",
        "optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate, fused=(False))",
    ): "the fused and the for-each Adam kernels compute the same update (tests/test_learning.py checks it)",
    (
        "dqn.py",
        "target_network = QNetwork(obs_dim, n_actions).to(device)",
        "target_network = (QNetwork(obs_dim, n_actions))",
    ): "the device is the CPU where the tests run; on a GPU the first forward pass fails at once",
    (
        "dqn.py",
        "obs_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)",
        "obs_space = gym.spaces.Box((np.inf), np.inf, (obs_dim,), np.float32)",
    ): "SB3's buffer reads only the space's shape and dtype, not its bounds",
    (
        "dqn.py",
        "setattr(rb, k, v.numpy().copy() if torch.is_tensor(v) else v)",
        "setattr(rb, k, (v.numpy()) if torch.is_tensor(v) else v)",
    ): "torch.load(mmap=True) maps the file privately (copy on write): the same values; writes never reach the file",
    (
        "dqn.py dqn_atari.py",
        "global_step = iteration * n_envs",
        "pass",
    ): "global_step already equals iteration * n_envs: it starts at start_step and grows by n_envs each iteration",
    (
        "dqn.py dqn_atari.py",
        "explore = rng.random(n_envs) < epsilon",
        "explore = (rng.random(n_envs) <= epsilon)",
    ): "a uniform draw equals epsilon with probability about 2**-53",
    (
        "dqn.py",
        "q_values = q_network(torch.as_tensor(obs, device=device).float())",
        "q_values = q_network((torch.as_tensor(obs, device=device)))",
    ): "classic-control observations are float32 already; a float64 env fails at once in the first Linear layer",
    (
        "dqn.py dqn_atari.py",
        "actions = np.where(explore, actions, q_values.argmax(dim=1).cpu().numpy())",
        "actions = np.where(explore, actions, (q_values.argmax(dim=1).cpu()))",
    ): "on the CPU .cpu() is a no-op; on a GPU np.where on a CUDA tensor fails at once",
    (
        "dqn.py dqn_atari.py",
        "actions = np.where(explore, actions, q_values.argmax(dim=1).cpu().numpy())",
        "actions = np.where(explore, actions, (q_values.argmax(dim=1)).numpy())",
    ): "np.where reads a CPU tensor as an array; on a GPU it fails at once",
    (
        "dqn_atari.py",
        'def __init__(self, buffer_size, observation_space, action_space, device="cpu", n_envs=1):',
        'def __init__(self, buffer_size, observation_space, action_space, device="cpu", n_envs=(2)):',
    ): "the script always passes n_envs; a caller who does not, with one env, gets a shape error at the first add",
    (
        "dqn_atari.py",
        "self.buffer_size = max(buffer_size // n_envs, 1)",
        "self.buffer_size = (max(1, buffer_size // n_envs))",
    ): "max() is symmetric",
    (
        "dqn_atari.py",
        "rows = self.buffer_size + 4  # the oldest observation's 3 earlier frames, the newest next frame",
        "rows = self.buffer_size + (5)  # the oldest observation's 3 earlier frames, the newest next frame",
    ): "one spare row: every row is addressed modulo the number of rows, so the same frames are read",
    (
        "dqn_atari.py",
        "self.added = 0  # transitions added so far",
        "self.added = (1)  # transitions added so far",
    ): "every transition's number and row shift by one; rows are addressed modulo their number: the same samples",
    (
        "dqn_atari.py",
        "self.ended = [True] * n_envs  # whose episode ended at the last transition",
        "self.ended = [(False)] * n_envs  # whose episode ended at the last transition",
    ): "at the first add, `first` is all zeros: the first episode starts at transition 0 either way",
    (
        "dqn_atari.py",
        "stack_rows = np.maximum(n[:, None] + np.arange(-3, 2), self.first[n % rows, env_inds][:, None])",
        "stack_rows = (np.maximum(self.first[n % rows, env_inds][:, None], n[:, None] + np.arange(-3, 2)))",
    ): "np.maximum is symmetric",
    (
        "dqn_atari.py",
        "dones=self.to_torch(self.dones[batch_inds, env_inds].reshape(-1, 1)),",
        "dones=self.to_torch(self.dones[batch_inds, env_inds].reshape(-(2), 1)),",
    ): "NumPy infers any negative size in reshape, as it does -1",
    (
        "dqn_atari.py",
        "rewards=self.to_torch(self.rewards[batch_inds, env_inds].reshape(-1, 1)),",
        "rewards=self.to_torch(self.rewards[batch_inds, env_inds].reshape(-(2), 1)),",
    ): "NumPy infers any negative size in reshape, as it does -1",
    (
        "dqn_atari.py",
        'env = make_env(args.env_id, args.seed + 10_000, args.capture_video, f"{run_name}-eval")()',
        'env = make_env(args.env_id, args.seed + (10001), args.capture_video, f"{run_name}-eval")()',
    ): "make_env's seed only seeds the action space, and evaluate draws its random actions from rng, never from it",
    (
        "dqn_atari.py",
        "if rng.random() < args.end_e:",
        "if (rng.random() <= args.end_e):",
    ): "rng.random() equals end_e with probability about 2**-53",
    (
        "dqn_atari.py",
        "action = q_network(torch.as_tensor(obs[None], device=device)).argmax().item()",
        "action = (q_network(torch.as_tensor(obs[None], device=device)).argmax())",
    ): "the emulator takes the one-element CPU tensor as the same action; on a GPU it fails at once",
    (
        "dqn_atari.py",
        'scores.append(float(info["episode"]["r"]))',
        "scores.append((info['episode']['r']))",
    ): "float() only turns NumPy's scalar into Python's: the same value is logged and printed",
    (
        "dqn_atari.py",
        "q_network = QNetwork(n_actions).to(device)",
        "q_network = (QNetwork(n_actions))",
    ): "the device is the CPU where the tests run; on a GPU the first forward pass fails at once",
    (
        "dqn_atari.py",
        "target_network = QNetwork(n_actions).to(device)",
        "target_network = (QNetwork(n_actions))",
    ): "the device is the CPU where the tests run; on a GPU the first forward pass fails at once",
}


def equivalent(script, mutant):
    return any(script in s.split() and (w, n) == (mutant["was"], mutant["now"]) for s, w, n in EQUIVALENT)


def regions(tree):
    """The statements whose lines are mutated."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in REGIONS:
            yield node
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            starts = [i for i, s in enumerate(node.body) if ast.unparse(s) == MAIN_FROM]
            ends = [i for i, s in enumerate(node.body) if isinstance(s, ast.For)]
            yield from node.body[starts[0] : ends[0] + 1]


def skipped(node, source_lines):
    if isinstance(node, ast.stmt):
        return bool(SKIP_STATEMENTS.search(source_lines[node.lineno - 1]))
    return isinstance(node, (ast.JoinedStr, ast.Slice)) or (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
    )


def changes(node):
    """(description, replacement node or source text) for each mutation of this node alone."""
    if isinstance(node, (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Return, ast.Break)):
        if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):  # (not a docstring)
            yield "statement deleted", "pass"
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            ops = [*node.ops]
            ops[i] = COMPARE[type(op)]()
            yield "comparison flipped", ast.Compare(node.left, ops, node.comparators)
    if isinstance(node, ast.BinOp) and type(node.op) in ARITHMETIC:
        yield "operator swapped", ast.BinOp(node.left, ARITHMETIC[type(node.op)](), node.right)
    if isinstance(node, ast.BoolOp):
        yield "and/or swapped", ast.BoolOp(ast.Or() if isinstance(node.op, ast.And) else ast.And(), node.values)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        yield "unary operator removed", node.operand
    if isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
        value = node.value
        if type(value) is bool:
            yield "constant changed", ast.Constant(not value)
        else:
            yield "constant changed", ast.Constant(value + 1 if type(value) is int else (value * 2 or 1.0))
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute) and not (isinstance(func.value, ast.Name) and func.value.id in MODULES):
            yield "call removed", func.value
        if isinstance(func, ast.Name) and len(node.args) == 1 and not node.keywords:
            yield "call removed", node.args[0]
        for i in range(len(node.args) - 1):
            args = [*node.args]
            args[i], args[i + 1] = args[i + 1], args[i]
            if ast.unparse(args[i]) != ast.unparse(args[i + 1]):
                yield "arguments swapped", ast.Call(func, args, node.keywords)


def mutants(script):
    """Every mutant of the script: dicts of number, line, description, the mutated line's text, and the source."""
    with open(os.path.join(ROOT, script), "rb") as f:
        source = f.read()
    lines = source.decode().splitlines()
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    found, seen = [], {source}
    for top in regions(ast.parse(source)):
        for node in ast.walk(top):
            if skipped(node, lines) or not hasattr(node, "end_col_offset"):
                continue
            if any(skipped(parent, lines) for parent in parents(top, node)):
                continue
            begin = starts[node.lineno - 1] + node.col_offset
            end = starts[node.end_lineno - 1] + node.end_col_offset
            for description, new in changes(node):
                text = new if isinstance(new, str) else f"({ast.unparse(new)})"
                mutated = source[:begin] + text.encode() + source[end:]
                if mutated in seen:
                    continue
                seen.add(mutated)
                try:
                    compile(mutated, script, "exec")
                except SyntaxError:
                    continue
                changed = mutated.decode().splitlines()[node.lineno - 1].strip()
                found.append(
                    dict(
                        line=node.lineno,
                        description=description,
                        was=lines[node.lineno - 1].strip(),
                        now=changed,
                        source=mutated,
                    )
                )
    found.sort(key=lambda m: m["line"])
    for number, m in enumerate(found):
        m["number"] = number
    return found


def parents(top, target):
    """The nodes from `top` down to `target`'s parent."""
    path = []

    def visit(node):
        if node is target:
            return True
        path.append(node)
        if any(visit(child) for child in ast.iter_child_nodes(node)):
            return True
        path.pop()
        return False

    visit(top)
    return path


def folder_with(scratch, name, script, source):
    """A copy of the scripts and the tests in scratch/name, with `script` replaced by `source`."""
    folder = os.path.join(scratch, name)
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(os.path.join(ROOT, "tests"), os.path.join(folder, "tests"), ignore=shutil.ignore_patterns("__py*"))
    for s in ("dqn.py", "dqn_atari.py"):
        shutil.copy(os.path.join(ROOT, s), os.path.join(folder, s))
    with open(os.path.join(folder, script), "wb") as f:
        f.write(source)
    return folder


def start(folder, pytest_args, log):
    """Forks a child that runs pytest on the folder's copy in a process group of its own; returns its pid."""
    pid = os.fork()
    if pid:
        return pid
    code = 3
    try:
        os.setsid()
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.environ["DQN_SCRIPTS"] = folder
        os.chdir(folder)
        import pytest

        code = pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:randomly", *pytest_args])
    finally:
        os._exit(int(code))


def run_all(jobs, workers, timeout, on_done=lambda key, result: None):
    """Runs (key, folder, pytest args, log) jobs, `workers` at a time: {key: (exit code or "timeout", seconds)}."""
    pending, running, results = list(jobs), {}, {}
    while pending or running:
        while pending and len(running) < workers:
            key, folder, pytest_args, log = pending.pop(0)
            running[start(folder, pytest_args, log)] = (key, time.time())
        time.sleep(0.05)
        for pid, (key, began) in list(running.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            if not done and time.time() - began > timeout:
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                results[key] = ("timeout", time.time() - began)
            elif done:
                results[key] = (os.waitstatus_to_exitcode(status), time.time() - began)
            if done or key in results:
                del running[pid]
                on_done(key, results[key])
    return results


def test_ids(script, junit):
    """The script's tests from an unmutated run's JUnit report, fastest first, in two tiers (the second, LAST,
    only for the first's survivors), and each tier's seconds."""
    other = "dqn_atari.py" if script == "dqn.py" else "dqn.py"
    tiers = ([], [])
    for case in ET.parse(junit).iter("testcase"):
        module, name = case.get("classname").rsplit(".", 1)[-1], case.get("name")
        if f"[{other}" in name or (module == "test_interruption" and script == "dqn_atari.py" and "[" not in name):
            continue
        if NOT_RUN.search(name):
            continue
        tiers[bool(LAST.search(name))].append((float(case.get("time")), f"tests/{module}.py::{name}"))
    return [([t for _, t in sorted(tier)], sum(s for s, _ in tier)) for tier in tiers]


def run_tiers(script, found, tiers, scratch, workers):
    """Each tier's tests on the mutants that survived the tiers before it: {number: (exit code or "timeout", s)}."""
    results, alive = {}, found
    for tier, (tests, seconds) in enumerate(tiers):
        # Outcomes so far, one JSON line per mutant, keyed by the mutant's text: a stopped run started again goes
        # on where it was. A killed mutant stays killed (tests are only added); a survivor meets the tests again
        # unless it is listed in EQUIVALENT.
        progress = os.path.join(scratch, f"tier{tier}.jsonl")
        known = {}
        if os.path.exists(progress):
            with open(progress) as f:
                known = {r["key"]: tuple(r["result"]) for r in map(json.loads, f)}
        keys = {m["number"]: hashlib.sha1(m["source"]).hexdigest() for m in alive}
        done = {}  # this tier's outcomes
        for m in alive:  # kept: killed ones, and survivors listed as equivalent (no correct test can kill them)
            result = known.get(keys[m["number"]])
            if result and (result[0] != 0 or equivalent(script, m)):
                done[m["number"]] = result
            elif tier and equivalent(script, m):  # it survived the first tier, whose tests it was listed against
                done[m["number"]] = (0, 0.0)
        jobs = []
        for m in alive:
            if m["number"] in done:
                continue
            folder = folder_with(scratch, str(m["number"]), script, m["source"])
            jobs.append((m["number"], folder, ["-x", *tests], os.path.join(scratch, f"{m['number']}.log")))

        def record(number, result):
            with open(progress, "a") as f:
                f.write(json.dumps(dict(key=keys[number], result=result)) + "\n")
            print(f"  #{number}: {result[0]} in {result[1]:.0f} s", flush=True)

        done |= run_all(jobs, workers, timeout=3 * seconds + 60, on_done=record)
        results |= done
        alive = [m for m in alive if done[m["number"]][0] == 0]
        print(f"{script}: {len(alive)} of {len(found)} survive {len(tests)} tests", flush=True)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--script", choices=["dqn.py", "dqn_atari.py"], action="append")
    parser.add_argument("--list", action="store_true", help="only print the mutants")
    parser.add_argument("--only", type=int, nargs="*", help="only these mutant numbers")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scratch", default="/tmp/dqn-mutants")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmark", "results", "mutants"))
    args = parser.parse_args()
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    for script in args.script or ["dqn.py", "dqn_atari.py"]:
        found = [m for m in mutants(script) if args.only is None or m["number"] in args.only]
        if args.list:
            for m in found:
                print(f"{m['number']:4} {script}:{m['line']} {m['description']}: {m['now']}")
            continue
        import gymnasium  # noqa: F401  (imported once here, so each forked child starts with them loaded)
        import pytest  # noqa: F401
        import stable_baselines3  # noqa: F401
        import torch  # noqa: F401
        from tensorboard.backend.event_processing import event_accumulator  # noqa: F401

        scratch = os.path.join(args.scratch, script)
        os.makedirs(scratch, exist_ok=True)
        with open(os.path.join(ROOT, script), "rb") as f:
            folder = folder_with(scratch, "unmutated", script, f.read())
        files = ["tests/test_dqn_atari.py" if script == "dqn_atari.py" else "tests/test_dqn.py"]
        files += ["tests/test_learning.py", "tests/test_interruption.py"]
        junit = os.path.join(scratch, "unmutated.xml")
        ((code, _),) = run_all([(0, folder, [*files, f"--junitxml={junit}"], junit + ".log")], 1, 3600).values()
        if code != 0:
            sys.exit(f"the unmutated {script} fails its tests: see {junit}.log")
        tiers = test_ids(script, junit)
        print(
            f"{script}: {len(found)} mutants; tests: {len(tiers[0][0])} then {len(tiers[1][0])} "
            f"({tiers[0][1]:.0f} s and {tiers[1][1]:.0f} s unmutated)",
            flush=True,
        )
        results = run_tiers(script, found, tiers, scratch, args.workers)
        tests = tiers[0][0] + tiers[1][0]
        report(script, found, results, tests, scratch, args.out)


def report(script, found, results, tests, scratch, out):
    """Writes the outcome of each mutant (JSON) and a summary with every survivor (Markdown)."""
    os.makedirs(out, exist_ok=True)
    rows = []
    for m in found:
        code, seconds = results[m["number"]]
        if code == 0:
            outcome = "equivalent" if equivalent(script, m) else "survived"
        else:
            outcome = "timeout" if code == "timeout" else "killed" if code == 1 else f"error {code}"
            with open(os.path.join(scratch, f"{m['number']}.log")) as f:
                failed = re.findall(r"^FAILED (\S+)", f.read(), re.M)
            outcome += f" by {failed[0]}" if failed else ""
        rows.append(
            {k: m[k] for k in ("number", "line", "description", "was", "now")} | dict(outcome=outcome, seconds=seconds)
        )
    name = script.replace(".py", "")
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(dict(script=script, tests=tests, mutants=rows), f, indent=1)
    counts = {}
    for r in rows:
        kind = r["outcome"].split()[0]
        counts[kind] = counts.get(kind, 0) + 1
    print(f"{script}: {len(rows)} mutants: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    for r in rows:
        if r["outcome"] in ("survived", "equivalent") or r["outcome"].startswith("error"):
            print(f"  {r['outcome']}: #{r['number']} line {r['line']} {r['description']}: {r['now']}")


if __name__ == "__main__":
    main()
