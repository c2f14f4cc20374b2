import glob
import os
import subprocess
import sys

import pytest

# the scripts under test: this checkout's, or a mutated copy's (tests/mutants.py points DQN_SCRIPTS at it)
ROOT = os.environ.get("DQN_SCRIPTS") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
sys.path[:0] = [ROOT, TESTS]  # the scripts and tiny_envs import as modules in unit tests


def run_script(script, *flags, cwd, timeout=300, env=None):
    """Runs `python <script> <flags>` in `cwd` as a user would; tiny_envs is importable."""
    environ = {**os.environ, "PYTHONPATH": TESTS, **(env or {})}
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, script), *map(str, flags)],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_dirs(cwd):
    return sorted(glob.glob(os.path.join(cwd, "runs", "*")))


def scalars(run_dir):
    """{tag: [(step, value), ...]} read back from a run's TensorBoard events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(run_dir, size_guidance={"scalars": 0}).Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.fixture
def workdir(tmp_path):
    return str(tmp_path)


@pytest.fixture(autouse=True)
def keep_signal_handlers():
    """Scripts run in-process install their Ctrl-C handlers; give pytest its own back."""
    import signal

    kept = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    excepthook = sys.excepthook  # (and the error hook that keeps a run's work)
    yield
    for s, handler in kept.items():
        signal.signal(s, handler)
    sys.excepthook = excepthook


def spied_run(monkeypatch, workdir, script, *flags):
    """Runs the script in-process; returns its globals and every update's (batch, td_target, Q of the actions)."""
    import runpy

    import torch
    from stable_baselines3.common.buffers import ReplayBuffer

    updates, batches = [], []
    sample, mse_loss = ReplayBuffer.sample, torch.nn.functional.mse_loss
    monkeypatch.setattr(
        ReplayBuffer, "sample", lambda self, n, env=None: batches.append(sample(self, n)) or batches[-1]
    )
    monkeypatch.setattr(
        torch.nn.functional,
        "mse_loss",
        lambda td_target, old_val: (
            updates.append((batches[-1], td_target.detach().clone(), old_val.detach().clone()))
            or mse_loss(td_target, old_val)
        ),
    )
    os.makedirs(workdir, exist_ok=True)
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(sys, "argv", [script, "--no-cuda", "--eval-episodes", "0", *map(str, flags)])
    return runpy.run_path(os.path.join(ROOT, script), run_name="__main__"), updates


def terminal_samples_checked(updates, target_network, gamma):
    """Checks every update's TD target: the reward alone at a terminal transition, otherwise the reward plus gamma times
    the target network's max over next actions. Returns how many terminal samples the batches held."""
    import torch

    dones = 0
    for data, td_target, _ in updates:
        done, reward = data.dones.flatten() == 1, data.rewards.flatten()
        with torch.no_grad():
            bootstrap = gamma * target_network(data.next_observations).max(dim=1).values
        assert torch.equal(td_target[done], reward[done]), "a terminal transition: no bootstrap"
        assert torch.allclose(td_target[~done], reward[~done] + bootstrap[~done], atol=1e-6)
        dones += done.sum().item()
    return dones
