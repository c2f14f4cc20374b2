"""Both scripts: Ctrl-C and SIGTERM save and exit, checkpoints are atomic and safe to load, runs resume, saved agents evaluate."""
import errno
import glob
import json
import os
import pickle
import random
import runpy
import signal
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import ROOT, TESTS, run_dirs, run_script, scalars

FLAGS = {  # short runs that learn from early on
    "dqn.py": ["--learning-starts", 500, "--no-cuda"],
    "dqn_atari.py": ["--learning-starts", 300, "--buffer-size", 2000, "--end-e", 0.5, "--no-cuda"],
}


def start(script, workdir, *flags):
    return subprocess.Popen([sys.executable, os.path.join(ROOT, script), *map(str, FLAGS[script] + list(flags))],
                            cwd=workdir, env={**os.environ, "PYTHONPATH": TESTS},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(pattern, proc, seconds=120):
    """Polls until a file matching `pattern` exists (while the process runs)."""
    deadline = time.time() + seconds
    while not glob.glob(pattern):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, f"no {pattern}"
        time.sleep(0.05)
    return glob.glob(pattern)[0]


def manifest(run_dir):
    with open(os.path.join(run_dir, "checkpoint", "checkpoint.json")) as f:
        return json.load(f)


@pytest.mark.parametrize("script,sig,code", [("dqn.py", signal.SIGINT, 130), ("dqn_atari.py", signal.SIGTERM, 143)])
def test_signal_saves_model_and_checkpoint_then_exits_with_its_code(workdir, script, sig, code):
    proc = start(script, workdir, "--total-timesteps", 10**7)
    wait_for(os.path.join(workdir, "runs", "*", "events.*"), proc)
    time.sleep(2)  # into the training loop
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    run_dir = run_dirs(workdir)[0]
    assert os.path.exists(os.path.join(run_dir, f"{script[:-3]}.pt"))
    assert manifest(run_dir)["global_step"] > 0
    assert f"--resume {os.path.join('runs', os.path.basename(run_dir))}" in err and "Traceback" not in err


def test_run_killed_after_its_first_checkpoint_resumes_with_the_same_command_plus_resume(workdir):
    command = ["--env-id", "CartPole-v1", "--seed", 4, "--total-timesteps", 30000, "--checkpoint-frequency", 1000,
               "--eval-episodes", 0]
    proc = start("dqn.py", workdir, *command)
    wait_for(os.path.join(workdir, "runs", "*", "checkpoint", "checkpoint.json"), proc)
    proc.kill()  # kill -9: no chance to save anything more
    proc.wait()
    run_dir = run_dirs(workdir)[0]
    result = run_script("dqn.py", *FLAGS["dqn.py"], *command, "--resume", run_dir, cwd=workdir)  # the up arrow
    assert result.returncode == 0, result.stderr
    assert run_dirs(workdir) == [run_dir]
    tags = scalars(run_dir)
    steps = [s for s, _ in tags["charts/SPS"]]
    assert steps == sorted(set(steps)) and steps[-1] == 30000, "the curve goes on with no gap and no repeated step"
    assert steps == list(range(100, 30001, 100))


def run_in_process(monkeypatch, workdir, script, *flags):
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(sys, "argv", [script, *map(str, flags)])
    return runpy.run_path(os.path.join(ROOT, script), run_name="__main__")


@pytest.mark.parametrize("buffer", ["--checkpoint-buffer", "--no-checkpoint-buffer"])
@pytest.mark.parametrize("script", ["dqn.py", "dqn_atari.py"])
def test_state_after_resume_equals_the_state_saved(monkeypatch, workdir, script, buffer):
    first = run_in_process(monkeypatch, workdir, script, *FLAGS[script], "--buffer-size", 600, "--total-timesteps", 900,
                           "--checkpoint-frequency", 900, "--eval-episodes", 0, buffer)  # the buffer wraps around
    rngs = random.getstate(), np.random.get_state(), torch.get_rng_state()  # as saved: the run ends right after
    run_dir = run_dirs(workdir)[0]
    assert manifest(run_dir)["global_step"] == 900
    resumed = run_in_process(monkeypatch, workdir, script, "--resume", run_dir)  # nothing left to train
    for net in ("q_network", "target_network"):
        for a, b in zip(resumed[net].state_dict().values(), first[net].state_dict().values()):
            assert torch.equal(a, b)
    for a, p in zip(resumed.get("weights", []), resumed["q_network"].parameters()):  # dqn.py acts on these
        assert np.array_equal(a, p.detach().numpy())
    for a, b in zip(resumed["optimizer"].state_dict()["state"].values(), first["optimizer"].state_dict()["state"].values()):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert random.getstate() == rngs[0]
    np.testing.assert_equal(np.random.get_state(), rngs[1])
    assert torch.equal(torch.get_rng_state(), rngs[2])
    assert resumed["rng"].bit_generator.state == first["rng"].bit_generator.state
    assert list(resumed["recent_returns"]) == list(first["recent_returns"])
    if buffer == "--checkpoint-buffer":
        assert_same_buffer(resumed["rb"], first["rb"])
        assert first["rb"].full
    else:
        assert resumed["rb"].pos == 0 and not resumed["rb"].full
        assert not [f for f in os.listdir(os.path.join(run_dir, "checkpoint")) if f.startswith("buffer")]


def assert_same_buffer(rb, expected):
    for name, value in vars(expected).items():
        if isinstance(value, np.ndarray):
            assert np.array_equal(getattr(rb, name), value), name
    assert (rb.pos, rb.full) == (expected.pos, expected.full)
    assert not hasattr(expected, "added") or rb.added == expected.added
    expected_frames = getattr(expected, "last_frames", {})
    assert getattr(rb, "last_frames", {}).keys() == expected_frames.keys()
    assert all(np.array_equal(rb.last_frames[k], v) for k, v in expected_frames.items())


def test_checkpoint_that_cannot_be_written_keeps_the_last_good_one_and_the_run_goes_on(monkeypatch, workdir, capfd):
    real_savez, calls = np.savez, []

    def savez(f, **arrays):  # the first checkpoint is written; the later ones meet a full disk half-way
        calls.append(f.name)
        if len(calls) == 1:
            return real_savez(f, **arrays)
        f.write(b"half a replay memory")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", savez)
    run_in_process(monkeypatch, workdir, "dqn.py", *FLAGS["dqn.py"], "--total-timesteps", 3000,
                   "--checkpoint-frequency", 1000, "--eval-episodes", 0)
    err = capfd.readouterr().err
    assert len(calls) == 3
    assert err.count("cannot write the checkpoint") == 2 and "No space left on device" in err
    run_dir = run_dirs(workdir)[0]
    saved = manifest(run_dir)
    assert saved["global_step"] == 1000
    named = {"checkpoint.json", saved["state"], *saved["buffer"]["files"]}
    assert set(os.listdir(os.path.join(run_dir, "checkpoint"))) == named, "the half-written files are gone"
    assert scalars(run_dir)["charts/SPS"][-1][0] == 3000


# A kill -9 at three moments of the second checkpoint (step 2000): in the middle of its replay-memory file, after all its
# new files but before checkpoint.json is replaced, and after the replace but before the first checkpoint's files go.
KILLER = """
import os, runpy, signal, sys
import numpy as np
script, moment, sys.argv = sys.argv[1], sys.argv[2], sys.argv[1:2] + sys.argv[3:]

def kill_at_call(function, n, calls=[]):
    def patched(file, *args, **kwargs):
        calls.append(file)
        if len(calls) == n:
            if hasattr(file, "write"):
                file.write(b"half a block")
                file.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return function(file, *args, **kwargs)
    return patched

if moment == "in-a-block":
    np.savez = kill_at_call(np.savez, 2)  # one file a checkpoint: dqn.py's buffer fits in one
elif moment == "before-the-commit":
    os.replace = kill_at_call(os.replace, 2)
else:
    os.remove = kill_at_call(os.remove, 1)  # the first checkpoint leaves nothing behind
runpy.run_path(script, run_name="__main__")
"""


@pytest.mark.parametrize("moment,step", [("in-a-block", 1000), ("before-the-commit", 1000), ("before-the-cleanup", 2000)])
def test_a_kill_during_a_save_leaves_a_checkpoint_that_loads_and_resumes(workdir, moment, step):
    flags = [*FLAGS["dqn.py"], "--total-timesteps", 3000, "--checkpoint-frequency", 1000, "--eval-episodes", 0]
    killed = subprocess.run([sys.executable, "-c", KILLER, os.path.join(ROOT, "dqn.py"), moment, *map(str, flags)],
                            cwd=workdir, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run_dir = run_dirs(workdir)[0]
    assert manifest(run_dir)["global_step"] == step
    result = run_script("dqn.py", "--resume", run_dir, cwd=workdir)
    assert result.returncode == 0 and f"at step {step:,}" in result.stdout, result.stderr
    saved = manifest(run_dir)
    assert saved["global_step"] == 3000
    assert set(os.listdir(os.path.join(run_dir, "checkpoint"))) == {"checkpoint.json", saved["state"], *saved["buffer"]["files"]}


def synthetic_stream(count, length=7, frame_shape=(8, 8)):
    """(obs, next_obs, action, reward, done) of episodes of `length` steps whose frames are numbered."""
    frame, stream, i = lambda i: np.full(frame_shape, i % 251 + 1, np.uint8), [], 0
    while len(stream) < count:
        obs = np.repeat(frame(i)[None, None], 4, axis=1)  # an episode's first stack: 4 copies of its first frame
        for t in range(length):
            i += 1
            next_obs = np.concatenate([obs[:, 1:], frame(i)[None, None]], axis=1)
            stream.append((obs, next_obs, np.array([t % 4]), np.array([1.0], np.float32), np.array([t == length - 1])))
            obs = next_obs
        i += 1
    return stream[:count]


def buffers(script, capacity):
    """The script as a module, and a maker of its empty replay memories for 4x8x8 observations."""
    sys.path.insert(0, ROOT)
    module = __import__(script[:-3])
    obs_space, act_space = gym.spaces.Box(0, 255, (4, 8, 8), np.uint8), gym.spaces.Discrete(4)
    if script == "dqn.py":
        return module, lambda: module.ReplayBuffer(capacity, obs_space, act_space, "cpu", handle_timeout_termination=False)
    return module, lambda: module.FrameReplayBuffer(capacity, obs_space, act_space)


@pytest.mark.parametrize("script", ["dqn.py", "dqn_atari.py"])
def test_a_periodic_checkpoint_writes_only_the_new_rows_and_deletes_the_evicted_ones(monkeypatch, tmp_path, script):
    module, new_buffer = buffers(script, 1000)
    rb, stream, run_dir = new_buffer(), synthetic_stream(2000), str(tmp_path)
    row = sum(getattr(rb, k)[0].nbytes for k in module.RINGS if hasattr(rb, k))
    monkeypatch.setattr(module, "BLOCK_BYTES", 100 * row)  # files of 100 rows
    folder = os.path.join(run_dir, "checkpoint")

    def save(added):  # {(block, added when written): file size}
        module.write_checkpoint(({"global_step": added}, {}, rb, added), run_dir)
        return {tuple(map(int, f.split(".")[1:3])): os.path.getsize(os.path.join(folder, f))
                for f in os.listdir(folder) if f.startswith("buffer")}

    ahead = 4 if script == "dqn_atari.py" else 0  # FrameReplayBuffer's frame ring runs 4 rows ahead of its transitions
    for transition in stream[:1500]:
        rb.add(*transition, [{}])
    first = save(1500)
    assert sorted(first) == [(b, 1500) for b in range(5, 15 + bool(ahead))], "rows 500..1499(+4) in files of 100"
    for transition in stream[1500:1750]:
        rb.add(*transition, [{}])
    second = save(1750)
    written = {block: size for block, size in second.items() if block not in first}
    assert sorted(written) == [(b, 1750) for b in range(14, 18)], "only the files with rows from 1499 on"
    assert sum(written.values()) < (250 + 100 + ahead) * row + 4 * 4096, "the new rows and at most a file's worth more"
    assert sorted(set(first) - set(second)) == [(5, 1500), (6, 1500), *[(b, 1500) for b in range(14, 15 + bool(ahead))]]
    loaded = new_buffer()
    module.load_buffer(loaded, folder, manifest(run_dir)["buffer"])
    assert_same_buffer(loaded, rb)


# ---- loading runs no code ------------------------------------------------------------------------

class Payload:
    """Unpickling it creates a file: what a crafted checkpoint or model could do instead."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


@pytest.mark.parametrize("script,flag,place", [
    ("dqn.py", "--resume", "runs/old/checkpoint.pkl"),
    ("dqn_atari.py", "--resume", "runs/old/checkpoint.pkl"),
    ("dqn.py", "--resume", "shared.pkl"),
    ("dqn.py", "--resume", "runs/old/checkpoint/state.900.pt"),
    ("dqn_atari.py", "--resume", "runs/old/checkpoint/state.900.pt"),
    ("dqn.py", "--eval-checkpoint", "model.pt"),
    ("dqn_atari.py", "--eval-checkpoint", "model.pt"),
    ("dqn.py", "--eval-checkpoint", "runs/old/checkpoint.pkl"),
    ("dqn_atari.py", "--eval-checkpoint", "shared.pkl"),
])
def test_a_crafted_pickle_is_refused_with_one_line_and_never_runs(workdir, script, flag, place):
    marker = os.path.join(workdir, "created-by-the-pickle")
    path = os.path.join(workdir, place)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump({"q_network": Payload(marker)}, f)
    if place.endswith("state.900.pt"):  # a checkpoint folder whose manifest is fine but whose tensors file is not
        args = vars(__import__(script[:-3]).Args())
        with open(os.path.join(os.path.dirname(path), "checkpoint.json"), "w") as f:
            json.dump({"script": script, "format": 1, "args": args, "global_step": 900, "state": "state.900.pt"}, f)
    target = os.path.dirname(path) if place.endswith("checkpoint.pkl") else path  # a run folder holds the old pickle
    target = os.path.dirname(target) if place.endswith("state.900.pt") else target
    result = run_script(script, flag, target, "--no-cuda", cwd=workdir)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pickle" in lines[0], result.stderr
    assert not os.path.exists(marker), "unpickling ran code"
    assert run_dirs(workdir) == [os.path.join(workdir, "runs", "old")] * ("runs/" in place)


# ---- resume: the saved run's flags, and more steps ------------------------------------------------

def test_raising_total_timesteps_extends_the_run_and_epsilon_keeps_its_schedule_in_steps(workdir):
    result = run_script("dqn.py", *FLAGS["dqn.py"], "--total-timesteps", 2000, "--exploration-fraction", 0.5,
                        "--eval-episodes", 0, "--checkpoint-frequency", 1000, cwd=workdir)  # epsilon reaches end-e at 1000
    assert result.returncode == 0, result.stderr
    run_dir = run_dirs(workdir)[0]
    for total in (5000, 6000):  # and once more: the decay stays 1000 steps long
        result = run_script("dqn.py", "--resume", run_dir, "--total-timesteps", total, cwd=workdir)
        assert result.returncode == 0, result.stderr
    tags = scalars(run_dir)
    assert [s for s, _ in tags["charts/SPS"]] == list(range(100, 6001, 100))
    epsilon = dict(tags["charts/epsilon"])
    assert epsilon[500] == pytest.approx(1 - 0.95 * 499 / 1000)  # the step at which the action was chosen
    assert all(e == pytest.approx(0.05) for s, e in epsilon.items() if s > 1000), "never back up after the decay"
    saved = manifest(run_dir)
    assert (saved["global_step"], saved["args"]["total_timesteps"], saved["exploration_steps"]) == (6000, 6000, 1000)


def test_epsilon_keeps_its_schedule_over_a_plain_resume_of_an_extended_run(workdir):
    """Extend a finished run, stop it part-way with SIGTERM, then resume it with no flags (as the Ray runner's retry
    does): epsilon stays at end-e (it once climbed back to 0.54, its decay recomputed from the new total)."""
    result = run_script("dqn.py", *FLAGS["dqn.py"], "--total-timesteps", 2000, "--exploration-fraction", 0.5,
                        "--eval-episodes", 0, "--checkpoint-frequency", 1000, cwd=workdir)  # epsilon reaches end-e at 1000
    assert result.returncode == 0, result.stderr
    run_dir = run_dirs(workdir)[0]
    for flags in (["--total-timesteps", 200000], []):  # extended, then resumed as it was saved
        proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "dqn.py"), "--resume", run_dir, *map(str, flags)],
                                cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        start_step = manifest(run_dir)["global_step"]
        deadline = time.time() + 120
        while manifest(run_dir)["global_step"] < start_step + 3000 and time.time() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 143, proc.communicate()
    epsilon = dict(scalars(run_dir)["charts/epsilon"])
    assert max(epsilon) > 8000 and all(e == pytest.approx(0.05) for s, e in epsilon.items() if s > 1000), epsilon


def test_resume_refuses_each_changed_flag_with_the_saved_and_the_given_value(workdir):
    result = run_script("dqn.py", *FLAGS["dqn.py"], "--total-timesteps", 600, "--checkpoint-frequency", 600,
                        "--eval-episodes", 0, cwd=workdir)
    assert result.returncode == 0, result.stderr
    run_dir = run_dirs(workdir)[0]
    result = run_script("dqn.py", "--resume", run_dir, "--gamma", 0.9, "--seed", 3, "--total-timesteps", 500,
                        "--learning-starts", 500, cwd=workdir)  # the last one as saved: accepted
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "dqn.py: error: --seed: the run was saved with 1, given 3",
        "dqn.py: error: --gamma: the run was saved with 0.99, given 0.9",
        "dqn.py: error: --total-timesteps: the run was saved at step 600, given 500",
        "dqn.py: error: --learning-starts must be in [0, total-timesteps), got 500",
    ]


def test_eval_checkpoint_plays_a_saved_model_and_records_it(workdir):
    result = run_script("dqn.py", *FLAGS["dqn.py"], "--total-timesteps", 1000, "--eval-episodes", 0, "--save-model",
                        "--checkpoint-frequency", 1000, cwd=workdir)
    assert result.returncode == 0, result.stderr
    run_dir = run_dirs(workdir)[0]
    result = run_script("dqn.py", "--eval-checkpoint", run_dir, "--eval-episodes", 3, "--capture-video", "--no-cuda",
                        cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "eval:" in result.stdout and "over 3 episodes" in result.stdout
    assert glob.glob(os.path.join(workdir, "videos", f"{os.path.basename(run_dir)}-eval", "*.mp4"))
    result = run_script("dqn.py", "--eval-checkpoint", os.path.join(run_dir, "checkpoint"), "--eval-episodes", 1,
                        "--no-cuda", cwd=workdir)  # the Q-network of a checkpoint
    assert result.returncode == 0 and "over 1 episodes" in result.stdout, result.stderr
    assert run_dirs(workdir) == [run_dir], "evaluating writes no new run"


@pytest.mark.parametrize("script,flags,named", [
    ("dqn.py", ["--env-id", "Acrobot-v1"], "cannot load a model for this env"),
    ("dqn_atari.py", ["--env-id", "PongNoFrameskip-v4"], "cannot load a model for this env"),
])
def test_a_model_for_another_env_gives_one_clear_line(workdir, script, flags, named):
    n_in, n_actions = (4, 2) if script == "dqn.py" else (None, 4)  # CartPole's and Breakout's shapes
    sys.path.insert(0, ROOT)
    module = __import__(script[:-3])
    net = module.QNetwork(n_in, n_actions) if n_in else module.QNetwork(n_actions)
    torch.save(net.state_dict(), os.path.join(workdir, "model.pt"))
    result = run_script(script, "--eval-checkpoint", "model.pt", *flags, "--no-cuda", cwd=workdir)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr


@pytest.mark.parametrize("path", ["no/such/run", "README.md"])
def test_resume_from_something_that_is_not_a_checkpoint_gives_one_clear_line(workdir, path):
    result = run_script("dqn.py", "--resume", os.path.join(ROOT, path), cwd=workdir)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "checkpoint" in result.stderr
