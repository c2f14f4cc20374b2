"""The mean game score of runs in bins of env steps, from their TensorBoard events: a learning check of two versions.

    python benchmark/bins.py RUN_DIR_OR_SWEEP ... [--bin 50000] [--upto 100000]

Each argument is a run folder or a folder whose `runs/` (or itself) holds run folders. Games count in the bin where
they end. One Markdown row per run, then per env id of each argument its runs' mean.
"""

import argparse
import glob
import os

import numpy as np
from report import read_run

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--bin", type=int, default=50_000)
    parser.add_argument("--upto", type=int, default=100_000)
    a = parser.parse_args()
    edges = range(0, a.upto, a.bin)
    print("| runs | run | " + " | ".join(f"{lo // 1000}k-{(lo + a.bin) // 1000}k" for lo in edges) + " | games |")
    print("|---|---|" + "---|" * (len(edges) + 1))
    for folder in a.folders:
        if glob.glob(os.path.join(glob.escape(folder), "events.*")):
            runs = [folder]
        else:
            parent = os.path.join(folder, "runs") if os.path.isdir(os.path.join(folder, "runs")) else folder
            runs = sorted(glob.glob(os.path.join(glob.escape(parent), "*", "")))
        tables = {}  # env id -> its runs' rows
        for run_dir in runs:
            steps, scores = read_run(run_dir)["returns"][:, 1:].T
            row = [scores[(steps > lo) & (steps <= lo + a.bin)].mean() for lo in edges] + [(steps <= a.upto).sum()]
            tables.setdefault(os.path.basename(os.path.normpath(run_dir)).split("__")[0], []).append(row)
            print(
                f"| {folder} | {os.path.basename(os.path.normpath(run_dir))} | "
                + " | ".join(f"{v:.2f}" for v in row[:-1])
                + f" | {row[-1]:.0f} |"
            )
        for env_id, table in tables.items():
            mean = np.mean(table, axis=0)
            print(
                f"| {folder} | {env_id}, mean of {len(table)} | "
                + " | ".join(f"{v:.2f}" for v in mean[:-1])
                + f" | {mean[-1]:.0f} |"
            )
