"""Reads a sweep's TensorBoard runs and reports them the way RL papers do (Agarwal et al., NeurIPS 2021, with rliable).

    python benchmark/report.py benchmark/results/classic      # also the last step of runner.py

Per script and env, over seeds: the interquartile mean (IQM) with its 95 % stratified bootstrap confidence interval,
and mean ± std beside it for comparison with published tables, of two scores per run: "final" (the mean of the run's
last 20 training episodes) and "eval" (the mean of its evaluation episodes after training). With fewer than 4 seeds
the IQM trims nothing and equals the mean; its interval is still the bootstrap's.
For Atari games, each run's scores are human-normalised, (score - random) / (human - random), with the published
random and human scores (Mnih et al. 2015, Badia et al. 2020), then aggregated over games and seeds into IQM, median
and mean with 95 % CIs, and a performance profile (the fraction of runs above each normalised score) drawn to
`<out>/atari_profile.png`. Learning curves: `<out>/<exp>__<env>.png`. The table: `<out>/results.md`.
"""

import glob
import os
import re
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore", "random_state is deprecated", FutureWarning)  # arch, inside rliable

REPS, LAST = 10_000, 20
ATARI = {  # game: (random score, human score), the published per-game references for human-normalised scores
    "alien": (227.8, 7127.7),
    "amidar": (5.8, 1719.5),
    "assault": (222.4, 742.0),
    "asterix": (210.0, 8503.3),
    "asteroids": (719.1, 47388.7),
    "atlantis": (12850.0, 29028.1),
    "bank_heist": (14.2, 753.1),
    "battle_zone": (2360.0, 37187.5),
    "beam_rider": (363.9, 16926.5),
    "berzerk": (123.7, 2630.4),
    "bowling": (23.1, 160.7),
    "boxing": (0.1, 12.1),
    "breakout": (1.7, 30.5),
    "centipede": (2090.9, 12017.0),
    "chopper_command": (811.0, 7387.8),
    "crazy_climber": (10780.5, 35829.4),
    "defender": (2874.5, 18688.9),
    "demon_attack": (152.1, 1971.0),
    "double_dunk": (-18.6, -16.4),
    "enduro": (0.0, 860.5),
    "fishing_derby": (-91.7, -38.7),
    "freeway": (0.0, 29.6),
    "frostbite": (65.2, 4334.7),
    "gopher": (257.6, 2412.5),
    "gravitar": (173.0, 3351.4),
    "hero": (1027.0, 30826.4),
    "ice_hockey": (-11.2, 0.9),
    "jamesbond": (29.0, 302.8),
    "kangaroo": (52.0, 3035.0),
    "krull": (1598.0, 2665.5),
    "kung_fu_master": (258.5, 22736.3),
    "montezuma_revenge": (0.0, 4753.3),
    "ms_pacman": (307.3, 6951.6),
    "name_this_game": (2292.3, 8049.0),
    "phoenix": (761.4, 7242.6),
    "pitfall": (-229.4, 6463.7),
    "pong": (-20.7, 14.6),
    "private_eye": (24.9, 69571.3),
    "qbert": (163.9, 13455.0),
    "riverraid": (1338.5, 17118.0),
    "road_runner": (11.5, 7845.0),
    "robotank": (2.2, 11.9),
    "seaquest": (68.4, 42054.7),
    "skiing": (-17098.1, -4336.9),
    "solaris": (1236.3, 12326.7),
    "space_invaders": (148.0, 1668.7),
    "star_gunner": (664.0, 10250.0),
    "surround": (-10.0, 6.5),
    "tennis": (-23.8, -8.3),
    "time_pilot": (3568.0, 5229.2),
    "tutankham": (11.4, 167.6),
    "up_n_down": (533.4, 11693.2),
    "venture": (0.0, 1187.5),
    "video_pinball": (16256.9, 17667.9),
    "wizard_of_wor": (563.5, 4756.5),
    "yars_revenge": (3092.9, 54576.9),
    "zaxxon": (32.5, 9173.3),
}


def atari_game(env_id):
    """'BreakoutNoFrameskip-v4', 'ALE-Breakout-v5' -> 'breakout'; None for other envs."""
    m = re.fullmatch(r"(?:ALE-)?([A-Za-z]+?)(?:NoFrameskip|Deterministic)?-v\d+", env_id)
    game = m and re.sub(r"(?<!^)(?=[A-Z])", "_", m.group(1)).lower()
    return game if game in ATARI else None


