"""Measures dqn.py and dqn_atari.py on this machine and prints a markdown table.

    python benchmark/bench.py            # the table in README (a few minutes on 2 cores)
    python benchmark/bench.py --quick    # fewer steps, for a look
    python benchmark/bench.py --checkpoint   # only: saving a full 1M-step Atari replay memory, then 10k steps later

For each configuration the script runs as a user would (a fresh process in a scratch folder) and the numbers come
from outside it: wall time of the whole process, peak resident memory (the kernel's rusage), and steps/s before and
after learning starts from the wall-clock stamps of its TensorBoard `charts/SPS` points. Start-up is the whole-process
wall time of a 2-step run (imports, env and network creation, one update, writing the logs), best of 3.
Then the replay memory of dqn_atari.py: bytes per transition, what resident memory grows per stored step, and what
`sample(32)` costs against SB3's plain ReplayBuffer. With --checkpoint, only the seconds and bytes of dqn_atari.py's
checkpoint of a full 1M-step replay memory (SIGTERM with no earlier checkpoint), then of the next one 10k steps later
(a periodic checkpoint, or SIGTERM 10k steps after one), written to a scratch folder.
"""
import argparse
import glob
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *flags):
    """Runs a script; returns (wall seconds, peak RSS MiB, {tag: [(wall_time, step, value)]})."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with tempfile.TemporaryDirectory() as cwd:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, os.path.join(ROOT, script), "--no-cuda", *map(str, flags)], cwd=cwd,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if status != 0:
            sys.exit(f"bench.py: error: {script} {' '.join(map(str, flags))} failed: {proc.stderr.read().decode()[-500:]}")
        acc = EventAccumulator(glob.glob(os.path.join(cwd, "runs", "*"))[0], size_guidance={"scalars": 0}).Reload()
        tags = {t: [(e.wall_time, e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
        return wall, usage.ru_maxrss / 1024, tags


def steps_per_second(sps, first, last):
    """Env steps/s between the SPS points nearest to steps `first` and `last`."""
    a = min(sps, key=lambda p: abs(p[1] - first))
    b = min(sps, key=lambda p: abs(p[1] - last))
    return (b[1] - a[1]) / (b[0] - a[0])


def measure(name, script, before, after, *flags):
    total = before + after
    startup = min(run(script, *flags, "--total-timesteps", 2, "--learning-starts", 1, "--eval-episodes", 0)[0]
                  for _ in range(3))  # best of 3: the first start after a change may read cold files
    wall, rss, tags = run(script, *flags, "--total-timesteps", total, "--learning-starts", before, "--eval-episodes", 0)
    sps = tags["charts/SPS"]
    pre = steps_per_second(sps, min(1000, before // 10), before)
    post = steps_per_second(sps, before + min(1000, after // 10), total)
    print(f"| {name} | {startup:.1f} | {pre:,.0f} | {post:,.0f} | {wall:.1f} | {rss:,.0f} |", flush=True)


def breakout_stream(dqn_atari, n=2000):
    """n real Breakout transitions of a random agent, as rb.add's arguments, to replay in a loop."""
    envs = dqn_atari.make_env("BreakoutNoFrameskip-v4", 1)
    obs, _ = envs.reset(seed=0)
    steps = []
    for _ in range(n):
        next_obs, r, term, trunc, info = envs.step(np.random.randint(4, size=1))
        steps.append((obs, next_obs, np.random.randint(4, size=1), np.sign(r), term))
        obs = next_obs
    envs.close()
    return steps


