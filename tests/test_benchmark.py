"""benchmark/runner.py: runs seeds in parallel workers and reports what their TensorBoard events say."""
import os
import subprocess
import sys

from conftest import ROOT


def test_runner_runs_every_seed_and_writes_the_table_and_plots(tmp_path):
    out = tmp_path / "results"
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmark", "runner.py"), "--env-ids", "CartPole-v1",
                             "--seeds", "1", "2", "--workers", "2", "--out", str(out), "--",
                             "--total-timesteps", "1500", "--learning-starts", "1000", "--eval-episodes", "2"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(os.listdir(out / "logs")) == ["dqn__CartPole-v1__1.log", "dqn__CartPole-v1__2.log"]
    rows = (out / "results.md").read_text().splitlines()
    assert len(rows) == 3 and rows[2].startswith("| dqn.py | CartPole-v1 | 1,2 | ")
    assert (out / "dqn__CartPole-v1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_runner_reports_a_failed_run_and_exits_non_zero(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmark", "runner.py"), "--env-ids", "NoSuchEnv-v0",
                             "--seeds", "1", "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "FAILED" in result.stdout
