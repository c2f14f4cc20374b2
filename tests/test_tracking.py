"""--track: Weights & Biases, run for real in offline mode; what it wrote is read back from its run files."""

import glob
import json
import os
import signal
import struct
import subprocess
import sys
import time

import pytest
from wandb.proto import wandb_internal_pb2  # requirements-dev.txt installs wandb; the scripts need it only for --track

from conftest import ROOT, TESTS, run_dirs, run_script

OFFLINE = {"WANDB_MODE": "offline", "WANDB_SILENT": "true"}


def wandb_records(run_file):
    """The records of an offline W&B run file: a LevelDB-style log (7-byte file header, 32 KiB blocks, records in
    pieces behind 7-byte headers: checksum, length, type), each record a wandb_internal_pb2.Record."""
    data, records, pieces, pos = open(run_file, "rb").read(), [], b"", 7
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:
            break
        pieces, pos = pieces + data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            records.append(wandb_internal_pb2.Record.FromString(pieces))
            pieces = b""
    return records


def offline_runs(workdir):
    """[(run record, config, history rows)] of every offline W&B run under workdir, oldest first."""
    runs = []
    for run_file in sorted(glob.glob(os.path.join(workdir, "wandb", "offline-run-*", "run-*.wandb"))):
        records = wandb_records(run_file)
        run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
        config = {i.key: json.loads(i.value_json) for i in run.config.update}
        history = [
            {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
            for r in records
            if r.WhichOneof("record_type") == "history"
        ]
        runs.append((run, config, history))
    return runs


@pytest.mark.parametrize(
    "script,flags",
    [
        ("dqn.py", ["--total-timesteps", 1500, "--learning-starts", 500]),
        ("dqn_atari.py", ["--total-timesteps", 600, "--learning-starts", 300, "--buffer-size", 1000, "--end-e", 1]),
    ],
)
def test_track_syncs_tensorboard_config_and_videos_to_a_wandb_run(workdir, script, flags):
    result = run_script(
        script,
        "--track",
        "--wandb-project-name",
        "tests",
        *flags,
        "--eval-episodes",
        1,
        "--capture-video",
        "--no-cuda",
        cwd=workdir,
        env=OFFLINE,
    )
    assert result.returncode == 0, result.stderr
    [(run, config, history)] = offline_runs(workdir)
    run_name = os.path.basename(run_dirs(workdir)[0])
    assert run.display_name == run_name and run.run_id == run_name and run.project == "tests"
    assert config["env_id"] == ("CartPole-v1" if script == "dqn.py" else "BreakoutNoFrameskip-v4")
    assert config["total_timesteps"] == flags[1]
    steps = [row["global_step"] for row in history if "charts/SPS" in row]
    assert steps == list(range(100, flags[1] + 1, 100)), "every TensorBoard point reaches W&B"
    assert any("losses/td_loss" in row for row in history) and any("charts/episodic_return" in row for row in history)
    videos = [
        row[key[: -len("_type")] + "path"]
        for row in history
        for key in row
        if key.startswith("videos/") and key.endswith("/_type") and row[key] == "video-file"
    ]
    assert videos and all(glob.glob(os.path.join(workdir, "wandb", "offline-run-*", "files", v)) for v in videos), (
        videos
    )


def test_a_resumed_run_continues_the_same_wandb_run(workdir):
    flags = [
        "--track",
        "--learning-starts",
        500,
        "--eval-episodes",
        0,
        "--no-cuda",
        "--total-timesteps",
        20000,
        "--checkpoint-frequency",
        1000,
    ]
    proc = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "dqn.py"), *map(str, flags)],
        cwd=workdir,
        env={**os.environ, **OFFLINE, "PYTHONPATH": TESTS},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not glob.glob(os.path.join(workdir, "runs", "*", "checkpoint*")):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143, proc.stderr.read()
    result = run_script("dqn.py", "--resume", run_dirs(workdir)[0], cwd=workdir, env=OFFLINE)
    assert result.returncode == 0, result.stderr
    (first, _, before), (second, _, after) = offline_runs(workdir)
    assert first.run_id == second.run_id == os.path.basename(run_dirs(workdir)[0])
    stopped = max(row["global_step"] for row in before if "charts/SPS" in row)
    resumed = [row["global_step"] for row in after if "charts/SPS" in row]
    assert resumed == list(range(resumed[0], 20001, 100)) and stopped - 1000 < resumed[0] <= stopped + 100


@pytest.mark.parametrize("script", ["dqn.py", "dqn_atari.py"])
def test_track_without_wandb_installed_stops_at_once_with_one_line(workdir, script):
    hide = os.path.join(workdir, "hide_wandb")
    os.makedirs(hide)
    with open(os.path.join(hide, "sitecustomize.py"), "w") as f:
        f.write("import sys\nsys.modules['wandb'] = None  # as if it were not installed\n")
    result = run_script(script, "--track", "--no-cuda", cwd=workdir, env={"PYTHONPATH": os.pathsep.join([hide, TESTS])})
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"{script}: error: --track needs wandb: pip install wandb"]
    assert not os.path.exists(os.path.join(workdir, "runs")) and not os.path.exists(os.path.join(workdir, "wandb"))
