"""Breakout, FIRE at the start of every life (dqn_atari.py's default) against no FIRE (--no-fire-after-life-loss).

    python benchmark/breakout_serve.py                 # both arms, one after the other (about 3 h on 2 cores)
    python benchmark/breakout_serve.py --arms on       # one arm only
    python benchmark/breakout_serve.py --report-only   # rebuild the table and plot from the runs already there

Each arm is `runner.py` (on Ray) with seeds 1 and 2 side by side (one CPU and one torch thread each) and
`--total-timesteps 300000 --learning-starts 20000 --buffer-size 100000 --eval-episodes 0`, all else default,
into `<out>/<arm>`. The report reads the runs' TensorBoard events: the mean game score in each 50k-step bin (games
counted where they end), the mean of the last 40 games, the steps reached, wall time and steps/s per run; and one
PNG of every run's score (mean of its last 40 games) against env steps.
"""
import argparse
import glob
import os
import subprocess
import sys

import numpy as np

from report import read_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARMS = {"off": ["--no-fire-after-life-loss"], "on": []}
FLAGS = ["--total-timesteps", "300000", "--learning-starts", "20000", "--buffer-size", "100000", "--eval-episodes", "0"]
BIN, LAST, TOTAL = 50_000, 40, 300_000


def report(out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = [f"{a // 1000}k-{(a + BIN) // 1000}k" for a in range(0, TOTAL, BIN)]
    rows = ["| arm | seed | " + " | ".join(bins) + f" | last {LAST} games | steps reached | wall (s) | steps/s |",
            "|---|---|" + "---|" * (len(bins) + 4)]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for arm, color in (("off", "tab:gray"), ("on", "tab:blue")):
        for run_dir in sorted(glob.glob(os.path.join(out, arm, "runs", "*"))):
            seed, run = os.path.basename(run_dir).split("__")[2], read_run(run_dir)
            steps, scores = run["returns"][:, 1], run["returns"][:, 2]
            means = [scores[(steps > a) & (steps <= a + BIN)] for a in range(0, TOTAL, BIN)]
            cells = [f"{m.mean():.2f} ({len(m)}){'*' if run['steps'] < a + BIN else ''}" if len(m) else "n/a"
                     for a, m in zip(range(0, TOTAL, BIN), means)]
            wall = run["wall"]
            rows.append(f"| {arm} | {seed} | " + " | ".join(cells) + f" | {scores[-LAST:].mean():.2f} | "
                        f"{run['steps']:,.0f} | {wall:,.0f} | {run['steps'] / wall:,.0f} |")
            smooth = np.convolve(scores, np.ones(LAST), "full")[: len(scores)] / np.minimum(np.arange(1, len(scores) + 1), LAST)
            ax.plot(steps, smooth, color=color, ls="-" if seed == "1" else "--", label=f"{arm}, seed {seed}")
    ax.set_xlabel("environment steps")
    ax.set_ylabel(f"game score (mean of the last {LAST} games)")
    ax.set_title("dqn_atari.py, BreakoutNoFrameskip-v4: FIRE at each new life (on) vs none (off)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "breakout_serve.png"), dpi=80)
    table = "\n".join(rows)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(f"Game score per 50k-step bin: mean (games ended in the bin); * a bin the run did not reach the end of."
                f"\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmark", "results", "breakout_serve"))
    parser.add_argument("--report-only", action="store_true")
    a = parser.parse_args()
    for arm in [] if a.report_only else a.arms:
        subprocess.run([sys.executable, os.path.join(ROOT, "benchmark", "runner.py"), "--scripts", "dqn_atari.py",
                        "--env-ids", "BreakoutNoFrameskip-v4", "--seeds", "1", "2", "--cpus-per-run", "1",
                        "--out", os.path.join(a.out, arm), "--", *FLAGS, *ARMS[arm]], check=True)
    report(a.out)
