"""FrameReplayBuffer's add() and sample(32): 613c60e's (a start flag per row) against the working tree's (the number of
each row's episode-first transition), and SB3's memory-optimised ReplayBuffer (CleanRL's), in one process.

    python benchmark/results/frame_buffer_first/measure.py

Synthetic 84x84 frames, an episode end every 97 steps, 205,000 adds into a 200,000-transition memory (the time per
add includes making its arrays), then sample(32), best of 5 x 500 calls, one torch thread.
"""

import importlib.util
import os
import subprocess
import tempfile
import time

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.buffers import ReplayBuffer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
N, SPACE, ACTIONS = 200_000, gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), gym.spaces.Discrete(4)


def load(name, source):
    path = os.path.join(tempfile.mkdtemp(), "dqn_atari.py")
    open(path, "w").write(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(rb, frames):
    start = time.perf_counter()
    for i in range(N + 5000):
        ended = i % 97 == 96
        obs = np.ascontiguousarray(np.broadcast_to(frames[i % 1000], (1, 4, 84, 84)))
        next_obs = np.ascontiguousarray(np.broadcast_to(frames[(i + 1) % 1000], (1, 4, 84, 84)))
        infos = {"_final_obs": np.array([ended])} if ended else {}
        rb.add(obs, next_obs, np.array([i % 4]), np.array([1.0]), np.array([ended]), infos)
    add = (time.perf_counter() - start) / (N + 5000)
    best = []
    for _ in range(5):
        np.random.seed(1)
        start = time.perf_counter()
        for _ in range(500):
            rb.sample(32)
        best.append((time.perf_counter() - start) / 500)
    return add, min(best)


if __name__ == "__main__":
    torch.set_num_threads(1)
    old = subprocess.run(["git", "-C", ROOT, "show", "613c60e:dqn_atari.py"], capture_output=True, text=True).stdout
    new = open(os.path.join(ROOT, "dqn_atari.py")).read()
    frames = np.random.default_rng(0).integers(0, 256, (1000, 84, 84), np.uint8)
    makers = {
        "613c60e": lambda: load("old", old).FrameReplayBuffer(N, SPACE, ACTIONS, "cpu", 1),
        "working tree": lambda: load("new", new).FrameReplayBuffer(N, SPACE, ACTIONS, "cpu", 1),
        "SB3 ReplayBuffer(optimize_memory_usage=True), CleanRL's": lambda: ReplayBuffer(
            N, SPACE, ACTIONS, "cpu", 1, optimize_memory_usage=True, handle_timeout_termination=False
        ),
    }
    cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    print(f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}")
    for label, make in makers.items():
        add, sample = measure(make(), frames)
        print(f"{label}: add {add * 1e6:.1f} us, sample(32) {sample * 1e6:.0f} us (best of 5 x 500)")
