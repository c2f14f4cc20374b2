"""What a stop costs a long run: seconds from SIGTERM to exit, and checkpoint bytes, with the default 1M-step memory.

    python benchmark/long_runs.py          # docs/long-runs.md's table: about 15 minutes, 16 GB of RAM, 10 GB of disk
    python benchmark/long_runs.py --quick  # only the two cases with about 15k transitions stored

Every case is a real process of the script, run as a user runs it (default flags but `--eval-episodes 0`) in a scratch
folder. Timed: from the SIGTERM to the process's exit (it saves the model, closes TensorBoard and writes its
checkpoint). Counted: the transitions in the memory, the bytes the stop wrote, and the checkpoint folder's bytes after.
- dqn.py, CartPole with `--buffer-size 1000000`, stopped at about 15k steps (its memory is saved whole);
- dqn_atari.py, stopped at about 15k and at about 97k steps: before its first periodic checkpoint (100k), so the stop
  writes every transition stored, the most there is to write at the default frequency;
- dqn_atari.py with a full 1M-step memory: a checkpoint is made of one (frames of real Breakout play, repeated) whose
  last chunk is 100k transitions behind the memory, the most a stop has to write at the default frequency; it is
  resumed (the time to its "resumed" line is the resume's) and stopped at once; then resumed and stopped again, now
  right after a checkpoint. The synthetic checkpoint's first save (the whole memory, 1M rows) is timed too.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def folder_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def written_since(path, moment):
    """Bytes of the files under `path` changed after `moment` (a time.time())."""
    files = [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]
    return sum(os.path.getsize(f) for f in files if os.path.getmtime(f) >= moment)


def stop(script, cwd, flags, at_step=None):
    """Starts the script, sends SIGTERM once it has done about `at_step` steps (None: right after its "resumed" line);
    returns (seconds to its "resumed" line or None, seconds from the SIGTERM to its exit, the moment it was sent)."""
    started = time.time()
    proc = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, script), *map(str, flags)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    resumed, seen = None, []  # (time, step) of each console line
    for line in proc.stdout:
        if line.startswith("resumed"):
            resumed = time.time() - started
            break
        if line.startswith("step "):
            seen.append((time.time(), int(line.split()[1].replace(",", ""))))
            if seen[-1][1] + 10_000 > at_step:  # the last console line before the step: wait out the rest
                (t0, s0), (t1, s1) = seen[-2:] if len(seen) > 1 else ((started, 0), seen[-1])
                time.sleep(max(0.0, (at_step - s1) * (t1 - t0) / (s1 - s0)))
                break
    signalled = time.time()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate()
    seconds = time.time() - signalled
    assert proc.returncode == 128 + signal.SIGTERM and "--resume" in err, err
    return resumed, seconds, signalled


def row(case, run_dir, seconds, signalled, resumed=None):
    import torch

    saved = torch.load(os.path.join(run_dir, "checkpoint", "checkpoint.pt"), weights_only=True, mmap=True)
    buffer = saved["buffer"]
    stored = buffer["added"] if "added" in buffer else int(buffer["buffer_size"] if buffer["full"] else buffer["pos"])
    mib = 2**20
    print(
        f"| {case} | {stored:,} | {written_since(run_dir, signalled) / mib:,.0f} MiB | {seconds:.1f} s | "
        f"{folder_bytes(os.path.join(run_dir, 'checkpoint')) / mib:,.0f} MiB | "
        f"{'' if resumed is None else f'{resumed:.1f} s'} |",
        flush=True,
    )


def full_memory_checkpoint(cwd, behind=100_000):
    """A dqn_atari.py run folder whose checkpoint holds a full 1M-step memory, its last chunk `behind` transitions
    before the memory's newest; returns (the run folder, seconds the chunk of 1M rows took to write)."""
    import torch

    sys.path.insert(0, ROOT)
    from bench import breakout_stream

    import dqn_atari

    flags = ["--total-timesteps", 1000, "--learning-starts", 500, "--checkpoint-frequency", 1000, "--eval-episodes", 0]
    made = subprocess.run(
        [sys.executable, os.path.join(ROOT, "dqn_atari.py"), *map(str, flags)], cwd=cwd, capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    [run] = os.listdir(os.path.join(cwd, "runs"))
    run_dir = os.path.join(cwd, "runs", run)
    folder = os.path.join(run_dir, "checkpoint")
    state = torch.load(os.path.join(folder, "checkpoint.pt"), weights_only=True)
    for name in os.listdir(folder):  # the real run's chunk: replaced by the full memory's
        if name.endswith(".npy"):
            os.remove(os.path.join(folder, name))

    import gymnasium as gym

    steps = breakout_stream(dqn_atari)
    rb = dqn_atari.FrameReplayBuffer(1_000_000, gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), gym.spaces.Discrete(4))
    frames = np.stack([obs[0, -1] for obs, *_ in steps])  # real frames, repeated over the memory
    for row in range(0, len(rb.frames), len(frames)):
        rb.frames[row : row + len(frames), 0] = frames[: len(rb.frames) - row]
    rb.actions[:] = np.random.default_rng(0).integers(4, size=rb.actions.shape)
    rb.added, rb.pos, rb.full, rb.ended = 1_100_000 - behind, (1_100_000 - behind) % 1_000_000, True, [False]
    started = time.time()
    _, chunks = dqn_atari.save_memory(rb, folder, {})  # the whole memory, as a first checkpoint after 1M steps
    seconds = time.time() - started
    rb.added, rb.pos = 1_100_000, 1_100_000 % 1_000_000  # (the rows since: as they are, for the timing)
    memory, _ = dqn_atari.save_memory(rb, None, {})
    state.update(buffer=memory, chunks=chunks, global_step=1_100_000)
    torch.save(state, os.path.join(folder, "checkpoint.pt"))
    return run_dir, seconds


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the cases with about 15k transitions")
    options = parser.parse_args()
    from bench import machine

    print(machine())
    print("\n| case | transitions stored | written by the stop | SIGTERM to exit | checkpoint on disk | resume |")
    print("|---|---|---|---|---|---|")
    quiet = ["--eval-episodes", 0]
    cases = [("dqn.py", 15_000, ["--buffer-size", 1_000_000]), ("dqn_atari.py", 15_000, [])]
    cases += [] if options.quick else [("dqn_atari.py", 97_000, [])]
    for script, steps, flags in cases:
        with tempfile.TemporaryDirectory(dir=ROOT) as cwd:
            _, seconds, signalled = stop(script, cwd, [*flags, *quiet], at_step=steps)
            [run] = os.listdir(os.path.join(cwd, "runs"))
            memory = " ".join(map(str, flags)) or "defaults (1M memory, checkpoints every 100k)"
            row(
                f"{script}, {memory}, stopped at about {steps:,} steps",
                os.path.join(cwd, "runs", run),
                *(seconds, signalled),
            )
    if not options.quick:
        with tempfile.TemporaryDirectory(dir=ROOT) as cwd:
            run_dir, first_save = full_memory_checkpoint(cwd)
            chunks = os.path.join(run_dir, "checkpoint")
            whole = folder_bytes(chunks) - os.path.getsize(os.path.join(chunks, "checkpoint.pt"))
            print(
                f"| (its first save: the whole memory by one chunk) | 1,000,000 | {whole / 2**20:,.0f} MiB | "
                f"{first_save:.1f} s | | |"
            )
            for case in ("100k transitions since its last checkpoint", "right after a checkpoint"):
                flags = ["--resume", run_dir, "--total-timesteps", 10_000_000]
                resumed, seconds, signalled = stop("dqn_atari.py", cwd, flags)
                row(f"dqn_atari.py, a full 1M memory, {case}", run_dir, seconds, signalled, resumed)
