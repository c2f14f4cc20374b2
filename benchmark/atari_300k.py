"""Atari, 300k agent steps, two seeds side by side, any game: the learning check of dqn_atari.py against CleanRL.

    python benchmark/atari_300k.py --env-id PongNoFrameskip-v4              # ours, seeds 1 and 2 at once (~80 min)
    python benchmark/atari_300k.py --env-id PongNoFrameskip-v4 --seeds 3 4  # then seeds 3 and 4
    python benchmark/atari_300k.py --env-id PongNoFrameskip-v4 --cleanrl /path/to/cleanrl-venv/bin/python \
        /path/to/cleanrl/cleanrl/dqn_atari.py                               # CleanRL's, the same protocol
    python benchmark/atari_300k.py --env-id PongNoFrameskip-v4 --report-only  # the game's table and plot
    python benchmark/atari_300k.py --aggregate                               # across the games: IQM, P(improvement)

Each run of ours is `dqn_atari.py --env-id GAME --seed S --total-timesteps 300000 --learning-starts 20000
--buffer-size 100000 --eval-episodes 0 --torch-threads 1 --checkpoint-frequency 50000` (all else default: epsilon
falls over the first 30k steps) in `<results>/GAME`; a run stopped part-way is resumed from its checkpoint by the same
command. CleanRL's (`--cleanrl PYTHON SCRIPT`: its `dqn_atari.py` in its own environment, docs/atari.md) is
`SCRIPT --no-cuda --env-id GAME --seed S --total-timesteps 300000 --learning-starts 20000 --buffer-size 100000` with
one thread, in `<results>/GAME/cleanrl`, its console log (a line per game) in `seed{S}.log` there; it has no
checkpoints, so a stopped CleanRL run starts again.

The report of a game reads ours' TensorBoard events (else the console logs) and CleanRL's logs: the mean game score per
50k-step bin (games counted where they end, their number in brackets), the mean of the last 40 games, wall time and
steps/s, beside other runs (`--compare LABEL=FOLDER`). For Breakout it adds CleanRL's per-bin means of its seeds 1 and
2, run before on these machines and known as means only. One PNG of every run's score (the mean of its last 40 games)
against env steps, and each program's mean over its seeds.

The aggregate (`--aggregate`) takes each run's last 40 games on every game with results, human-normalises them,
(score - random) / (human - random), with benchmark/report.py's published random and human scores, and gives per
program the IQM over runs and games (on each game its first n seeds, n the fewest runs it has on any game) with a 95 %
stratified bootstrap confidence interval (rliable, Agarwal et al. 2021), and the probability that a run of ours beats a
run of CleanRL's on a game, with its interval.

The `runs/` folders are git-ignored (checkpoints are large): commit a run's events with
`git add -f <results>/GAME/runs/*/events.out.tfevents.*`, and its console log.
"""

import argparse
import glob
import os
import re
import shlex
import subprocess
import sys

import numpy as np
from report import ATARI, atari_game, estimates, read_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmark", "results", "atari_300k")
PROTOCOL = ["--total-timesteps", "300000", "--learning-starts", "20000", "--buffer-size", "100000"]
FLAGS = [*PROTOCOL, "--eval-episodes", "0", "--torch-threads", "1", "--checkpoint-frequency", "50000"]
BIN, LAST, TOTAL = 50_000, 40, 300_000
GRID = np.arange(5_000, TOTAL + 1, 1_000)  # the steps at which seeds' curves are averaged
# CleanRL's seeds 1 and 2 on Breakout, run before on these machines: per bin, mean of the two; the last 40 games
EARLIER_CLEANRL = {"BreakoutNoFrameskip-v4": ([1.4, 4.1, 13.4, 19.4, 22.4, 27.2], 31.1)}