def read_run(run_dir):
    """A run's scalars, as (wall time, step, value) rows; TensorBoard drops points a resumed run logged again."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    acc = EventAccumulator(run_dir, size_guidance={"scalars": 0}).Reload()
    tags = acc.Tags()["scalars"]
    get = lambda tag: (
        np.array([(e.wall_time, e.step, e.value) for e in acc.Scalars(tag)]) if tag in tags else np.zeros((0, 3))
    )
    run = {"returns": get("charts/episodic_return"), "eval": get("eval/episodic_return"), "sps": get("charts/SPS")}
    if len(run["eval"]):  # an evaluation cut short and done again after a resume: keep the last one of each episode
        last = {}
        for row in run["eval"][np.argsort(run["eval"][:, 0], kind="stable")]:  # oldest first: the newest stays
            last[row[1]] = row
        run["eval"] = np.array([last[k] for k in sorted(last)])
    run["steps"] = run["sps"][-1, 1] if len(run["sps"]) else 0
    run["wall"] = 0.0  # each attempt (events file) from the writer's creation to its last point, gaps between left out
    for path in glob.glob(os.path.join(glob.escape(run_dir), "events.out.tfevents.*")):
        times = [e.wall_time for e in EventFileLoader(path).Load()]
        run["wall"] += times[-1] - times[0] if times else 0.0
    return run


def iqm_ci(scores):
    """IQM and 95 % stratified bootstrap CI of a (runs x tasks) matrix, with rliable, reproducibly."""
    return estimates(scores, {"IQM": "aggregate_iqm"})["IQM"]


def estimates(scores, metrics):
    from rliable import library
    from rliable import metrics as rm

    funcs = [getattr(rm, m) for m in metrics.values()]
    point, ci = library.get_interval_estimates(
        {"x": np.asarray(scores, dtype=float)},
        lambda x: np.array([f(x) for f in funcs]),
        reps=REPS,
        random_state=np.random.RandomState(0),
    )
    return {k: (point["x"][i], ci["x"][0, i], ci["x"][1, i]) for i, k in enumerate(metrics)}


def cell(values):
    if not len(values):
        return "n/a", "n/a"
    iqm, low, high = iqm_ci(np.array(values)[:, None])
    return f"{iqm:.2f} [{low:.2f}, {high:.2f}]", f"{np.mean(values):.2f} ± {np.std(values):.2f}"


def curves(exp, env, runs, out, plt):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, column, label in ((axes[0], 1, "environment steps"), (axes[1], 0, "wall time of the run (s)")):
        lines = []
        for r in runs:
            x = r["returns"][:, column] - (r["returns"][0, 0] if column == 0 else 0)
            y = r["returns"][:, 2]
            lines.append(
                (x, np.convolve(y, np.ones(LAST), "full")[: len(y)] / np.minimum(np.arange(1, len(y) + 1), LAST))
            )
        grid = np.linspace(max(x[0] for x, _ in lines), min(x[-1] for x, _ in lines), 200)
        ys = np.array([np.interp(grid, x, y) for x, y in lines])  # each run's mean of its last 20 episodes
        ax.plot(grid, ys.mean(axis=0), label=f"mean of {len(runs)} seeds")
        ax.fill_between(grid, ys.min(axis=0), ys.max(axis=0), alpha=0.25, label="min to max over seeds")
        ax.set_xlabel(label)
        ax.set_ylabel("episodic return")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right")
    fig.suptitle(f"{exp}.py on {env}" if "_" not in exp else f"{exp} on {env}")
    fig.tight_layout()
    fig.savefig(os.path.join(out, f"{exp}__{env}.png"), dpi=80)
    plt.close(fig)


def atari_aggregates(groups, out, plt):
    """Human-normalised IQM, median and mean over Atari games and seeds, per experiment and score; profile PNG."""
    from rliable import plot_utils

    rows, profiles = [], {}
    for exp in sorted({exp for exp, _ in groups}):
        games = {env: runs for (e, env), runs in groups.items() if e == exp and atari_game(env)}
        if not games:
            continue
        for kind in ("final", "eval"):
            per_game = {
                env: {s: v for s, v in ((s, r[kind]) for s, r in runs) if v is not None} for env, runs in games.items()
            }
            seeds = sorted(set.intersection(*(set(v) for v in per_game.values())))
            if not seeds:
                continue
            lo_hi = [ATARI[atari_game(env)] for env in per_game]
            scores = np.array(
                [[(per_game[env][s] - lo) / (hi - lo) for env, (lo, hi) in zip(per_game, lo_hi)] for s in seeds]
            )  # runs x games
            est = estimates(scores, {"IQM": "aggregate_iqm", "median": "aggregate_median", "mean": "aggregate_mean"})
            rows.append(
                f"| {exp} | {kind} | {len(per_game)} | {len(seeds)} | "
                + " | ".join(f"{p:.3f} [{l:.3f}, {h:.3f}]" for p, l, h in est.values())
                + " |"
            )
            profiles[f"{exp} ({kind})"] = scores
    if not rows:
        return []
    taus = np.linspace(
        min(0.0, min(s.min() for s in profiles.values())), max(1.0, max(s.max() for s in profiles.values())), 101
    )
    from rliable import library

    point, ci = {}, {}
    for key, scores in profiles.items():
        p, c = library.get_interval_estimates(
            {key: scores},
            lambda x: np.array([np.mean(x > t) for t in taus]),
            reps=2000,
            random_state=np.random.RandomState(0),
        )
        point[key], ci[key] = p[key], c[key]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    plot_utils.plot_performance_profiles(
        point,
        taus,
        performance_profile_cis=ci,
        ax=ax,
        xlabel=r"human-normalised score $\tau$",
        ylabel=r"fraction of runs with score $> \tau$",
    )
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "atari_profile.png"), dpi=80)
    plt.close(fig)
    return [
        "",
        "Atari, human-normalised ((score − random) / (human − random)), over games and seeds, 95 % stratified "
        "bootstrap CIs; performance profile: atari_profile.png",
        "",
        "| experiment | score | games | seeds | IQM | median | mean |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]


def report(out):
    """Reads every run under <out>/runs; writes <out>/results.md, the curves and the Atari profile."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {}
    for run_dir in sorted(glob.glob(os.path.join(glob.escape(out), "runs", "*"))):
        env, exp, seed = os.path.basename(run_dir).rsplit("__", 3)[:3]
        r = read_run(run_dir)
        if len(r["returns"]):
            r["final"] = r["returns"][-LAST:, 2].mean()
            r["eval"] = r["eval"][:, 2].mean() if len(r["eval"]) else None
            groups.setdefault((exp, env), []).append((int(seed.rstrip("+")), r))
    rows = [
        f"Per script and env over seeds: IQM [95 % stratified bootstrap CI] (rliable, {REPS:,} resamples) and "
        f"mean ± std. Final: the mean of a run's last {LAST} training episodes; eval: the mean of its evaluation "
        "episodes after training. Wall time: mean per run, attempts of a resumed run summed.",
        "",
        "| experiment | env | seeds | final IQM [95 % CI] | final mean ± std | eval IQM [95 % CI] | eval mean ± std "
        "| wall time (s) | steps/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (exp, env), runs in sorted(groups.items()):
        runs.sort(key=lambda sr: sr[0])
        final = cell([r["final"] for _, r in runs])
        evals = cell([r["eval"] for _, r in runs if r["eval"] is not None])
        wall = np.mean([r["wall"] for _, r in runs])
        sps = np.mean([r["steps"] / r["wall"] for _, r in runs if r["wall"] > 0])
        rows.append(
            f"| {exp} | {env} | {','.join(str(s) for s, _ in runs)} | {final[0]} | {final[1]} | {evals[0]} | "
            f"{evals[1]} | {wall:,.0f} | {sps:,.0f} |"
        )
        curves(exp, env, [r for _, r in runs], out, plt)
    rows += atari_aggregates(groups, out, plt)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(rows) + "\n")
    print("\n".join(rows))


if __name__ == "__main__":
    if len(sys.argv) != 2 or not os.path.isdir(os.path.join(sys.argv[1], "runs")):
        sys.exit("report.py: error: give one sweep folder, the one that holds runs/")
    report(os.path.abspath(sys.argv[1]))