def buffer_numbers(capacity, fill):
    import gymnasium as gym
    import psutil
    from stable_baselines3.common.buffers import ReplayBuffer

    sys.path.insert(0, ROOT)
    import dqn_atari

    obs_space, act_space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), gym.spaces.Discrete(4)
    steps = breakout_stream(dqn_atari)
    process = psutil.Process()
    rb = dqn_atari.FrameReplayBuffer(capacity, obs_space, act_space)
    arrays = sum(v.nbytes for v in vars(rb).values() if isinstance(v, np.ndarray))
    rss0 = process.memory_info().rss
    for i in range(fill):
        rb.add(*steps[i % len(steps)], {})
    grown = (process.memory_info().rss - rss0) / fill
    print(f"- FrameReplayBuffer({capacity:,}): {arrays / capacity:,.0f} bytes per transition "
          f"({arrays / 2**30:.2f} GiB for all its arrays); resident memory grew {grown:,.0f} bytes per stored step "
          f"over {fill:,} steps (SB3's plain buffer: {2 * 4 * 84 * 84 + 8 + 4 + 4 + 4:,} bytes per transition)")
    plain = ReplayBuffer(fill, obs_space, act_space, "cpu", handle_timeout_termination=False)
    small = dqn_atari.FrameReplayBuffer(fill, obs_space, act_space)
    for i in range(fill):
        plain.add(*steps[i % len(steps)], {})
        small.add(*steps[i % len(steps)], {})
    for label, buffer in (("SB3 ReplayBuffer", plain), ("FrameReplayBuffer", small)):
        times = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(500):
                buffer.sample(32)
            times.append((time.perf_counter() - start) / 500)
        print(f"- sample(32), {label} of {fill:,}: {min(times) * 1e6:,.0f} us (best of 5 x 500)")


def checkpoint_numbers(capacity, more):
    """dqn_atari.py's checkpoint (networks, optimizer, replay memory) of a full buffer, then `more` steps later."""
    import gymnasium as gym
    import torch

    sys.path.insert(0, ROOT)
    import dqn_atari

    steps = breakout_stream(dqn_atari)
    rb = dqn_atari.FrameReplayBuffer(capacity, gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), gym.spaces.Discrete(4))
    q_network, target_network = dqn_atari.QNetwork(4), dqn_atari.QNetwork(4)
    optimizer = torch.optim.Adam(q_network.parameters(), lr=1e-4)
    q_network(torch.zeros(1, 4, 84, 84)).sum().backward()
    optimizer.step()  # Adam's moments exist, as in a run
    tensors = {"q_network": q_network.state_dict(), "target_network": target_network.state_dict(),
               "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()}
    with tempfile.TemporaryDirectory() as run_dir:
        folder = os.path.join(run_dir, "checkpoint")
        for label, adds in (("a full replay memory", capacity), (f"{more:,} steps later", more)):
            for _ in range(adds):
                rb.add(*steps[rb.added % len(steps)], {})
            before = set(os.listdir(folder)) if os.path.isdir(folder) else set()
            start = time.perf_counter()
            assert dqn_atari.write_checkpoint(({"global_step": rb.added}, tensors, rb, rb.added), run_dir)
            seconds = time.perf_counter() - start
            new = set(os.listdir(folder)) - before | {"checkpoint.json"}
            written = sum(os.path.getsize(os.path.join(folder, f)) for f in new)
            print(f"- checkpoint of {label} (FrameReplayBuffer({capacity:,}), {rb.added:,} steps added): {seconds:.1f} s "
                  f"to write {written / 2**20:,.0f} MiB in {len(new)} files", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps")
    parser.add_argument("--checkpoint", action="store_true", help="only the checkpoint of a full 1M-step Atari replay memory")
    options = parser.parse_args()
    if options.checkpoint:
        sys.exit(checkpoint_numbers(1_000_000, 10_000))
    q = options.quick
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}\n")
    print("| configuration | start-up (s) | steps/s before learning | steps/s after learning | wall (s) | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|")
    cp_before, cp_after = (10000, 50000) if not q else (5000, 10000)
    measure(f"dqn.py CartPole-v1, {cp_before // 1000}k + {cp_after // 1000}k steps, 1 env", "dqn.py", cp_before, cp_after)
    measure(f"dqn.py CartPole-v1, {cp_before // 1000}k + {cp_after // 1000}k steps, 8 envs", "dqn.py", cp_before, cp_after,
            "--num-envs", 8)
    at_before, at_after = (10000, 4000) if not q else (3000, 1000)
    for n in (1, 8):
        measure(f"dqn_atari.py Breakout, {at_before // 1000}k + {at_after // 1000}k steps, {n} env{'s' * (n > 1)}, "
                "buffer 100k", "dqn_atari.py", at_before, at_after, "--num-envs", n, "--buffer-size", 100000,
                "--env-id", "BreakoutNoFrameskip-v4", "--end-e", 0.9)  # epsilon 1 -> 0.9: the default run's first 8%
    print()
    buffer_numbers(1_000_000, 50_000 if q else 200_000)