def run(out, env_id, seeds, cleanrl=None):
    """Both seeds at once, one thread each; ours resume from their checkpoints. The exit codes."""
    procs = []
    for seed in seeds:
        if cleanrl:
            python, script = cleanrl
            command = [python, script, "--no-cuda", "--env-id", env_id, "--seed", str(seed), *PROTOCOL]
            folder = os.path.join(out, "cleanrl")
        else:
            done = glob.glob(os.path.join(out, "runs", f"*__{seed}__*", "checkpoint", "checkpoint.pt"))
            flags = ["--resume", os.path.dirname(os.path.dirname(done[0]))] if done else ["--seed", str(seed), *FLAGS]
            command = [sys.executable, os.path.join(ROOT, "dqn_atari.py"), *flags]
            if not done:
                command[2:2] = ["--env-id", env_id]
            folder = out
        os.makedirs(folder, exist_ok=True)
        log = open(os.path.join(folder, f"seed{seed}.log"), "w" if cleanrl else "a")
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        if cleanrl:  # its script imports cleanrl_utils from its repository
            env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(cleanrl[1])))
        procs.append(subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT, env=env))
    return [p.wait() for p in procs]


STYLES = ["-.", "-", "--", ":"]
GAME = re.compile(r"^global_step=(\d+), episodic_return=\[([-\d.]+)\]", re.M)  # CleanRL prints a line per game


def read_log(path):
    """(seed, run) from CleanRL's console log `seed{S}.log`: its games, the step each ended; no wall time."""
    games = np.array([(0, int(step), float(score)) for step, score in GAME.findall(open(path).read())])
    return os.path.basename(path)[4:-4], {"returns": games, "steps": games[-1, 1], "wall": 0}


def read_runs(folder):
    """[(seed, run)] of a folder: its runs' events, or else its console logs."""
    runs = [(os.path.basename(d).split("__")[2], read_run(d)) for d in sorted(glob.glob(f"{folder}/runs/*"))]
    return runs or [
        read_log(path) for path in sorted(glob.glob(f"{folder}/seed*.log")) if GAME.search(open(path).read())
    ]


def programs(out):
    """The folders of a game's programs: ours (the game's folder) and CleanRL's, where they have runs."""
    found = [("ours", out), ("CleanRL", os.path.join(out, "cleanrl"))]
    return [(label, folder) for label, folder in found if read_runs(folder)]


def mean_row(label, name, means):
    return f"| {label} | {name} | " + " | ".join(f"{m:.2f}" for m in means[:-1]) + f" | {means[-1]:.2f} | | | |"


def report(out, env_id, compare):
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
    earlier = EARLIER_CLEANRL.get(env_id)
    if earlier:
        label = "CleanRL, mean of seeds 1, 2 per bin"
        ax.step([a + BIN for a in edges], earlier[0], where="pre", color="black", label=label)
    for (label, folder), color in zip([*programs(out), *compare], ["tab:blue", "tab:orange", "tab:gray", "tab:green"]):
        means, curves = [], []
        for seed, r in read_runs(folder):
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
        if label == "CleanRL" and means and earlier:  # with its earlier seeds 1 and 2, known as means only
            pooled = (2 * np.array([*earlier[0], earlier[1]]) + np.sum(means, 0)) / (2 + len(means))
            rows.append(mean_row("CleanRL", f"mean of {2 + len(means)} (with seeds 1, 2 run before)", pooled))
    if earlier:
        rows.append(mean_row("CleanRL", "mean of 2 (seeds 1, 2 run before)", [*earlier[0], earlier[1]]))
    ax.set_xlabel("environment steps")
    ax.set_ylabel(f"game score (mean of the last {LAST} games)")
    ax.set_title(f"{env_id}, 300k steps: dqn_atari.py against CleanRL's dqn_atari.py")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, f"{atari_game(env_id) or 'game'}_300k.png"), dpi=80)
    plt.close(fig)
    table = "\n".join(rows)
    extra = "".join(
        " --compare " + shlex.quote(f"{label}={os.path.relpath(folder, ROOT)}") for label, folder in compare
    )
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(
            f"{env_id}: game score per 50k-step bin, mean (games ended in the bin). Made by `python "
            f"benchmark/atari_300k.py --env-id {env_id} --report-only{extra}`. A folder with no events is read from "
            "its console logs (CleanRL's line per game): steps is then the step of its last game, and the log has no "
            f"wall time.\n\n{table}\n"
        )
    print(table)


