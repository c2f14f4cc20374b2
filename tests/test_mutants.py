"""The rule tests are only as good as the mutants they catch: each mutant below breaks one of DQN's rules in a copy of
a script (an exact replacement, found once), and the rule tests named beside it must fail on that copy. A mutant that
survives fails here under its own name. When a script changes, its mutants change with it (a replacement that no
longer matches fails too)."""

import json
import os
import queue
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, TESTS

TD = "td_target = data.rewards.flatten() + args.gamma * target_max * (1 - data.dones.flatten())"
TARGET_MAX = "target_max, _ = target_network(data.next_observations).max(dim=1)"
COPY = "target_param.data.copy_(args.tau * q_param.data + (1.0 - args.tau) * target_param.data)"
UPDATES = "n_updates = global_step // args.train_frequency - (global_step - n_envs) // args.train_frequency"
ADD = "rb.add(obs, real_next_obs, actions, rewards, terminations, infos)"
GATHER = "old_val = q_network(data.observations).gather(1, data.actions).squeeze(1)"
COMMON = [  # (name, old, new, the rule tests that must catch it), in both scripts
    ("no terminal mask in the TD target", TD, TD.replace(" * (1 - data.dones.flatten())", ""), "td_target"),
    (
        "the mean over next actions, not the max",
        TARGET_MAX,
        "target_max = target_network(data.next_observations).mean(dim=1)",
        "td_target",
    ),
    (
        "bootstrapping from the online network",
        TARGET_MAX,
        TARGET_MAX.replace("target_network(", "q_network("),
        "td_target",
    ),
    ("Q of action 0, not of the action taken", GATHER, GATHER.replace("data.actions)", "0 * data.actions)"), "q_of"),
    ("the target network never updated", COPY, "target_param.data.copy_(target_param.data)", "hard_update"),
    ("--train-frequency ignored", UPDATES, "n_updates = n_envs", "td_target"),
    (
        "greedy and random actions swapped",
        "actions = np.where(explore, actions, q_values.argmax(dim=1).cpu().numpy())",
        "actions = np.where(explore, q_values.argmax(dim=1).cpu().numpy(), actions)",
        "epsilon_zero",
    ),
]
MUTANTS = [
    *[("dqn_atari.py", *m) for m in COMMON],
    (
        "dqn_atari.py",
        "--learning-starts ignored",
        "if global_step > args.learning_starts:",
        "if global_step > 0:",
        "td_target",
    ),
    (
        "dqn_atari.py",
        "truncations stored as dones",
        ADD,
        ADD.replace("terminations,", "terminations | truncations,"),
        "stores_and_logs and Short",
    ),
    (
        "dqn_atari.py",
        "evaluation ignores its greedy actions",
        "action = q_network(torch.as_tensor(obs[None], device=device)).argmax().item()",
        "action = 0",
        "greedy",
    ),
    (
        "dqn_atari.py",
        "epsilon rising from --end-e to --start-e",
        "linear_schedule(args.start_e, args.end_e, decay, global_step)",
        "linear_schedule(args.end_e, args.start_e, decay, global_step)",
        "exploration_schedule",
    ),
    (
        "dqn_atari.py",
        "epsilon's slope without its start",
        "return max(slope * t + start_e, end_e)",
        "return max(slope * t - start_e, end_e)",
        "exploration_schedule",
    ),
    *[("dqn.py", *m) for m in COMMON],
    (
        "dqn.py",
        "--learning-starts ignored",
        "if global_step > args.learning_starts:",
        "if global_step > 0:",
        "td_target",
    ),
    (
        "dqn.py",
        "the stored action is not the action taken",
        ADD,
        ADD.replace("actions,", "(actions + 1) % n_actions,"),
        "q_of",
    ),
    (
        "dqn.py",
        "truncations stored as dones",
        ADD,
        ADD.replace("terminations,", "terminations | truncations,"),
        "only_terminations",
    ),
    ("dqn.py", "tau ignored (a hard copy)", COPY, "target_param.data.copy_(q_param.data)", "soft_update"),
    (
        "dqn.py",
        "the target updated at every update, not once per period",
        "if crossed(global_step, n_envs, args.target_network_frequency):",
        "if True:",
        "soft_update",
    ),
    (
        "dqn.py",
        "one exploration coin for all envs",
        "explore = rng.random(n_envs) < epsilon",
        "explore = np.full(n_envs, rng.random() < epsilon)",
        "own_exploration",
    ),
    (
        "dqn.py",
        "acting ignores epsilon (the logged one is right)",
        "explore = rng.random(n_envs) < epsilon",
        "explore = rng.random(n_envs) < args.end_e",
        "epsilon_that",
    ),
    (
        "dqn.py",
        "a cut episode bootstraps from the next one's first observation",
        'real_next_obs[i] = infos["final_obs"][i]',
        "real_next_obs[i] = next_obs[i]",
        "truncated",
    ),
    # found by benchmark/mutate.py (benchmark/results/mutants/): survivors of the tests before, each killed since
    (
        "dqn.py",
        "a ReLU moved: two linear layers in a row",
        "nn.ReLU(),\n            nn.Linear(120, 84),",
        "nn.Linear(120, 84),\n            nn.ReLU(),",
        "q_network",
    ),
    (
        "dqn.py",
        "evaluation goes on stepping a finished episode",
        'returns.append(float(info["episode"]["r"]))\n            obs, _ = env.reset()',
        'returns.append(float(info["episode"]["r"]))',
        "evaluation_plays",
    ),
    (
        "dqn.py",
        "the evaluation's env left open",
        '    env.close()\n    print(f"eval:',
        '    print(f"eval:',
        "evaluation_plays",
    ),
    (
        "dqn.py",
        "evaluation records a video without --capture-video",
        'args.capture_video, f"{run_name}-eval")',
        'f"{run_name}-eval", args.capture_video)',
        "evaluation_plays",
    ),
    (
        "dqn.py",
        "an episode's return logged as its step, and its step as its return",
        'writer.add_scalar("charts/episodic_return", episode["r"][i], global_step)',
        'writer.add_scalar("charts/episodic_return", global_step, episode["r"][i])',
        "cleanrl_tags",
    ),
    (
        "dqn.py",
        "the mean Q logged at a step of its value",
        'writer.add_scalar("losses/q_values", old_val.mean().item(), global_step)',
        'writer.add_scalar("losses/q_values", global_step, old_val.mean().item())',
        "cleanrl_tags",
    ),
    (
        "dqn_atari.py",
        "a resumed run stacks its envs' new games on the frames saved before",
        "            rb.ended = [True] * args.num_envs  # the envs are reset: each starts a new episode\n",
        "",
        "after_a_resume",
    ),
    (
        "dqn_atari.py",
        "the last frames of ended episodes kept after their transitions left (a leak)",
        "            self.last_frames.pop((n - self.buffer_size, env), None)",
        "            pass",
        "bit_identical",
    ),
    (
        "dqn_atari.py",
        "the soft update subtracts the target's share",
        COPY,
        COPY.replace("+ (1.0 - args.tau)", "- (1.0 - args.tau)"),
        "soft_update",
    ),
    (
        "dqn_atari.py",
        "the losses logged at every update, not every 100 steps",
        "if n_updates and crossed(global_step, n_envs, 100):",
        "if n_updates and crossed(global_step, 100, n_envs):",
        "short_run",
    ),
    (
        "dqn_atari.py",
        "a checkpoint at every step, not at each multiple of --checkpoint-frequency",
        "crossed(global_step, n_envs, args.checkpoint_frequency)",
        "crossed(global_step, args.checkpoint_frequency, n_envs)",
        "test_interruption.py::multiple_of_the_checkpoint and dqn_atari",
    ),
    (
        "dqn_atari.py",
        "--cuda asks for a GPU the machine does not have",
        'torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")',
        'torch.device("cuda" if torch.cuda.is_available() or args.cuda else "cpu")',
        "cuda_flag",
    ),
    (
        "dqn.py",
        "the training envs' seed and index swapped: env 0 is not the one recorded",
        "make_env(args.env_id, args.seed + i, i, args.capture_video, run_name)",
        "make_env(args.env_id, i, args.seed + i, args.capture_video, run_name)",
        "capture_video",
    ),
    (
        "dqn.py",
        "a resume keeps torch's random state as seeded, not as saved",
        "            torch.set_rng_state(torch_state)\n",
        "",
        "test_interruption.py::state_after_resume and dqn.py",
    ),
    (
        "dqn_atari.py",
        "a chunk starts after the last one's last row (which the next transition writes again)",
        "[last for last, _ in chunks[name].values()]",
        "[last + 1 for last, _ in chunks[name].values()]",
        "test_interruption.py::chunks_at_any_moments",
    ),
    (
        "dqn_atari.py",
        "a chunk still needed dropped",
        "if last + len(value) > rb.added}",
        "if last > rb.added}",
        "test_interruption.py::chunks_at_any_moments",
    ),
    (
        "dqn.py",
        "an error in the loop saves nothing",
        "sys.excepthook = on_error",
        "pass",
        "test_interruption.py::error_in_the_users_env",
    ),
    (
        "dqn_atari.py",
        "an error in the loop saves nothing",
        "sys.excepthook = on_error",
        "pass",
        "test_interruption.py::error_in_an_edited_atari",
    ),
    (
        "dqn.py",
        "an extra entry in a checkpoint accepted",
        'problems = [f"{name}.{k} extra" for k in saved if k not in fresh]',
        "problems = []",
        "test_fuzz.py::entry_missing",
    ),
    (
        "dqn_atari.py",
        "an entry missing from a checkpoint accepted",
        'problems += [f"{name}.{k} missing" for k in fresh if k not in saved]',
        "problems += []",
        "test_fuzz.py::entry_missing",
    ),
    (
        "dqn.py",
        "the optimizer's state checked against a fresh optimizer (no entries), not one after an update",
        'trial["optimizer"].step()',
        "pass",
        "test_fuzz.py::entry_missing",
    ),
    (
        "dqn_atari.py",
        "no training video (env 0 not recorded)",
        "make_env(args.env_id, args.seed + i, args.capture_video and i == 0, run_name)",
        "make_env(args.env_id, args.seed + i, False, run_name)",
        "capture_video",
    ),
    (
        "dqn.py",
        "the model card's score without its spread",
        'score = f"{np.mean(returns):.2f} +/- {np.std(returns):.2f}"',
        'score = f"{np.mean(returns):.2f}"',
        "test_sharing.py::upload_model and dqn.py",
    ),
    (
        "dqn.py",
        "a failed push exits as if it went through",
        "push_to_hub(hub_folder(q_network, args, run_dir, returns, protocol), args):\n        sys.exit(1)",
        "push_to_hub(hub_folder(q_network, args, run_dir, returns, protocol), args):\n        pass",
        "test_sharing.py::upload_model and dqn.py",
    ),
]


