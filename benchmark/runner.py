"""Runs scripts x env ids x seeds as parallel worker processes, then writes a results table and learning curves.

    python benchmark/runner.py --scripts dqn.py --env-ids CartPole-v1 Acrobot-v1 MountainCar-v0 --seeds 1 2 3 \
        --out benchmark/results/classic
    python benchmark/runner.py ... -- --total-timesteps 100000      # flags after -- go to every run
    python benchmark/runner.py --report-only --out benchmark/results/classic   # rebuild the table and plots

Each run is `python <script> --env-id E --seed S --no-cuda <extra flags>` in `<out>` (its TensorBoard folder lands
in `<out>/runs`), with its console in `<out>/logs/<script>__<env>__<seed>.log`. The table gives, per script and env,
mean +- std over seeds of: the final return (mean of each run's last 20 training episodes) and the evaluation
return (mean of each run's evaluation episodes), with wall time and steps/s. The plots show the mean over seeds of
the training return (each run's mean of its last 20 episodes) with the spread over seeds shaded (min to max),
against env steps and against wall time.
"""
import argparse
import glob
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_one(script, env_id, seed, extra, out, status):
    name = f"{script[:-3]}__{env_id.replace('/', '-').replace(':', '-')}__{seed}"
    log = os.path.join(out, "logs", f"{name}.log")
    start = time.time()
    with open(log, "w") as f:
        status[name] = "running"
        code = subprocess.call([sys.executable, os.path.join(ROOT, script), "--env-id", env_id, "--seed", str(seed),
                                "--no-cuda", "--exp-name", script[:-3], *extra], cwd=out, stdout=f, stderr=subprocess.STDOUT)
    status[name] = f"{'done' if code == 0 else f'FAILED (exit {code}, see {log})'} in {time.time() - start:.0f} s"
    return code


def last_line(path):
    try:
        with open(path, "rb") as f:
            lines = f.read()[-400:].decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""
    except OSError:
        return ""


def run_all(jobs, extra, out, workers):
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    status, done = {}, threading.Event()

    def progress():
        while not done.wait(30):
            running = [n for n, s in status.items() if s == "running"]
            finished = sum(s != "running" for s in status.values())
            tails = "; ".join(f"{n}: {last_line(os.path.join(out, 'logs', n + '.log'))[:60]}" for n in running)
            print(f"[{finished}/{len(jobs)} finished] {tails}", flush=True)

    threading.Thread(target=progress, daemon=True).start()
    with ThreadPoolExecutor(workers) as pool:
        codes = list(pool.map(lambda job: run_one(*job, extra, out, status), jobs))
    done.set()
    for name, state in sorted(status.items()):
        print(f"  {name}: {state}")
    return codes


def read_run(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(run_dir, size_guidance={"scalars": 0}).Reload()
    tags = acc.Tags()["scalars"]
    get = lambda tag: np.array([(e.wall_time, e.step, e.value) for e in acc.Scalars(tag)]) if tag in tags else np.zeros((0, 3))
    run = {"returns": get("charts/episodic_return"), "eval": get("eval/episodic_return"), "sps": get("charts/SPS")}
    run["start"] = acc.FirstEventTimestamp()  # the writer's creation, just before the first env step
    run["end"] = max(e.wall_time for tag in tags for e in acc.Scalars(tag))  # the last point, evaluation included
    run["steps"] = run["sps"][-1, 1] if len(run["sps"]) else 0
    return run


def fmt(values):
    return f"{np.mean(values):.2f} ± {np.std(values):.2f}" if len(values) else "n/a"


def report(out):
    """Reads every run under <out>/runs; writes <out>/results.md and one PNG per script and env."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {}
    for run_dir in sorted(glob.glob(os.path.join(out, "runs", "*"))):
        env, exp, seed = os.path.basename(run_dir).split("__")[:3]
        groups.setdefault((exp, env), []).append((int(seed), read_run(run_dir)))
    rows = ["| script | env | seeds | final return (last 20 episodes) | eval return | wall time (s) | steps/s |",
            "|---|---|---|---|---|---|---|"]
    for (exp, env), runs in sorted(groups.items()):
        runs = [(seed, r) for seed, r in sorted(runs) if len(r["returns"])]
        if not runs:
            continue
        final = [r["returns"][-20:, 2].mean() for _, r in runs]
        evals = [r["eval"][:, 2].mean() for _, r in runs if len(r["eval"])]
        walls = [r["end"] - r["start"] for _, r in runs]
        sps = [r["steps"] / (r["sps"][-1, 0] - r["start"]) for _, r in runs]
        rows.append(f"| {exp}.py | {env} | {','.join(str(s) for s, _ in runs)} | {fmt(final)} | {fmt(evals)} | "
                    f"{np.mean(walls):.0f} | {np.mean(sps):,.0f} |")
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for ax, column, label in ((axes[0], 1, "environment steps"), (axes[1], 0, "wall time (s)")):
            curves = []
            for _, r in runs:
                x = r["returns"][:, column] - (r["start"] if column == 0 else 0)
                curves.append((x, r["returns"][:, 2]))
            grid = np.linspace(max(x[0] for x, _ in curves), min(x[-1] for x, _ in curves), 200)
            ys = np.array([np.interp(grid, x, np.convolve(y, np.ones(20), "full")[: len(y)] / np.minimum(np.arange(1, len(y) + 1), 20))
                           for x, y in curves])  # each run's mean of its last 20 episodes, on a common grid
            mean = ys.mean(axis=0)
            ax.plot(grid, mean, label=f"mean of {len(runs)} seeds")
            ax.fill_between(grid, ys.min(axis=0), ys.max(axis=0), alpha=0.25, label="min to max over seeds")
            ax.set_xlabel(label)
            ax.set_ylabel("episodic return")
            ax.grid(alpha=0.3)
        axes[0].legend(loc="lower right")
        fig.suptitle(f"{exp}.py on {env}")
        fig.tight_layout()
        fig.savefig(os.path.join(out, f"{exp}__{env.replace('/', '-')}.png"), dpi=80)
        plt.close(fig)
    table = "\n".join(rows)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(table + "\n")
    print(table)


if __name__ == "__main__":
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scripts", nargs="+", default=["dqn.py"])
    parser.add_argument("--env-ids", nargs="+", default=["CartPole-v1"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="parallel runs (default: one per core)")
    parser.add_argument("--out", default="benchmark/results/latest", help="folder for runs, logs, table and plots")
    parser.add_argument("--report-only", action="store_true", help="only rebuild the table and plots from <out>/runs")
    a = parser.parse_args(argv)
    for script in a.scripts:
        if not os.path.isfile(os.path.join(ROOT, script)):
            sys.exit(f"runner.py: error: no script {script} in {ROOT}")
    out = os.path.abspath(a.out)
    if not a.report_only:
        os.makedirs(out, exist_ok=True)
        jobs = [(s, e, seed) for s in a.scripts for e in a.env_ids for seed in a.seeds]
        print(f"{len(jobs)} runs, {a.workers} at a time, into {out}", flush=True)
        codes = run_all(jobs, extra, out, a.workers)
    report(out)
    if not a.report_only and any(codes):
        sys.exit(1)
