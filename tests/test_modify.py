"""What a researcher changes in a copy of a script, as a user would: the network, the replay memory, the flags. The
checkpoints follow (nothing to keep in step), and what cannot fit is refused with one line."""

import os
import runpy
import shutil
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT, run_dirs, run_script

DUELING = """class QNetwork(nn.Module):
    def __init__(self, obs_dim, n_actions):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(obs_dim, 120), nn.ReLU())
        self.value, self.advantage = nn.Linear(120, 1), nn.Linear(120, n_actions)

    def forward(self, x):
        h = self.body(x)
        advantage = self.advantage(h)
        return self.value(h) + advantage - advantage.mean(dim=1, keepdim=True)


def linear_schedule("""


def edited(workdir, script, *edits):
    """A copy of the script, under its own name in workdir/copy, with each (old, new) replacement made once."""
    with open(os.path.join(ROOT, script)) as f:
        source = f.read()
    for old, new in edits:
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    os.makedirs(os.path.join(workdir, "copy"), exist_ok=True)
    path = os.path.join(workdir, "copy", script)
    with open(path, "w") as f:
        f.write(source)
    return path


def run_copy(path, *flags, cwd):
    result = run_script(path, "--no-cuda", *flags, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result


def in_process(monkeypatch, workdir, path, *flags):
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(sys, "argv", [path, "--no-cuda", *map(str, flags)])
    namespace = runpy.run_path(path, run_name="__main__")
    namespace["run_lock"].close()  # the run is over: its folder is free, as at the end of its process
    return namespace


def tree(path):
    return sorted(os.path.join(d, n) for d, ds, fs in os.walk(path) for n in ds + fs)


def test_a_dueling_q_network_trains_checkpoints_resumes_and_evaluates(workdir):
    start = "class QNetwork(nn.Module):"
    with open(os.path.join(ROOT, "dqn.py")) as f:
        source = f.read()
    old = source[source.index(start) : source.index("def linear_schedule(")]  # only the class changes
    path = edited(workdir, "dqn.py", (old + "def linear_schedule(", DUELING))
    flags = ["--total-timesteps", 1500, "--learning-starts", 500, "--checkpoint-frequency", 500, "--eval-episodes", 2]
    run_copy(path, *flags, cwd=workdir)
    [run_dir] = run_dirs(workdir)
    result = run_copy(path, "--resume", run_dir, "--total-timesteps", 2500, cwd=workdir)
    assert "at step 1,500" in result.stdout and "eval:" in result.stdout
    saved = torch.load(os.path.join(run_dir, "checkpoint", "checkpoint.pt"), weights_only=True)
    assert saved["global_step"] == 2500 and "advantage.weight" in saved["q_network"]


@pytest.mark.parametrize("script", ["dqn.py", "dqn_atari.py"])
def test_a_new_replay_memory_field_is_saved_and_restored_with_no_edit_to_the_checkpoint_code(
    monkeypatch, workdir, script
):
    """A priority per transition, written at its add and back-filled later: a checkpoint saves the whole memory."""
    add = "        rb.add(obs, real_next_obs, actions, rewards, terminations, infos)\n"
    backfill = "        rb.priorities[(rb.pos - 3) % rb.buffer_size] += 0.5  # three transitions back\n"
    if script == "dqn.py":
        edits = [
            (
                "    recent_returns = deque(maxlen=20)\n",
                "    rb.priorities = np.zeros((rb.buffer_size, rb.n_envs), np.float32)\n"
                "    recent_returns = deque(maxlen=20)\n",
            ),
            (add, "        rb.priorities[rb.pos] = global_step\n" + add + backfill),
        ]
    else:
        edits = [
            (
                "        self.dones = np.zeros((self.buffer_size, n_envs), np.float32)\n",
                "        self.dones = np.zeros((self.buffer_size, n_envs), np.float32)\n"
                "        self.priorities = np.zeros((self.buffer_size, n_envs), np.float32)\n",
            ),
            (
                "        self.rewards[self.pos], self.dones[self.pos] = reward, done\n",
                "        self.rewards[self.pos], self.dones[self.pos] = reward, done\n"
                "        self.priorities[self.pos] = 1.0 + self.added\n",
            ),
            (add, add + backfill),
        ]
    flags = "--total-timesteps 900 --learning-starts 300 --buffer-size 600 --checkpoint-frequency 300 --end-e 0.5"
    path = edited(workdir, script, *edits)
    first = in_process(monkeypatch, workdir, path, *flags.split(), "--eval-episodes", 0)["rb"]
    assert (first.priorities > 0).all() and (first.priorities % 1 == 0.5).any(), "written and back-filled"
    [run_dir] = run_dirs(workdir)
    resumed = in_process(monkeypatch, workdir, path, "--resume", run_dir)["rb"]  # nothing left to train
    assert np.array_equal(resumed.priorities, first.priorities)


@pytest.mark.parametrize("optimize", ["", "1"])
def test_a_replay_memory_field_saved_with_another_dtype_is_refused_not_cast(workdir, optimize):
    """A saved array of another dtype is not cast into a changed field in silence: the resume names the field, also
    under `python -O` (no check is an `assert`)."""
    flags = "--total-timesteps 600 --learning-starts 300 --buffer-size 400 --checkpoint-frequency 600 --eval-episodes 0"
    run_copy(os.path.join(ROOT, "dqn_atari.py"), *flags.split(), cwd=workdir)
    [run_dir] = run_dirs(workdir)
    old = "        self.rewards = np.zeros((self.buffer_size, n_envs), np.float32)\n"
    path = edited(workdir, "dqn_atari.py", (old, old.replace("float32", "float64")))
    before = tree(workdir)
    environ = {"PYTHONOPTIMIZE": optimize}
    result = run_script(path, "--resume", run_dir, "--total-timesteps", 900, "--no-cuda", cwd=workdir, env=environ)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "is not a checkpoint of this dqn_atari.py: checkpoint.buffer.rewards is torch.float32" in lines[0], lines
    assert lines[0].endswith("not torch.float64 [400, 1]"), lines
    assert tree(workdir) == before, "nothing written"


def test_a_flag_added_to_args_takes_its_default_on_resume(workdir):
    flags = ["--total-timesteps", 600, "--learning-starts", 300, "--checkpoint-frequency", 600, "--eval-episodes", 0]
    run_copy(os.path.join(ROOT, "dqn.py"), *flags, cwd=workdir)
    [run_dir] = run_dirs(workdir)
    path = edited(
        workdir,
        "dqn.py",
        (
            "    eval_episodes: int = 10\n",
            '    n_step: int = 1\n    """the number of steps of the return"""\n    eval_episodes: int = 10\n',
        ),
    )
    result = run_copy(path, "--resume", run_dir, "--total-timesteps", 1200, cwd=workdir)
    assert "at step 600" in result.stdout and "Traceback" not in result.stderr
    saved = torch.load(os.path.join(run_dir, "checkpoint", "checkpoint.pt"), weights_only=True)
    assert saved["global_step"] == 1200 and saved["args"]["n_step"] == 1


def test_a_flag_removed_from_args_is_dropped_on_resume(workdir):
    flags = ["--total-timesteps", 600, "--learning-starts", 300, "--checkpoint-frequency", 600, "--eval-episodes", 0]
    path = edited(
        workdir,
        "dqn.py",
        (
            "    eval_episodes: int = 10\n",
            '    n_step: int = 1\n    """the number of steps of the return"""\n    eval_episodes: int = 10\n',
        ),
    )
    run_copy(path, *flags, cwd=workdir)  # the checkpoint holds n_step; the script below has no such flag
    [run_dir] = run_dirs(workdir)
    result = run_script("dqn.py", "--resume", run_dir, "--total-timesteps", 900, "--no-cuda", cwd=workdir)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "at step 600" in result.stdout


def test_a_network_that_does_not_fit_is_refused_with_one_line_and_nothing_written(workdir):
    flags = ["--total-timesteps", 600, "--learning-starts", 300, "--checkpoint-frequency", 600, "--eval-episodes", 0]
    run_copy(os.path.join(ROOT, "dqn.py"), *flags, cwd=workdir)
    [run_dir] = run_dirs(workdir)
    path = edited(
        workdir,
        "dqn.py",
        ("nn.Linear(obs_dim, 120),", "nn.Linear(obs_dim, 256),"),
        ("nn.Linear(120, 84),", "nn.Linear(256, 84),"),
    )
    before = tree(workdir)
    result = run_script(path, "--resume", run_dir, "--no-cuda", cwd=workdir)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert (
        "is not a checkpoint of this dqn.py: checkpoint.q_network.network.0.weight is torch.float32 [120, 4]"
        in lines[0]
    )
    assert "not torch.float32 [256, 4]" in lines[0], lines
    assert tree(workdir) == before, "nothing written"
    shutil.rmtree(os.path.join(workdir, "copy"))


@pytest.mark.parametrize("script", ["dqn.py", "dqn_atari.py"])
def test_a_plain_field_of_the_replay_memory_is_restored_and_a_changed_one_refused_by_name(monkeypatch, workdir, script):
    """A float kept by the memory (a prioritized replay's largest priority), with no edit to the checkpoint code."""
    if script == "dqn.py":
        init = (
            "    recent_returns = deque(maxlen=20)\n",
            "    rb.max_priority = 1.0\n    recent_returns = deque(maxlen=20)\n",
        )
        grow = (
            "        rb.add(obs, real_next_obs,",
            "        rb.max_priority += 0.5\n        rb.add(obs, real_next_obs,",
        )
    else:
        init = ("        self.added = 0", "        self.max_priority = 1.0\n        self.added = 0")
        grow = ("        self.added += 1\n", "        self.added += 1\n        self.max_priority += 0.5\n")
    flags = "--total-timesteps 600 --learning-starts 300 --buffer-size 400 --checkpoint-frequency 600 --eval-episodes 0"
    path = edited(workdir, script, init, grow)
    first = in_process(monkeypatch, workdir, path, *flags.split())["rb"]
    assert first.max_priority == 1.0 + 0.5 * 600, "one add per step"
    [run_dir] = run_dirs(workdir)
    resumed = in_process(monkeypatch, workdir, path, "--resume", run_dir)["rb"]  # nothing left to train
    assert resumed.max_priority == first.max_priority
    changed = edited(workdir, script, (init[0], init[1].replace("1.0", "[1.0]")), grow)  # now a list
    before = tree(os.path.join(workdir, "runs"))
    result = run_script(changed, "--resume", run_dir, "--total-timesteps", 900, "--no-cuda", cwd=workdir)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "max_priority" in lines[0], lines
    assert tree(os.path.join(workdir, "runs")) == before, "nothing written"


def test_a_96x96_preprocessing_changes_only_make_env_and_qnetwork_and_resumes(monkeypatch, workdir):
    """The memory's frame shape and its bytes per transition follow the env's observation space."""
    path = edited(
        workdir,
        "dqn_atari.py",
        (
            "gym.wrappers.ReshapeObservation(sb3.WarpFrame(env), (84, 84))",
            "gym.wrappers.ReshapeObservation(sb3.WarpFrame(env, 96, 96), (96, 96))",
        ),
        ("nn.Linear(3136, 512)", "nn.Linear(4096, 512)"),  # 64 x 8 x 8 after the convolutions
    )
    sys.path.insert(0, os.path.dirname(path))
    try:
        module = runpy.run_path(path)  # (not as __main__: its functions only)
    finally:
        sys.path.remove(os.path.dirname(path))
    [problem] = module["check_args"](module["Args"](buffer_size=10**9))
    assert f"needs {10**9 * (96 * 96 + 24) / 2**30:.1f} GiB" in problem, problem
    flags = "--total-timesteps 600 --learning-starts 300 --buffer-size 400 --checkpoint-frequency 600 --eval-episodes 0"
    first = in_process(monkeypatch, workdir, path, *flags.split())["rb"]
    assert first.frames.shape[2:] == (96, 96) and first.frames.any()
    [run_dir] = run_dirs(workdir)
    resumed = in_process(monkeypatch, workdir, path, "--resume", run_dir)["rb"]
    assert np.array_equal(resumed.frames, first.frames) and resumed.added == first.added