# A process that imports what every rule test imports, once, then forks a child per mutant to run its rule tests
# (pytest.main): each mutant pays for its tests, not for importing torch. A line in: the mutant's folder, test file,
# -k expression and log file; a line out: the child's pytest exit code.
ZYGOTE = """
import json, os, signal, sys
import gymnasium, numpy, pytest, stable_baselines3, tensorboard, torch
for line in sys.stdin:
    folder, test_file, tests, log = json.loads(line)
    pid = os.fork()
    if pid == 0:
        signal.alarm(600)  # a mutant that hangs its tests is killed (no exit code 1: it fails as surviving)
        os.environ.update(DQN_SCRIPTS=folder, OMP_NUM_THREADS="1")
        os.chdir(folder)
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(out, 1)
        os.dup2(out, 2)
        code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", test_file, "-k", tests])
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(code))
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""


def run_mutant(zygotes, folder, script, name, old, new, tests):
    """Applies the mutant to a copy of the scripts in `folder`, runs its rule tests there: (pytest's exit, output)."""
    os.makedirs(os.path.join(folder, "tests"))
    for s in ("dqn.py", "dqn_atari.py"):
        shutil.copy(os.path.join(ROOT, s), os.path.join(folder, s))
    shutil.copy(os.path.join(TESTS, "tiny_envs.py"), os.path.join(folder, "tests"))  # (tests' subprocesses import it)
    with open(os.path.join(folder, script)) as f:
        source = f.read()
    if source.count(old) != 1:
        return None, f"the mutant '{name}' no longer matches {script}: update it with the script"
    with open(os.path.join(folder, script), "w") as f:
        f.write(source.replace(old, new))
    test_file, _, tests = tests.rpartition("::")  # (a test file of its own, or the script's)
    test_file = os.path.join(TESTS, test_file or ("test_dqn_atari.py" if script == "dqn_atari.py" else "test_dqn.py"))
    log = os.path.join(folder, "pytest.log")
    zygote = zygotes.get()
    try:
        zygote.stdin.write(json.dumps([folder, test_file, tests, log]) + "\n")
        zygote.stdin.flush()
        code = int(zygote.stdout.readline())
    finally:
        zygotes.put(zygote)
    with open(log) as f:
        return code, f"{test_file} -k '{tests}':\n{f.read()[-1500:]}"


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Every mutant's rule tests, two at a time (one per core, one thread each)."""
    from concurrent.futures import ThreadPoolExecutor

    root = tmp_path_factory.mktemp("mutants")
    zygotes = queue.Queue()
    started = []
    for _ in range(2):
        started.append(
            subprocess.Popen(
                [sys.executable, "-c", ZYGOTE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
        )
        zygotes.put(started[-1])
    try:
        with ThreadPoolExecutor(2) as pool:
            runs = {
                m[1] + m[0]: pool.submit(run_mutant, zygotes, str(root / str(i)), *m) for i, m in enumerate(MUTANTS)
            }
            return {key: run.result() for key, run in runs.items()}
    finally:
        for zygote in started:
            zygote.stdin.close()
            zygote.wait(timeout=60)


@pytest.mark.parametrize("script,name", [m[:2] for m in MUTANTS], ids=[f"{m[0]}: {m[1]}" for m in MUTANTS])
def test_the_rule_tests_catch_the_mutant(outcomes, script, name):
    code, output = outcomes[name + script]
    assert code == 1, f"the mutant '{name}' survived (pytest exit {code}) {output}"
