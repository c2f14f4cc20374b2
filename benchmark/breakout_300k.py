"""Breakout, 300k agent steps, two seeds side by side: the learning check of dqn_atari.py against CleanRL.

    python benchmark/breakout_300k.py                    # seeds 1 and 2 at once (about 80 min on 2 cores)
    python benchmark/breakout_300k.py --seeds 3 4        # then seeds 3 and 4
    python benchmark/breakout_300k.py --report-only      # rebuild the table and the plot from the runs there
    python benchmark/breakout_300k.py --report-only --compare CleanRL=benchmark/results/breakout_protocol/cleanrl \
        "ours + CleanRL's memory=benchmark/results/breakout_protocol/ablation_cleanrl_memory"   # the committed report

Each run is `dqn_atari.py --seed S --total-timesteps 300000 --learning-starts 20000 --buffer-size 100000
--eval-episodes 0 --torch-threads 1 --checkpoint-frequency 50000` (all else default: epsilon falls over the first
30k steps) in `<out>`; a run stopped part-way is resumed from its checkpoint by the same command. The report reads
the runs' TensorBoard events: the mean game score per 50k-step bin (games counted where they end, their number in
brackets), the mean of the last 40 games, wall time and steps/s; beside them other runs (`--compare LABEL=FOLDER`:
a folder's events, or else CleanRL's console logs `seed{S}.log`, a line per game) and CleanRL's per-bin means of
its seeds 1 and 2 (issue 21, known as means only), pooled with a CleanRL folder's seeds. One PNG of every run's score
(the mean of its last 40 games) against env steps, each program's mean over its seeds, and CleanRL's seeds 1 and 2
bin means as steps. The `runs/` folders are git-ignored (checkpoints are large): commit a run's events with
`git add -f <out>/runs/*/events.out.tfevents.*`, or its console log.
"""

import argparse
import glob
import os
import re
import subprocess
import sys

import numpy as np
from report import read_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = [
    "--total-timesteps",
    "300000",
    "--learning-starts",
    "20000",
    "--buffer-size",
    "100000",
    "--eval-episodes",
    "0",
    "--torch-threads",
    "1",
    "--checkpoint-frequency",
    "50000",
]
BIN, LAST, TOTAL = 50_000, 40, 300_000
GRID = np.arange(5_000, TOTAL + 1, 1_000)  # the steps at which seeds' curves are averaged
CLEANRL = [1.4, 4.1, 13.4, 19.4, 22.4, 27.2]  # per bin, mean of seeds 1 and 2; the last 40 games: 31.1 (33.0, 29.1)
CLEANRL_LAST = 31.1


