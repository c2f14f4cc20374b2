"""Env steps/s of Breakout under random play, for the ways dqn_atari.py could step its envs (1 and 8 envs, median of 3).

    python benchmark/atari_envs.py [--baseline 94fefc3]

Rows: this dqn_atari.py's make_env in gymnasium's SyncVectorEnv (what the script uses) and in AsyncVectorEnv, and with
--baseline, that ref's make_env (94fefc3: ale-py's C++ AtariVectorEnv). Nothing else should run meanwhile.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import gymnasium as gym
import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def steps_per_second(make, n, steps):
    envs = make(n)
    envs.reset(seed=0)
    actions = np.random.default_rng(0).integers(4, size=(steps, n))
    start = time.perf_counter()
    for a in actions:
        envs.step(a)
    elapsed = time.perf_counter() - start
    envs.close()
    return steps * n / elapsed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="a git ref whose make_env(env_id, num_envs) returns a vector env")
    a = parser.parse_args()
    torch.set_num_threads(1)
    sys.path.insert(0, ROOT)
    import dqn_atari

    mode = gym.vector.AutoresetMode.SAME_STEP
    rows = {
        "SB3 wrappers in SyncVectorEnv (this version)": lambda n: gym.vector.SyncVectorEnv(
            [dqn_atari.make_env("BreakoutNoFrameskip-v4", i) for i in range(n)], autoreset_mode=mode
        ),
        "SB3 wrappers in AsyncVectorEnv": lambda n: gym.vector.AsyncVectorEnv(
            [dqn_atari.make_env("BreakoutNoFrameskip-v4", i) for i in range(n)], autoreset_mode=mode
        ),
    }
    if a.baseline:
        folder = tempfile.mkdtemp()
        with open(os.path.join(folder, "baseline_atari.py"), "w") as f:
            f.write(subprocess.check_output(["git", "-C", ROOT, "show", f"{a.baseline}:dqn_atari.py"], text=True))
        sys.path.insert(0, folder)
        import baseline_atari

        rows[f"{a.baseline}'s make_env"] = lambda n: baseline_atari.make_env("BreakoutNoFrameskip-v4", n)
    print("| env steps/s, Breakout, random play | 1 env | 8 envs |\n|---|---|---|")
    for name, make in rows.items():
        cells = [np.median([steps_per_second(make, n, 4000 // n) for _ in range(3)]) for n in (1, 8)]
        print(f"| {name} | {cells[0]:,.0f} | {cells[1]:,.0f} |", flush=True)
