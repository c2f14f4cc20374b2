"""Both scripts: Ctrl-C and SIGTERM save and exit, checkpoints are atomic, runs resume, saved agents evaluate."""
import errno
import glob
import os
import pickle
import runpy
import signal
import subprocess
import sys
import time

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
    with open(os.path.join(run_dir, "checkpoint.pkl"), "rb") as f:
        assert pickle.load(f)["global_step"] > 0
    assert f"--resume {os.path.join('runs', os.path.basename(run_dir))}" in err and "Traceback" not in err


def test_run_killed_after_its_first_checkpoint_resumes_and_finishes_in_the_same_folder(workdir):
    proc = start("dqn.py", workdir, "--total-timesteps", 30000, "--checkpoint-frequency", 1000, "--eval-episodes", 0)
    wait_for(os.path.join(workdir, "runs", "*", "checkpoint.pkl"), proc)
    proc.kill()  # kill -9: no chance to save anything more
    proc.wait()
    run_dir = run_dirs(workdir)[0]
    result = run_script("dqn.py", "--resume", run_dir, cwd=workdir)
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


@pytest.mark.parametrize("script", ["dqn.py", "dqn_atari.py"])
def test_state_after_resume_equals_the_state_saved(monkeypatch, workdir, script):
    first = run_in_process(monkeypatch, workdir, script, *FLAGS[script], "--total-timesteps", 900,
                           "--checkpoint-frequency", 900, "--eval-episodes", 0)
    run_dir = run_dirs(workdir)[0]
    with open(os.path.join(run_dir, "checkpoint.pkl"), "rb") as f:
        saved = pickle.load(f)
    assert saved["global_step"] == 900
    resumed = run_in_process(monkeypatch, workdir, script, "--resume", run_dir)  # nothing left to train
    for net in ("q_network", "target_network"):
        for a, b in zip(resumed[net].state_dict().values(), first[net].state_dict().values()):
            assert torch.equal(a, b)
    for a, b in zip(resumed["optimizer"].state_dict()["state"].values(), first["optimizer"].state_dict()["state"].values()):
        assert all(torch.equal(a[k], b[k]) for k in a)
    for name, value in vars(first["rb"]).items():
        if isinstance(value, np.ndarray):
            assert np.array_equal(getattr(resumed["rb"], name), value), name
    assert resumed["rb"].pos == first["rb"].pos and resumed["rb"].full == first["rb"].full
    assert resumed["rng"].bit_generator.state == first["rng"].bit_generator.state
    np.testing.assert_equal(np.random.get_state(), saved["rng"][1])
    assert list(resumed["recent_returns"]) == list(first["recent_returns"])


def test_checkpoint_that_cannot_be_written_keeps_the_last_good_one_and_the_run_goes_on(monkeypatch, workdir, capfd):
    real_dump, calls = pickle.dump, []

    def dump(obj, f, **kw):  # the first checkpoint is written; the later ones meet a full disk half-way
        if not (isinstance(obj, dict) and "global_step" in obj):  # torch pickles tensors with pickle.dump too
            return real_dump(obj, f, **kw)
        calls.append(obj["global_step"])
        if len(calls) == 1:
            return real_dump(obj, f, **kw)
        f.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pickle, "dump", dump)
    run_in_process(monkeypatch, workdir, "dqn.py", *FLAGS["dqn.py"], "--total-timesteps", 3000,
                   "--checkpoint-frequency", 1000, "--eval-episodes", 0)
    err = capfd.readouterr().err
    assert calls == [1000, 2000, 3000]
    assert err.count("cannot write the checkpoint") == 2 and "No space left on device" in err
    run_dir = run_dirs(workdir)[0]
    assert os.listdir(run_dir).count("checkpoint.pkl.tmp") == 0
    with open(os.path.join(run_dir, "checkpoint.pkl"), "rb") as f:
        assert pickle.load(f)["global_step"] == 1000
    assert scalars(run_dir)["charts/SPS"][-1][0] == 3000


def test_eval_checkpoint_plays_a_saved_model_and_records_it(workdir):
    result = run_script("dqn.py", *FLAGS["dqn.py"], "--total-timesteps", 1000, "--eval-episodes", 0, "--save-model",
                        cwd=workdir)
    assert result.returncode == 0, result.stderr
    run_dir = run_dirs(workdir)[0]
    result = run_script("dqn.py", "--eval-checkpoint", run_dir, "--eval-episodes", 3, "--capture-video", "--no-cuda",
                        cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "eval:" in result.stdout and "over 3 episodes" in result.stdout
    assert glob.glob(os.path.join(workdir, "videos", f"{os.path.basename(run_dir)}-eval", "*.mp4"))
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


def test_resume_with_other_flags_gives_one_clear_line(workdir):
    result = run_script("dqn.py", *FLAGS["dqn.py"], "--total-timesteps", 600, "--checkpoint-frequency", 600,
                        "--eval-episodes", 0, cwd=workdir)
    assert result.returncode == 0, result.stderr
    result = run_script("dqn.py", "--resume", run_dirs(workdir)[0], "--total-timesteps", 10**6, cwd=workdir)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--total-timesteps" in lines[0], result.stderr