def run(out, seeds):
    procs = []
    for seed in seeds:
        done = glob.glob(os.path.join(out, "runs", f"*__{seed}__*", "checkpoint", "checkpoint.pt"))
        flags = ["--resume", os.path.dirname(os.path.dirname(done[0]))] if done else ["--seed", str(seed), *FLAGS]
        log = open(os.path.join(out, f"seed{seed}.log"), "a")
        procs.append(
            subprocess.Popen(
                [sys.executable, os.path.join(ROOT, "dqn_atari.py"), *flags],
                cwd=out,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    return [p.wait() for p in procs]


STYLES = ["-.", "-", "--", ":"]
GAME = re.compile(r"^global_step=(\d+), episodic_return=\[([-\d.]+)\]", re.M)  # CleanRL prints a line per game


def read_log(path):
    """(seed, run) from CleanRL's console log `seed{S}.log`: its games, the step each ended; no wall time."""
    games = np.array([(0, int(step), float(score)) for step, score in GAME.findall(open(path).read())])
    return os.path.basename(path)[4:-4], {"returns": games, "steps": games[-1, 1], "wall": 0}


def mean_row(label, name, means):
    return f"| {label} | {name} | " + " | ".join(f"{m:.2f}" for m in means[:-1]) + f" | {means[-1]:.2f} | | | |"


def report(out, compare):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = range(0, TOTAL, BIN)
    bins = [f"{a // 1000}k-{(a + BIN) // 1000}k" for a in edges]
    rows = [
        "| program | seed | " + " | ".join(bins) + f" | last {LAST} games | steps | wall (s) | steps/s |",
        "|---|---|" + "---|" * (len(bins) + 4),
    ]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.step([a + BIN for a in edges], CLEANRL, where="pre", color="black", label="CleanRL, mean of seeds 1, 2 per bin")
    for (label, folder), color in zip([("ours", out), *compare], ["tab:blue", "tab:gray", "tab:orange"]):
        means, curves = [], []
        runs = [(os.path.basename(d).split("__")[2], read_run(d)) for d in sorted(glob.glob(f"{folder}/runs/*"))]
        for seed, r in runs or [read_log(path) for path in sorted(glob.glob(f"{folder}/seed*.log"))]:
            steps, scores = r["returns"][:, 1], r["returns"][:, 2]
            cells = [scores[(steps > a) & (steps <= a + BIN)] for a in edges]
            means.append([c.mean() if len(c) else np.nan for c in cells] + [scores[-LAST:].mean()])
            rows.append(
                f"| {label} | {seed} | "
                + " | ".join(f"{c.mean():.2f} ({len(c)})" if len(c) else "n/a" for c in cells)
                + f" | {scores[-LAST:].mean():.2f} | {r['steps']:,.0f} | "
                + (f"{r['wall']:,.0f} | {r['steps'] / r['wall']:,.0f} |" if r["wall"] else "n/a | n/a |")
            )
            smooth = np.convolve(scores, np.ones(LAST))[: len(scores)] / np.minimum(np.arange(1, len(scores) + 1), LAST)
            ax.plot(
                steps, smooth, color=color, ls=STYLES[int(seed) % 4], lw=0.8, alpha=0.6, label=f"{label}, seed {seed}"
            )
            curves.append(np.interp(GRID, steps, smooth))
        if len(curves) > 1:
            ax.plot(GRID, np.mean(curves, 0), color=color, lw=2.5, label=f"{label}, mean of {len(curves)} seeds")
        if means:
            rows.append(mean_row(label, f"mean of {len(means)}", np.mean(means, 0)))
        if label.startswith("CleanRL") and means:  # with issue 21's seeds 1 and 2, known as means only
            pooled = (2 * np.array([*CLEANRL, CLEANRL_LAST]) + np.sum(means, 0)) / (2 + len(means))
            rows.append(mean_row("CleanRL", f"mean of {2 + len(means)} (with seeds 1, 2)", pooled))
    rows.append(mean_row("CleanRL", "mean of 2 (seeds 1, 2, issue 21)", [*CLEANRL, CLEANRL_LAST]))
    ax.set_xlabel("environment steps")
    ax.set_ylabel(f"game score (mean of the last {LAST} games)")
    ax.set_title("BreakoutNoFrameskip-v4, 300k steps: dqn_atari.py against CleanRL's dqn_atari.py")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "breakout_300k.png"), dpi=80)
    table = "\n".join(rows)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(
            "Game score per 50k-step bin: mean (games ended in the bin). Made by `python benchmark/breakout_300k.py "
            f"--report-only {' '.join('--compare ' + l + '=' + os.path.relpath(d, ROOT) for l, d in compare)}`. "
            "A folder with no events is read from its console logs (CleanRL's line per game): steps is then the step "
            "of its last game, and the log has no wall time."
            f"\n\n{table}\n"
        )
    print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmark", "results", "breakout_protocol"))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--compare", nargs="*", default=[], metavar="LABEL=FOLDER", help="earlier runs to show beside")
    parser.add_argument("--report-only", action="store_true")
    a = parser.parse_args()
    os.makedirs(a.out, exist_ok=True)
    if not a.report_only and any(run(a.out, a.seeds)):
        sys.exit("breakout_300k.py: error: a run failed; see its log in " + a.out)
    report(a.out, [tuple(c.split("=", 1)) for c in a.compare])
