"""Bad input never trains, crashes or writes: flags drawn by hypothesis, each script's own parsing and checks.

The property, for any flags of the right types (tyro refuses ill-typed ones in its own words before the script
runs): either every check passes, or the script exits non-zero with one `script: error:` line per problem on stderr,
no traceback, and no file or folder created. hypothesis draws the values (each field's type plus hostile ones:
0, negative, huge, NaN, +-inf, empty and path-like strings, unknown env ids) with a fixed seed (derandomize), so CI
sees the same draws every time; what it once found is kept below as explicit regression cases.
"""

import math
import os
import sys
from dataclasses import fields

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dqn
import dqn_atari
from conftest import run_script

SCRIPTS = {"dqn.py": dqn, "dqn_atari.py": dqn_atari}
NAMES = ["", ".", "..", "../../x", "a/b", "/tmp/x", "runs", " ", "x" * 300, "ünï", "-", "ok_name"]
PATHS = ["", ".", "..", "nowhere", "runs", "/", "/etc/passwd", "../x", "a/b/checkpoint.pt", "model.pt", "x.pkl"]
ENV_IDS = {
    "dqn.py": [
        "CartPole-v1",
        "Acrobot-v1",
        "CartPol-v1",
        "ALE/Pong-v5",
        "Pendulum-v1",
        "no_such_module:Env-v0",
        "tiny_envs:Image-v0",
        "",
        "/",
        "../CartPole-v1",
    ],
    "dqn_atari.py": [
        "BreakoutNoFrameskip-v4",
        "ALE/Pong-v5",
        "Breakout-v0",
        "CartPole-v1",
        "BreakoutNoFrameskip-v3",
        "",
        "ALE/",
        "../x",
    ],
}
INTS = st.one_of(st.sampled_from([0, -1, 1, 2, 7, 100, 2**31, 10**12, -(10**12)]), st.integers(-(10**6), 10**6))
FLOATS = st.one_of(
    st.sampled_from([0.0, -0.0, -1.0, 1.0, 0.5, 1e-300, 1e300, -1e300, math.nan, math.inf, -math.inf]),
    st.floats(-10, 10),
)


def flag(field, script):
    """A strategy for one `--flag value` (a list of argv words) of this Args field."""
    name = "--" + field.name.replace("_", "-")
    if field.type is bool:
        return st.sampled_from([[name], ["--no-" + name[2:]]])
    if field.name == "env_id":
        values = st.sampled_from(ENV_IDS[script])
    elif field.type is int:
        values = INTS.map(str)
    elif field.type is float:
        values = FLOATS.map(repr)
    elif field.name in ("resume", "eval_checkpoint"):
        values = st.sampled_from(PATHS)
    else:  # the names: exp_name, wandb_project_name, wandb_entity
        values = st.sampled_from(NAMES)
    return values.map(lambda v: [f"{name}={v}"])


def flags(script, only=None):
    """Some of the script's flags (`only`: a subset of field names), each with a drawn value."""
    chosen = [f for f in fields(SCRIPTS[script].Args) if only is None or f.name in only]
    return st.lists(st.sampled_from(chosen), unique_by=lambda f: f.name, max_size=8).flatmap(
        lambda fs: st.tuples(*[flag(f, script) for f in fs]).map(lambda words: [w for ws in words for w in ws])
    )


def tree(path):
    return sorted(os.path.relpath(os.path.join(d, n), path) for d, ds, fs in os.walk(path) for n in ds + fs)


def assert_refused_cleanly(script, stderr):
    lines = stderr.strip().splitlines()
    assert lines and "Traceback" not in stderr, stderr
    assert all(line.startswith(f"{script}: error: ") for line in lines), stderr
    assert len(lines) == len(set(lines)), "one line per problem"


FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_any_flags_pass_every_check_or_are_refused_with_one_line_each_and_nothing_written(
    script, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.pkl").write_bytes(b"\x80\x04K\x01.")  # a pickle where a checkpoint or model could be named
    before = tree(tmp_path)

    @FUZZ
    @given(argv=flags(script))
    def check(argv):
        try:
            args, saved = SCRIPTS[script].parse_args(argv)
        except SystemExit as e:
            assert e.code not in (0, None), argv
            assert_refused_cleanly(script, e.code if isinstance(e.code, str) else capsys.readouterr().err)
        else:  # every check passed: the values are in range
            assert all(math.isfinite(v) for v in vars(args).values() if isinstance(v, float)), argv
            assert not set("/\0:;,#?'") & set(args.exp_name), argv  # (W&B refuses the others in ids)
        assert tree(tmp_path) == before, argv

    check()


SMALL = ["--total-timesteps=300", "--learning-starts=100", "--eval-episodes=1", "--no-cuda"]


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_drawn_flags_as_real_runs_either_train_into_runs_or_write_nothing(script, tmp_path):
    """A bounded sample of draws as real subprocesses (a few steps when the flags pass), so the suite stays short."""
    rng_flags = [
        "seed",
        "gamma",
        "tau",
        "learning_rate",
        "start_e",
        "end_e",
        "exploration_fraction",
        "batch_size",
        "buffer_size",
        "train_frequency",
        "target_network_frequency",
        "exp_name",
        "num_envs",
    ]
    runs = []

    @settings(
        derandomize=True,
        database=None,
        deadline=None,
        max_examples=8 if script == "dqn.py" else 5,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(argv=flags(script, only=rng_flags))
    def check(argv):
        cwd = tmp_path / str(len(runs))
        cwd.mkdir()
        extra = ["--buffer-size=1000"] if script == "dqn_atari.py" and not any("buffer" in a for a in argv) else []
        result = run_script(script, *SMALL, *extra, *argv, cwd=str(cwd), timeout=240)
        runs.append(result.returncode)
        if result.returncode == 0:
            assert set(os.listdir(cwd)) == {"runs"} and len(os.listdir(cwd / "runs")) == 1, argv
        else:
            assert_refused_cleanly(script, result.stderr)
            assert not os.listdir(cwd), argv

    check()
    assert 0 in runs and any(runs), "the sample holds runs that train and runs that are refused"


def test_a_checkpoint_of_a_run_with_a_fractional_start_e_resumes(tmp_path):
    """start_e's default is the int 1: a checkpoint's 0.5 is still a float flag's value (found while fuzzing)."""
    flags = ["--total-timesteps=300", "--learning-starts=100", "--checkpoint-frequency=300", "--eval-episodes=0"]
    assert run_script("dqn.py", *flags, "--start-e=0.5", "--no-cuda", cwd=str(tmp_path)).returncode == 0
    [run] = os.listdir(tmp_path / "runs")
    result = run_script("dqn.py", "--resume", f"runs/{run}", cwd=str(tmp_path))
    assert result.returncode == 0 and "resumed" in result.stdout, result.stderr


REGRESSIONS = [  # found by hand or by the fuzzers above: each is refused with one line and writes nothing
    (
        "dqn.py",
        ["--env-id", "CartPole-v1", "--learning-rate", "inf", "--total-timesteps", 1000, "--learning-starts", 10],
        ["--learning-rate must be in (0, inf), got inf"],
    ),
    (
        "dqn.py",
        ["--env-id", "CartPole-v1", "--exp-name", "../../x", "--total-timesteps", 100, "--learning-starts", 10],
        ["--exp-name must be a short name"],
    ),
    (
        "dqn_atari.py",
        ["--exp-name", "../../x", "--total-timesteps", 100, "--learning-starts", 10, "--buffer-size", 1000],
        ["--exp-name must be a short name"],
    ),
    (
        "dqn.py",
        ["--env-id", "CartPole-v1", "--buffer-size", 10**10, "--total-timesteps", 100, "--learning-starts", 10],
        ["--buffer-size needs"],
    ),
    (
        "dqn.py",
        ["--gamma", "nan", "--tau", "-inf"],
        ["--gamma must be in [0, 1], got nan", "--tau must be in (0, 1], got -inf"],
    ),
    (
        "dqn_atari.py",
        ["--end-e", "nan", "--start-e", "inf"],
        ["--start-e must be in [0, 1], got inf", "--end-e must be in [0, 1], got nan"],
    ),
    ("dqn.py", ["--seed", -1], ["--seed must be in [0, 4294967295]"]),  # NumPy's seed: a traceback after the checks
    ("dqn_atari.py", ["--seed", 2**32], ["--seed must be in [0, 4294967295]"]),
    ("dqn.py", ["--torch-threads", 10**6], ["--torch-threads must be in [0, "]),  # torch crashed (SIGSEGV)
    ("dqn.py", ["--num-envs", 10**6], ["--num-envs must be in [1, 1024], got 1000000"]),  # made envs for hours
    ("dqn_atari.py", ["--exp-name", "x" * 300], ["--exp-name must be a short name"]),  # OSError
]


@pytest.mark.parametrize("script,argv,named", REGRESSIONS, ids=[" ".join(map(str, r[1])) for r in REGRESSIONS])
def test_regressions_are_refused_with_one_line_each_and_nothing_written(script, argv, named, tmp_path):
    result = run_script(script, *argv, "--no-cuda", cwd=str(tmp_path))
    assert result.returncode != 0
    assert_refused_cleanly(script, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == len(named) and all(any(n in line for line in lines) for n in named), lines
    assert not os.listdir(tmp_path)


# ---- damaged checkpoints -----------------------------------------------------------------------------------------

CHECKPOINTED = {  # a finished run with a checkpoint at its last step: a resume has nothing left to train
    "dqn.py": ["--total-timesteps=600", "--learning-starts=100", "--buffer-size=400", "--checkpoint-frequency=300"],
    "dqn_atari.py": [
        "--total-timesteps=300",
        "--learning-starts=100",
        "--buffer-size=200",
        "--checkpoint-frequency=300",
    ],
}
HOSTILE_JSON = [None, -1, 0, 10**18, 1.5, math.nan, "x", "../../etc/passwd", [], {}, True, [1, 2], {"a": 1}]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """{script: a run folder with a real checkpoint}, made once."""
    made = {}
    for script, flags in CHECKPOINTED.items():
        cwd = tmp_path_factory.mktemp(script.replace(".", "_"))
        result = run_script(script, *flags, "--eval-episodes=0", "--no-cuda", cwd=str(cwd))
        assert result.returncode == 0, result.stderr
        [made[script]] = [str(p) for p in (cwd / "runs").iterdir()]
    return made


def containers(tree, where="checkpoint"):
    """(where, container) for every dict and list in a loaded checkpoint, at any level."""
    if isinstance(tree, (dict, list)):
        yield where, tree
        for key, value in tree.items() if isinstance(tree, dict) else enumerate(tree):
            yield from containers(value, f"{where}[{key!r}]")


def damage(draw, folder, other):
    """Damages the checkpoint in `folder` one way, drawn; returns what was done."""
    import shutil

    import torch

    files = sorted(os.listdir(folder))
    name = draw(st.sampled_from(files))
    path = os.path.join(folder, name)
    ways = ["truncate", "garble", "delete", "empty", "swap", "value", "value", "drop", "drop", "add", "add"]
    how = draw(st.sampled_from(ways))
    if name != "checkpoint.pt" and how in ("value", "drop", "add"):  # (a chunk of the memory: bytes only)
        how = "garble"
    if how in ("drop", "add"):  # an entry taken away from, or added to, any dict or list of checkpoint.pt
        state = torch.load(path, weights_only=True)
        where, container = draw(st.sampled_from(list(containers(state))))
        keys = list(container) if isinstance(container, dict) else list(range(len(container)))
        if how == "drop" and keys:
            key = draw(st.sampled_from(keys))
            del container[key]
        else:
            key, value = "extra", draw(st.sampled_from(HOSTILE_JSON + [torch.zeros(2)]))
            if isinstance(container, dict):
                container[key] = value
            else:
                container.append(value)
        torch.save(state, path)
        return f"{where}[{key!r}] {how}"
    if how == "swap":  # the other script's file of the same kind, or the whole other checkpoint
        theirs = [f for f in os.listdir(other) if f.split(".")[0] == name.split(".")[0]]
        if draw(st.booleans()) or not theirs:
            shutil.rmtree(folder)
            shutil.copytree(other, folder)
            return "the other script's checkpoint"
        shutil.copy(os.path.join(other, theirs[0]), path)
        return f"{name} from the other script"
    data = open(path, "rb").read()
    if how == "truncate":
        open(path, "wb").write(data[: draw(st.integers(0, len(data) - 1))])
    elif how == "garble":
        at = draw(st.integers(0, len(data) - 1))
        open(path, "wb").write(data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :])
    elif how == "delete":
        os.remove(path)
    elif how == "empty":
        open(path, "wb").close()
    else:  # a tensor's shape or dtype, or a value that is not a tensor
        tensors = torch.load(path, weights_only=True)
        part = draw(st.sampled_from(sorted(tensors)))
        if isinstance(tensors[part], dict) and tensors[part] and part != "optimizer":
            key = draw(st.sampled_from(sorted(tensors[part])))
            t = tensors[part][key]
            tensors[part][key] = draw(
                st.sampled_from(
                    [t[:1], t.double(), t.flatten(), t.int(), "x", None] if torch.is_tensor(t) else HOSTILE_JSON
                )
            )
        else:
            tensors[part] = draw(st.sampled_from([torch.zeros(3), "x", None, {}]))
        torch.save(tensors, path)
        return f"{name}: {part} changed"
    return f"{name} {how}"


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_a_damaged_checkpoint_is_loaded_or_refused_with_one_line_and_nothing_written(
    script, checkpoints, tmp_path, monkeypatch, capsys
):
    import runpy
    import shutil

    from conftest import ROOT

    other = os.path.join(checkpoints["dqn_atari.py" if script == "dqn.py" else "dqn.py"], "checkpoint")
    count = [0]
    modes = ["--resume", "--eval-checkpoint"]

    @settings(
        derandomize=True,
        database=None,
        deadline=None,
        max_examples=30,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(draw=st.data(), mode=st.sampled_from(modes))
    def check(draw, mode):
        count[0] += 1
        cwd = tmp_path / str(count[0])
        run_dir = str(cwd / "runs" / os.path.basename(checkpoints[script]))
        shutil.copytree(checkpoints[script], run_dir)
        what = damage(draw.draw, os.path.join(run_dir, "checkpoint"), other)
        before = tree(run_dir)
        argv = [mode, run_dir] + ([] if mode == "--resume" else ["--eval-episodes=1", "--start-e=1", "--end-e=1"])
        monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, "argv", [script, *argv, "--no-cuda"] if mode != "--resume" else [script, *argv])
        try:
            runpy.run_path(os.path.join(ROOT, script), run_name="__main__")
        except SystemExit as e:
            if e.code not in (0, None):
                assert_refused_cleanly(script, e.code if isinstance(e.code, str) else capsys.readouterr().err)
                assert len(str(e.code).splitlines()) == 1, (what, e.code)
                assert tree(run_dir) == before, what
        capsys.readouterr()

    check()


def drop(*keys):
    def edit(state):
        for key in keys[:-1]:
            state = state[key]
        del state[keys[-1]]

    return edit


def add(*keys, value=1):
    def edit(state):
        for key in keys[:-1]:
            state = state[key]
        state[keys[-1]] = value

    return edit


ENTRIES = [  # (script, an edit of checkpoint.pt, the words of the one line that refuses it; the last three: chunks)
    ("dqn.py", drop("args"), "checkpoint.args missing"),
    ("dqn.py", drop("global_step"), "checkpoint.global_step is None"),
    ("dqn.py", drop("rng"), "checkpoint.rng missing"),
    ("dqn.py", add("extra"), "checkpoint.extra extra"),
    ("dqn.py", drop("optimizer", "state", 0, "exp_avg"), "checkpoint.optimizer.state[0].exp_avg missing"),
    ("dqn.py", add("optimizer", "state", 0, "extra"), "checkpoint.optimizer.state[0].extra extra"),
    ("dqn.py", drop("q_network", "network.4.bias"), "checkpoint.q_network.network.4.bias missing"),
    ("dqn.py", add("buffer", "priorities", value=0.5), "checkpoint.buffer.priorities extra"),
    ("dqn.py", add("rng", 2, value=[1, 2]), "checkpoint.rng[2] is list of 2"),
    ("dqn_atari.py", drop("buffer"), "checkpoint.buffer missing"),
    ("dqn_atari.py", drop("buffer", "last_frames"), "checkpoint.buffer.last_frames missing"),
    ("dqn_atari.py", drop("chunks", "frames"), "checkpoint.chunks.frames missing"),
    ("dqn_atari.py", drop("rng", 3, "state", "inc"), "checkpoint.rng[3].state.inc missing"),
    ("dqn_atari.py", add("target_network", "network.0.weight", value=0), "checkpoint.target_network.network.0.weight"),
    ("dqn_atari.py", add("exploration_steps", value="x"), "checkpoint.exploration_steps is 'x'"),
    ("dqn_atari.py", lambda state: state["chunks"]["frames"].pop(min(state["chunks"]["frames"])), "does not follow"),
    (
        "dqn_atari.py",
        lambda state: state["chunks"]["frames"].pop(max(state["chunks"]["frames"])),
        "the chunks of frames",
    ),
    ("dqn_atari.py", lambda state: state["chunks"]["frames"].update({0: [0, "../../x.npy"]}), "does not follow"),
]


@pytest.mark.parametrize("script,edit,named", ENTRIES, ids=[f"{e[0]}: {e[2]}" for e in ENTRIES])
def test_a_checkpoint_with_an_entry_missing_added_or_mistyped_is_refused_naming_it(
    script, edit, named, checkpoints, tmp_path, monkeypatch
):
    import runpy
    import shutil

    import torch

    from conftest import ROOT

    run_dir = str(tmp_path / "runs" / "run")
    shutil.copytree(checkpoints[script], run_dir)
    path = os.path.join(run_dir, "checkpoint", "checkpoint.pt")
    state = torch.load(path, weights_only=True)
    edit(state)
    torch.save(state, path)
    before = tree(run_dir)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [script, "--resume", run_dir])
    with pytest.raises(SystemExit) as refused:
        runpy.run_path(os.path.join(ROOT, script), run_name="__main__")
    [line] = str(refused.value.code).splitlines()
    assert line.startswith(f"{script}: error: ") and str(path) in line and named in line, line
    assert tree(run_dir) == before, "nothing written"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
