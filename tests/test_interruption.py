"""Both scripts: Ctrl-C and SIGTERM save and exit, checkpoints are atomic and safe to load, runs resume and evaluate."""

import errno
import glob
import os
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
    return subprocess.Popen(
        [sys.executable, os.path.join(ROOT, script), *map(str, FLAGS[script] + list(flags))],
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": TESTS},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(pattern, proc, seconds=120):
    """Polls until a file matching `pattern` exists (while the process runs)."""
    deadline = time.time() + seconds
    while not glob.glob(pattern):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, f"no {pattern}"
        time.sleep(0.05)
    return glob.glob(pattern)[0]


def manifest(run_dir):
    """The run's checkpoint.pt, read as the scripts read it (no code runs)."""
    return torch.load(os.path.join(run_dir, "checkpoint", "checkpoint.pt"), weights_only=True)


def tree(path):
    """Each file under `path` with its size."""
    return sorted((os.path.join(d, n), os.path.getsize(os.path.join(d, n))) for d, _, fs in os.walk(path) for n in fs)


def checkpoint_files(run_dir):
    """The files a run's checkpoint is made of: checkpoint.pt and the chunks of a memory's large arrays it names."""
    chunks = manifest(run_dir).get("chunks", {})
    return {"checkpoint.pt"} | {file for saved in chunks.values() for _, file in saved.values()}


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
    command = [
        "--env-id",
        "CartPole-v1",
        "--seed",
        4,
        "--total-timesteps",
        30000,
        "--checkpoint-frequency",
        1000,
        "--eval-episodes",
        0,
    ]
    proc = start("dqn.py", workdir, *command)
    wait_for(os.path.join(workdir, "runs", "*", "checkpoint", "checkpoint.pt"), proc)
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


@pytest.mark.parametrize("script", ["dqn.py", "dqn_atari.py"])
def test_checkpoints_are_written_at_each_multiple_of_the_checkpoint_frequency_only(workdir, script):
    flags = ["--total-timesteps", 700, "--learning-starts", 699, "--checkpoint-frequency", 300, "--eval-episodes", 0]
    result = run_script(script, *flags, "--no-cuda", "--buffer-size", 1000, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert manifest(run_dirs(workdir)[0])["global_step"] == 600, "the last multiple of 300, not the run's last step"


@pytest.mark.parametrize(
    "script,buffer_size,steps,every",
    [
        ("dqn.py", 600, 900, 900),
        ("dqn_atari.py", 600, 900, 900),
        ("dqn_atari.py", 600, 1500, 500),  # the frames by chunks, across the wrap, the oldest dropped
    ],
)
def test_state_after_resume_equals_the_state_saved(monkeypatch, workdir, script, buffer_size, steps, every):
    first = run_in_process(
        monkeypatch,
        workdir,
        script,
        *FLAGS[script],
        "--buffer-size",
        buffer_size,
        "--total-timesteps",
        steps,
        "--learning-starts",
        steps - 300,
        "--checkpoint-frequency",
        every,
        "--eval-episodes",
        0,
    )  # the buffer wraps around
    run_dir = run_dirs(workdir)[0]
    assert manifest(run_dir)["global_step"] == steps
    path = f"{run_dir}/checkpoint/checkpoint.pt"  # its random states made ones that no run of seed 1 has
    saved = torch.load(path, weights_only=True)
    torch.manual_seed(123)
    np.random.seed(123)
    _, key, *numpy_state = np.random.get_state()
    saved["rng"] = [torch.get_rng_state(), key.tolist(), numpy_state, np.random.default_rng(123).bit_generator.state]
    torch.save(saved, path)
    rngs = np.random.get_state(), torch.get_rng_state()
    resumed = run_in_process(monkeypatch, workdir, script, "--resume", run_dir)  # nothing left to train
    for net in ("q_network", "target_network"):
        for a, b in zip(resumed[net].state_dict().values(), first[net].state_dict().values()):
            assert torch.equal(a, b)
    for a, b in zip(
        resumed["optimizer"].state_dict()["state"].values(), first["optimizer"].state_dict()["state"].values()
    ):
        assert all(torch.equal(a[k], b[k]) for k in a)
    np.testing.assert_equal(np.random.get_state(), rngs[0])
    assert torch.equal(torch.get_rng_state(), rngs[1])
    assert resumed["rng"].bit_generator.state == np.random.default_rng(123).bit_generator.state
    assert_same_buffer(resumed["rb"], first["rb"])
    assert first["rb"].full


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
    real_save, calls = torch.save, []

    def save(state, f):  # the first checkpoint is written; the later ones meet a full disk half-way
        if not getattr(f, "name", "").endswith(".tmp"):
            return real_save(state, f)
        calls.append(f.name)
        if len(calls) == 1:
            return real_save(state, f)
        f.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", save)
    run_in_process(
        monkeypatch,
        workdir,
        "dqn.py",
        *FLAGS["dqn.py"],
        "--total-timesteps",
        3000,
        "--checkpoint-frequency",
        1000,
        "--eval-episodes",
        0,
    )
    err = capfd.readouterr().err
    assert len(calls) == 3
    assert err.count("not written") == 2 and "No space left on device" in err
    run_dir = run_dirs(workdir)[0]
    assert manifest(run_dir)["global_step"] == 1000
    assert set(os.listdir(os.path.join(run_dir, "checkpoint"))) == {"checkpoint.pt"}, "the half-written file is gone"
    assert scalars(run_dir)["charts/SPS"][-1][0] == 3000


# A kill -9 at moments of the second checkpoint (step 1000): in the middle of its file, after the file is written but
# before it replaces checkpoint.pt, and (dqn_atari.py's frames, saved by chunks) in the middle of a chunk's file.
KILLER = """
import os, runpy, signal, sys
import numpy as np, torch
script, moment, sys.argv = sys.argv[1], sys.argv[2], sys.argv[1:2] + sys.argv[3:]

def kill_at_call(function, n, suffix, at=1, calls=[]):
    def patched(*args, **kwargs):
        file = args[at]
        if str(getattr(file, "name", file)).endswith(suffix):
            calls.append(file)
        if len(calls) == n:
            if hasattr(file, "write"):
                file.write(b"half a file")
                file.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return function(*args, **kwargs)
    return patched

if moment == "in-a-file":
    torch.save = kill_at_call(torch.save, 2, "checkpoint.pt.tmp")
elif moment == "in-a-chunk":
    np.save = kill_at_call(np.save, 2, ".npy.tmp", at=0)
else:
    os.replace = kill_at_call(os.replace, 2, "checkpoint.pt")
runpy.run_path(script, run_name="__main__")
"""


@pytest.mark.parametrize(
    "script,moment,step",
    [
        ("dqn.py", "in-a-file", 500),
        ("dqn.py", "before-the-commit", 500),
        ("dqn_atari.py", "in-a-file", 500),
        ("dqn_atari.py", "before-the-commit", 500),
        ("dqn_atari.py", "in-a-chunk", 500),
    ],
)
def test_a_kill_during_a_save_leaves_a_checkpoint_that_loads_and_resumes(workdir, script, moment, step):
    flags = [
        "--learning-starts",
        300 if script == "dqn.py" else 1200,
        "--total-timesteps",
        1500,
        "--no-cuda",
        "--checkpoint-frequency",
        500,
        "--eval-episodes",
        0,
        "--buffer-size",
        2000,
    ]
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, os.path.join(ROOT, script), moment, *map(str, flags)],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run_dir = run_dirs(workdir)[0]
    assert manifest(run_dir)["global_step"] == step
    assert set(os.listdir(os.path.join(run_dir, "checkpoint"))) >= checkpoint_files(run_dir)
    result = run_script(script, "--resume", run_dir, cwd=workdir)
    assert result.returncode == 0 and f"at step {step:,}" in result.stdout, result.stderr
    assert manifest(run_dir)["global_step"] == 1500
    assert set(os.listdir(os.path.join(run_dir, "checkpoint"))) == checkpoint_files(run_dir), "nothing left behind"


def test_a_replay_memory_saved_in_another_layout_is_refused_in_one_line(workdir):
    """An earlier version's checkpoint kept the memory in block files it named: it is refused, not misread."""
    flags = ["--total-timesteps", 600, "--checkpoint-frequency", 600, "--eval-episodes", 0]
    assert run_script("dqn_atari.py", *FLAGS["dqn_atari.py"], *flags, cwd=workdir).returncode == 0
    run_dir = run_dirs(workdir)[0]
    state = manifest(run_dir)
    state["buffer"] = {"added": 600, "rows": 100, "files": {0: "buffer.0.1.npz"}, "fields": {"pos": 600}}
    torch.save(state, os.path.join(run_dir, "checkpoint", "checkpoint.pt"))
    before = tree(run_dir)
    result = run_script("dqn_atari.py", "--resume", run_dir, "--total-timesteps", 900, cwd=workdir)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("dqn_atari.py: error: '") and "is not a checkpoint of this dqn_atari.py" in line, line
    assert all(f"checkpoint.buffer.{name} extra" in line for name in ("rows", "files", "fields")), line
    assert tree(run_dir) == before, "nothing written"


# ---- loading runs no code ------------------------------------------------------------------------


class Payload:
    """Unpickling it creates a file: what a crafted checkpoint or model could do instead."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


@pytest.mark.parametrize(
    "script,flag,place,target",
    [
        ("dqn.py", "--resume", "runs/old/checkpoint/checkpoint.pt", "runs/old"),
        ("dqn_atari.py", "--resume", "runs/old/checkpoint/checkpoint.pt", "runs/old/checkpoint/checkpoint.pt"),
        ("dqn.py", "--resume", "shared.pt", "shared.pt"),
        ("dqn_atari.py", "--eval-checkpoint", "model.pt", "model.pt"),
        ("dqn_atari.py", "--eval-checkpoint", "shared.pt", "shared.pt"),
        ("dqn_atari.py", "--eval-checkpoint", "runs/old/checkpoint/checkpoint.pt", "runs/old"),
    ],
)
def test_a_crafted_pickle_is_refused_with_one_line_and_never_runs(workdir, script, flag, place, target):
    """A torch file (a zip, as torch.save writes) whose pickle would run code: loaded with weights_only, refused."""
    marker = os.path.join(workdir, "created-by-the-pickle")
    path = os.path.join(workdir, place)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save({"script": script, "q_network": Payload(marker)}, path)
    result = run_script(script, flag, target, "--no-cuda", cwd=workdir)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pickle" in lines[0], result.stderr
    assert not os.path.exists(marker), "unpickling ran code"
    assert run_dirs(workdir) == [os.path.join(workdir, "runs", "old")] * ("runs/" in place)


# ---- resume: the saved run's flags, and more steps ------------------------------------------------


def finished_run(workdir):
    """A finished 2,000-step dqn.py run with checkpoints every 1,000 steps, whose epsilon reaches end-e at 1,000."""
    flags = "--total-timesteps 2000 --exploration-fraction 0.5 --eval-episodes 0 --checkpoint-frequency 1000".split()
    result = run_script("dqn.py", *FLAGS["dqn.py"], *flags, cwd=workdir)
    assert result.returncode == 0, result.stderr
    return run_dirs(workdir)[0]


def test_raising_total_timesteps_extends_the_run_and_epsilon_keeps_its_schedule_in_steps(workdir):
    run_dir = finished_run(workdir)
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
    run_dir = finished_run(workdir)
    for flags in (["--total-timesteps", 200000], []):  # extended, then resumed as it was saved
        proc = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "dqn.py"), "--resume", run_dir, *map(str, flags)],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        start_step = manifest(run_dir)["global_step"]
        deadline = time.time() + 120
        while manifest(run_dir)["global_step"] < start_step + 3000 and time.time() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 143, proc.communicate()
    epsilon = dict(scalars(run_dir)["charts/epsilon"])
    assert max(epsilon) > 8000 and all(e == pytest.approx(0.05) for s, e in epsilon.items() if s > 1000), epsilon


def test_resume_refuses_each_changed_flag_with_the_saved_and_the_given_value(workdir):
    result = run_script(
        "dqn.py",
        *FLAGS["dqn.py"],
        "--total-timesteps",
        600,
        "--checkpoint-frequency",
        600,
        "--eval-episodes",
        0,
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    run_dir = run_dirs(workdir)[0]
    result = run_script(
        "dqn.py",
        "--resume",
        run_dir,
        "--gamma",
        0.9,
        "--seed",
        3,
        "--total-timesteps",
        500,
        "--learning-starts",
        500,
        cwd=workdir,
    )  # the last one as saved: accepted
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "dqn.py: error: --seed: the run was saved with 1, given 3",
        "dqn.py: error: --gamma: the run was saved with 0.99, given 0.9",
        "dqn.py: error: --total-timesteps must be in [600, inf), got 500",
        "dqn.py: error: --learning-starts must be in [0, 499], got 500",
    ]


def test_eval_checkpoint_plays_a_saved_model_and_records_it(workdir):
    flags = ["--total-timesteps", 800, "--eval-episodes", 0, "--save-model", "--checkpoint-frequency", 800]
    result = run_script("dqn_atari.py", *FLAGS["dqn_atari.py"], *flags, cwd=workdir)
    assert result.returncode == 0, result.stderr
    run_dir = run_dirs(workdir)[0]
    play = ["--eval-episodes", 1, "--end-e", 0.5, "--no-cuda"]
    result = run_script("dqn_atari.py", "--eval-checkpoint", run_dir, *play, "--capture-video", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "eval:" in result.stdout and "over 1 games" in result.stdout
    assert glob.glob(os.path.join(workdir, "videos", f"{os.path.basename(run_dir)}-eval", "*.mp4"))
    checkpoint = os.path.join(run_dir, "checkpoint", "checkpoint.pt")  # the Q-network of a checkpoint
    result = run_script("dqn_atari.py", "--eval-checkpoint", checkpoint, *play, cwd=workdir)
    assert result.returncode == 0 and "over 1 games" in result.stdout, result.stderr
    assert run_dirs(workdir) == [run_dir], "evaluating writes no new run"


def test_eval_checkpoint_of_a_run_folder_plays_its_final_model_not_an_older_checkpoint(workdir):
    flags = ["--total-timesteps", 800, "--checkpoint-frequency", 800, "--save-model", "--eval-episodes", 0]
    assert run_script("dqn_atari.py", *FLAGS["dqn_atari.py"], *flags, cwd=workdir).returncode == 0
    run_dir = run_dirs(workdir)[0]
    sys.path.insert(0, ROOT)
    final = __import__("dqn_atari").QNetwork(4)  # a final model unlike the checkpoint's: it always moves left
    with torch.no_grad():
        for parameter in final.parameters():
            parameter.zero_()
        final.network[-1].bias[3] = 1.0
    torch.save(final.state_dict(), os.path.join(run_dir, "dqn_atari.pt"))

    def played(target):  # the same network and seed play the same games
        play = ["--eval-episodes", 2, "--end-e", 0.2, "--no-cuda"]
        result = run_script("dqn_atari.py", "--eval-checkpoint", target, *play, cwd=workdir)
        return [line for line in result.stdout.splitlines() if line.startswith("eval:")]

    model, older = (
        played(os.path.join(run_dir, "dqn_atari.pt")),
        played(os.path.join(run_dir, "checkpoint", "checkpoint.pt")),
    )
    assert model != older, "the test needs the two networks to play differently"
    assert played(run_dir) == model


def test_a_model_for_another_env_gives_one_clear_line(workdir):
    sys.path.insert(0, ROOT)
    torch.save(__import__("dqn_atari").QNetwork(4).state_dict(), os.path.join(workdir, "model.pt"))  # Breakout's
    flags = ["--eval-checkpoint", "model.pt", "--env-id", "PongNoFrameskip-v4", "--no-cuda"]
    result = run_script("dqn_atari.py", *flags, cwd=workdir)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "differs from QNetwork for this env" in lines[0], result.stderr


@pytest.mark.parametrize("path", ["no/such/run", "README.md", "tests"])
def test_resume_from_something_that_is_not_a_checkpoint_gives_one_clear_line(workdir, path):
    result = run_script("dqn.py", "--resume", os.path.join(ROOT, path), cwd=workdir)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    expected = "has no checkpoint" if os.path.isdir(os.path.join(ROOT, path)) else "cannot read"
    assert len(result.stderr.strip().splitlines()) == 1 and expected in result.stderr, result.stderr


def test_resuming_a_run_stopped_before_its_first_checkpoint_says_so_in_one_line(workdir):
    proc = start("dqn.py", workdir, "--total-timesteps", 10**7)
    wait_for(os.path.join(workdir, "runs", "*", "events.*"), proc)
    proc.kill()  # kill -9 before any checkpoint: none was written
    proc.wait()
    [run_dir] = run_dirs(workdir)
    result = run_script("dqn.py", "--resume", run_dir, cwd=workdir)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"dqn.py: error: '{run_dir}' has no checkpoint: the run stopped before its first one, or it is not a run folder"
    ]


# ---- one process per run folder ----------------------------------------------------------------------------------


@pytest.mark.parametrize("script", ["dqn.py", "dqn_atari.py"])
def test_two_resumes_of_one_run_at_once_give_one_refusal_naming_the_holder(workdir, script):
    flags = ["--total-timesteps", 600, "--checkpoint-frequency", 600]
    assert run_script(script, *FLAGS[script], *flags, cwd=workdir).returncode == 0
    [run_dir] = run_dirs(workdir)
    first = start(script, workdir, "--resume", run_dir, "--total-timesteps", 10**7)
    wait_for(os.path.join(run_dir, f"events.*.{first.pid}.*"), first)  # the first holds the folder and logs to it
    assert open(os.path.join(run_dir, "lock")).read() == str(first.pid)
    events = sorted(glob.glob(os.path.join(run_dir, "events.*")))
    second = run_script(script, *FLAGS[script], "--resume", run_dir, "--total-timesteps", 10**7, cwd=workdir)
    assert first.poll() is None, "the first goes on"
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=120)
    lines = second.stderr.strip().splitlines()
    assert second.returncode != 0 and len(lines) == 1 and "Traceback" not in second.stderr, second.stderr
    assert f"{script}: error: {run_dir} is in use by process {first.pid}" in lines[0]
    assert sorted(glob.glob(os.path.join(run_dir, "events.*"))) == events, "the refused one wrote no events"


def test_a_killed_run_frees_its_folder_for_a_resume(workdir):
    """The lock is the OS's: a run killed with SIGKILL leaves no stale lock behind."""
    proc = start("dqn.py", workdir, "--total-timesteps", 10**7, "--checkpoint-frequency", 500)
    wait_for(os.path.join(workdir, "runs", "*", "checkpoint", "checkpoint.pt"), proc)
    proc.kill()
    proc.communicate()
    [run_dir] = run_dirs(workdir)
    step = manifest(run_dir)["global_step"]
    result = run_script("dqn.py", *FLAGS["dqn.py"], "--resume", run_dir, "--total-timesteps", step + 500, cwd=workdir)
    assert result.returncode == 0 and f"at step {step:,}" in result.stdout, result.stderr


# ---- an error mid-run keeps the work ------------------------------------------------------------------------------


def assert_error_kept_the_work(result, script, run_dir, error):
    """The error's own traceback is shown, the run exits non-zero, and the last line says how to go on."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and "Traceback (most recent call last)" in result.stderr, result.stderr
    assert error in result.stderr
    assert lines[-1].startswith(f"{script}: RuntimeError at step ") and lines[-1].endswith(f"--resume {run_dir}"), lines


def test_an_error_in_the_users_env_keeps_the_model_and_a_checkpoint_that_resumes(workdir):
    flags = ["--env-id", "tiny_envs:Failing-v0", "--total-timesteps", 3000, "--eval-episodes", 0]
    result = run_script("dqn.py", *FLAGS["dqn.py"], *flags, cwd=workdir, env={"FAIL_AT": "1500"})
    [run_dir] = run_dirs(workdir)
    assert_error_kept_the_work(result, "dqn.py", os.path.relpath(run_dir, workdir), "the env broke at its step 1500")
    assert os.path.exists(os.path.join(run_dir, "dqn.pt")), "the model is saved"
    assert manifest(run_dir)["global_step"] == 1499, "the steps done before the error"
    assert scalars(run_dir)["charts/SPS"][-1][0] == 1400, "the events up to the error are kept"
    resumed = run_script("dqn.py", "--resume", run_dir, cwd=workdir)  # the env mended (no FAIL_AT)
    assert resumed.returncode == 0 and "resumed" in resumed.stdout and "at step 1,499" in resumed.stdout
    last = resumed.stdout.strip().splitlines()[-1]  # the console's progress line, every 10,000 steps and at the end
    assert last.startswith("step 3,000 of 3,000 (100%)  ") and " steps/s  0 h 00 min left  return " in last, last
    assert scalars(run_dir)["charts/SPS"][-1][0] == 3000


def edited_copy(workdir, script, old, new):
    """A copy of the script with one edit, as a researcher makes it."""
    source = open(os.path.join(ROOT, script)).read()
    assert source.count(old) == 1
    path = os.path.join(workdir, script)
    with open(path, "w") as f:
        f.write(source.replace(old, new))
    return path


STEP = "        global_step += n_envs\n"


def test_an_error_in_an_edited_atari_script_keeps_the_work_and_the_mended_script_resumes_it(workdir):
    bug = STEP + '        if global_step == 1200:\n            raise RuntimeError("a bug in my edit")\n'
    copy = edited_copy(workdir, "dqn_atari.py", STEP, bug)
    flags = [*FLAGS["dqn_atari.py"], "--total-timesteps", 1500, "--eval-episodes", 0]
    result = subprocess.run([sys.executable, copy, *map(str, flags)], cwd=workdir, capture_output=True, text=True)
    [run_dir] = run_dirs(workdir)
    assert_error_kept_the_work(result, "dqn_atari.py", os.path.relpath(run_dir, workdir), "a bug in my edit")
    assert os.path.exists(os.path.join(run_dir, "dqn_atari.pt")), "the model is saved"
    saved = manifest(run_dir)
    assert (saved["global_step"], saved["buffer"]["added"]) == (1200, 1199), "all but the step the error came in"
    assert set(os.listdir(os.path.join(run_dir, "checkpoint"))) == checkpoint_files(run_dir) != {"checkpoint.pt"}
    resumed = run_script("dqn_atari.py", "--resume", run_dir, cwd=workdir)  # the script as it was
    assert resumed.returncode == 0 and "at step 1,200" in resumed.stdout, resumed.stderr
    assert scalars(run_dir)["charts/SPS"][-1][0] == 1500


def test_an_error_whose_work_cannot_be_saved_says_so_and_still_shows_the_error(workdir):
    bug = STEP + (
        "        if global_step == 700:\n"
        '            os.rmdir(f"{run_dir}/checkpoint") if os.path.isdir(f"{run_dir}/checkpoint") else None\n'
        '            open(f"{run_dir}/checkpoint", "w").close()  # (a file where the folder goes)\n'
        '            raise RuntimeError("a bug in my edit")\n'
    )
    copy = edited_copy(workdir, "dqn.py", STEP, bug)
    flags = [*FLAGS["dqn.py"], "--total-timesteps", 1000, "--eval-episodes", 0]
    result = subprocess.run([sys.executable, copy, *map(str, flags)], cwd=workdir, capture_output=True, text=True)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and "a bug in my edit" in result.stderr, result.stderr
    assert any(line.startswith("dqn.py: warning: checkpoint of step 700 not written") for line in lines), lines
    assert lines[-1] == "dqn.py: RuntimeError at step 700; no checkpoint written", lines


# ---- the Atari memory's chunks --------------------------------------------------------------------------------------


def test_a_memory_saved_by_chunks_at_any_moments_reads_back_equal_and_each_save_writes_only_what_is_new(
    tmp_path, monkeypatch
):
    import gymnasium as gym

    sys.path.insert(0, ROOT)
    import dqn_atari

    monkeypatch.setattr(dqn_atari, "CHUNKED", ("frames", "first", "actions", "rewards", "dones"))  # all by chunks
    spaces = gym.spaces.Box(0, 255, (4, 6, 6), np.uint8), gym.spaces.Discrete(4)
    rb = dqn_atari.FrameReplayBuffer(50, *spaces, n_envs=2)
    rng = np.random.default_rng(0)
    on_disk, saved_at = {}, 0
    for added in range(1, 181):
        obs, next_obs = rng.integers(0, 256, (2, 2, 4, 6, 6), dtype=np.uint8)
        ended = rng.random(2) < 0.2
        rb.add(obs, next_obs, rng.integers(4, size=2), rng.random(2), ended, {"_final_obs": ended})
        if added not in (7, 8, 60, 61, 150, 180):  # twice in a row, once after more than a lap of 50
            continue
        memory, chunks = dqn_atari.save_memory(rb, str(tmp_path), on_disk)
        for name, saved in chunks.items():
            length = len(getattr(rb, name))
            assert all(last + length > added for last, _ in saved.values()), "a chunk written over since is dropped"
            new = [(first, last, file) for first, (last, file) in saved.items() if first >= saved_at]
            assert all(first % length <= last % length for first, last, _ in new), "a chunk does not wrap around"
            rows = sum(len(np.load(tmp_path / file, mmap_mode="r")) for _, _, file in new)
            assert rows == min(added - saved_at + 1, length), "only the rows written since the last save"
        restored = dqn_atari.FrameReplayBuffer(50, *spaces, n_envs=2)
        dqn_atari.load_memory(restored, memory, chunks, str(tmp_path))
        assert_same_buffer(restored, rb)
        on_disk, saved_at = chunks, added


# ---- dqn.py --eval-checkpoint ---------------------------------------------------------------------------------------


def test_dqn_eval_checkpoint_plays_a_model_a_checkpoint_and_a_run_folders_final_model(workdir):
    flags = ["--total-timesteps", 800, "--eval-episodes", 0, "--save-model", "--checkpoint-frequency", 800]
    assert run_script("dqn.py", *FLAGS["dqn.py"], *flags, cwd=workdir).returncode == 0
    [run_dir] = run_dirs(workdir)
    sys.path.insert(0, ROOT)
    final = __import__("dqn").QNetwork(4, 2)  # a final model unlike the checkpoint's: it always pushes left
    with torch.no_grad():
        for parameter in final.parameters():
            parameter.zero_()
        final.network[-1].bias[0] = 1.0
    torch.save(final.state_dict(), os.path.join(run_dir, "dqn.pt"))

    def played(target, *more):  # the same network and seed play the same episodes
        play = ["--eval-episodes", 3, "--end-e", 0.0, "--no-cuda", *more]
        result = run_script("dqn.py", "--eval-checkpoint", target, *play, cwd=workdir)
        assert result.returncode == 0, result.stderr
        return [line for line in result.stdout.splitlines() if line.startswith("eval:")]

    model, older = played(os.path.join(run_dir, "dqn.pt")), played(os.path.join(run_dir, "checkpoint", "checkpoint.pt"))
    assert model and model != older, "the test needs the two networks to play differently"
    assert played(run_dir, "--capture-video") == model, "a run folder plays its final model"
    assert glob.glob(os.path.join(workdir, "videos", f"{os.path.basename(run_dir)}-eval", "*.mp4"))
    assert run_dirs(workdir) == [run_dir], "evaluating writes no new run"
    torch.save(__import__("dqn").QNetwork(6, 3).state_dict(), os.path.join(workdir, "acrobot.pt"))  # another env's
    result = run_script("dqn.py", "--eval-checkpoint", "acrobot.pt", "--no-cuda", cwd=workdir)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "dqn.py: error: the network in 'acrobot.pt' differs from QNetwork for this env"
    ]