def aggregate(results):
    """Human-normalised last-40-games scores of every game with results: IQM per program, P(ours > CleanRL)."""
    games = {}  # env id: {program: {seed: the mean of its last 40 games}}
    for out in sorted(glob.glob(os.path.join(glob.escape(results), "*"))):
        env_id = os.path.basename(out)
        if os.path.isdir(out) and atari_game(env_id):
            found = {label: dict(read_runs(folder)) for label, folder in programs(out)}
            games[env_id] = {k: {s: r["returns"][-LAST:, 2].mean() for s, r in v.items()} for k, v in found.items()}
    if not games:
        sys.exit(f"atari_300k.py: error: no game's runs in {results}")
    rows = [
        "| program | games | seeds | runs x games | IQM [95 % CI] | mean [95 % CI] |",
        "|---|---|---|---|---|---|",
    ]
    matrices = {}
    for program in ("ours", "CleanRL"):
        played = [g for g in games if games[g].get(program)]
        if not played:
            continue
        # rliable wants runs x games: each game's first n seeds, n the fewest any game has (runs are exchangeable)
        n = min(len(games[g][program]) for g in played)
        seeds = {g: sorted(games[g][program], key=int)[:n] for g in played}
        normalised = []  # a row per game
        for g in played:
            lo, hi = ATARI[atari_game(g)]
            normalised.append([(games[g][program][s] - lo) / (hi - lo) for s in seeds[g]])
        matrices[program] = (played, np.array(normalised).T)
        est = estimates(matrices[program][1], {"IQM": "aggregate_iqm", "mean": "aggregate_mean"})
        if all(seeds[g] == seeds[played[0]] for g in played):
            used = ", ".join(seeds[played[0]])
        else:
            used = "; ".join(f"{atari_game(g)} {', '.join(seeds[g])}" for g in played)
        rows.append(
            f"| {program} | {', '.join(atari_game(g) for g in played)} | {used} | {n} x {len(played)} | "
            + " | ".join(f"{p:.3f} [{lo:.3f}, {hi:.3f}]" for p, lo, hi in est.values())
            + " |"
        )
    lines = [
        "Atari, 300k steps: each run's mean of its last 40 games, human-normalised ((score - random) / (human - "
        "random), the published scores in benchmark/report.py), aggregated over runs and games with 95 % stratified "
        "bootstrap CIs (rliable). Made by `python benchmark/atari_300k.py --aggregate`.",
        "",
        *rows,
    ]
    if len(matrices) == 2 and matrices["ours"][0] == matrices["CleanRL"][0]:
        from rliable import library
        from rliable import metrics as rm

        pair = (matrices["ours"][1], matrices["CleanRL"][1])
        point, ci = library.get_interval_estimates(
            {"p": pair}, rm.probability_of_improvement, reps=2000, random_state=np.random.RandomState(0)
        )
        p, low, high = (float(np.squeeze(v)) for v in (point["p"], *ci["p"]))
        lines += [
            "",
            f"Probability that a run of ours beats a run of CleanRL's on a game (averaged over the "
            f"{len(matrices['ours'][0])} games): {p:.3f} [{low:.3f}, {high:.3f}]",
        ]
    with open(os.path.join(results, "aggregate.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", default="BreakoutNoFrameskip-v4")
    parser.add_argument("--results", default=RESULTS, help="a folder per game (default: %(default)s)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--cleanrl", nargs=2, metavar=("PYTHON", "SCRIPT"), help="run CleanRL's dqn_atari.py instead")
    parser.add_argument("--compare", nargs="*", default=[], metavar="LABEL=FOLDER", help="earlier runs to show beside")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--aggregate", action="store_true", help="only the report across games")
    a = parser.parse_args()
    if a.aggregate:
        aggregate(a.results)
        sys.exit()
    if not atari_game(a.env_id):
        sys.exit(f"atari_300k.py: error: --env-id {a.env_id}: no published random and human scores for it")
    out = os.path.join(a.results, a.env_id)
    os.makedirs(out, exist_ok=True)
    if not a.report_only and any(run(out, a.env_id, a.seeds, a.cleanrl)):
        sys.exit("atari_300k.py: error: a run failed; see its log in " + out)
    report(out, a.env_id, [tuple(c.split("=", 1)) for c in a.compare])
