import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
sys.path[:0] = [ROOT, TESTS]  # the scripts and tiny_envs import as modules in unit tests


def run_script(script, *flags, cwd, timeout=300, env=None):
    """Runs `python <script> <flags>` in `cwd` as a user would; tiny_envs is importable."""
    environ = {**os.environ, "PYTHONPATH": TESTS, **(env or {})}
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, script), *map(str, flags)],
        cwd=cwd, env=environ, capture_output=True, text=True, timeout=timeout,
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
    yield
    for s, handler in kept.items():
        signal.signal(s, handler)
