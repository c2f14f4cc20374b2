"""Runs a sweep (scripts x env ids x seeds x flag sets) as Ray tasks, then writes the rliable results table and plots.

    python benchmark/runner.py --scripts dqn.py --env-ids CartPole-v1 Acrobot-v1 --seeds 1 2 3   # a local Ray instance
    python benchmark/runner.py --address HOST:PORT ...   # a running cluster (`ray start --head`, `--address`)
    python benchmark/runner.py ... -- --total-timesteps 100000       # flags after -- go to every run
    python benchmark/runner.py ... --variants base= tau=--tau=0.5   # one flag set per variant
    python benchmark/runner.py --report-only --out benchmark/results/classic            # rebuild the table and plots

Each run is a Ray task that starts a fresh process of the unmodified script, `python <script> --env-id E --seed S
--exp-name X --checkpoint-frequency F --torch-threads C <flags>`, reserving C cpus (`--cpus-per-run`) and, with
`--cuda`, `--gpus-per-run` GPUs, so runs never oversubscribe a node. Everything lands in `--out`, which must be one
folder that every node sees at the same path (a shared filesystem; checked before a run starts):
  <out>/code/        the scripts the sweep runs, copied once, so a restarted sweep resumes with the same code
  <out>/runs/        each run's TensorBoard folder, model and checkpoint
  <out>/logs/        each run's console (<exp>__<env>__<seed>.log, one header line per attempt) and a .done marker

A run that dies is not lost. A run killed by a signal (a lost worker or node, preemption, the OOM killer) is retried
by Ray (`--retries`), and the retry continues with `--resume` from the run's last checkpoint, once no live process holds
the run's folder (the scripts lock it while they run). A sweep that is
stopped (Ctrl-C: every run saves a checkpoint) and started again skips the runs marked done and resumes the others.
A run that fails on its own (bad flags, a crash) is not retried; the summary names its log.
"""

import argparse
import glob
import os
import re
import shutil
import signal
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEP_LINE = re.compile(r"^step ([\d,]+) of .*?([\d,]+) steps/s .*?return (\S+)", re.M)  # the scripts' progress lines


class RunKilled(Exception):
    """The script was stopped by a signal: Ray retries the task, which resumes from the run's checkpoint."""


def run_task(job, out, token):
    """One run, in a Ray worker on any node. Returns (exit code, seconds); raises RunKilled to be retried."""
    import fcntl
    import signal
    import socket
    import subprocess

    name, cmd, prefix = job["name"], job["cmd"], job["run_prefix"]
    host, start = socket.gethostname(), time.time()
    try:
        with open(os.path.join(out, ".sweep")) as f:
            seen = f.read()
    except OSError:
        seen = None
    if seen != token:
        raise RuntimeError(
            f"{host} does not see the sweep folder {out}: --out must be on a filesystem every node shares"
        )
    with open(os.path.join(out, "logs", name + ".lock"), "a") as lock:
        # A killed attempt's script may still be saving its checkpoint; it holds this lock until it exits.
        fcntl.flock(lock, fcntl.LOCK_EX)
        folders = sorted(
            glob.glob(os.path.join(glob.escape(out), "runs", glob.escape(prefix) + "*")), key=os.path.getmtime
        )
        resumable = [d for d in folders if os.path.exists(os.path.join(d, "checkpoint", "checkpoint.pt"))]
        for d in folders:  # a started run that died before its first checkpoint: set aside, it starts over
            if d not in resumable[-1:]:
                os.makedirs(os.path.join(out, "abandoned"), exist_ok=True)
                shutil.move(d, os.path.join(out, "abandoned", os.path.basename(d)))
        resume = ["--resume", os.path.relpath(resumable[-1], out)] if resumable else []
        if resume:  # the script refuses a run folder that another live process holds: wait until it is free
            with open(os.path.join(resumable[-1], "lock"), "a") as held:
                fcntl.lockf(held, fcntl.LOCK_EX)
        with open(os.path.join(out, "logs", name + ".log"), "a") as log:
            log.write(
                f"== runner: attempt on {host} at {time.strftime('%Y-%m-%d %H:%M:%S')}: "
                f"{'resuming ' + resume[1] if resume else 'new run'}\n"
            )
            log.flush()

            try:  # Linux: the script gets SIGTERM (and saves a checkpoint) if the Ray worker dies
                import ctypes

                prctl = ctypes.CDLL(
                    None
                ).prctl  # looked up here: the child of a threaded process must not load anything
            except (OSError, AttributeError):
                prctl = None

            proc = subprocess.Popen(
                cmd + resume,
                cwd=out,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(lock.fileno(),),
                start_new_session=True,  # a terminal's Ctrl-C reaches the runner, not the runs
                preexec_fn=prctl and (lambda: prctl(1, signal.SIGTERM)),
            )  # PR_SET_PDEATHSIG
            try:
                while (code := proc.poll()) is None:  # short waits: ray.cancel's interrupt lands between them
                    time.sleep(0.2)
            except BaseException:  # ray.cancel (the sweep was stopped): let the script save its checkpoint
                proc.send_signal(signal.SIGTERM)
                proc.wait()
                raise
    stops = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP)  # stopped from outside, not crashed
    if code == 0:
        with open(os.path.join(out, "logs", name + ".done"), "w") as f:
            f.write(f"{host} {time.time() - start:.0f} s\n")
    elif -code in stops or code - 128 in stops:
        raise RunKilled(f"{name}: exit {code} on {host}")
    return code, time.time() - start


def progress(job, out):
    """(state, line) of one run, from what its log gained since the last look (job["seen"]: bytes, attempts, step)."""
    seen = job.setdefault("seen", [0, 0, None])
    try:
        with open(os.path.join(out, "logs", job["name"] + ".log"), "rb") as f:
            f.seek(seen[0])
            data = f.read()
    except OSError:
        return "waiting", ""
    data = data[: data.rfind(b"\n") + 1]  # whole lines only; the rest is read next time
    seen[0] += len(data)
    text = data.decode(errors="replace")
    seen[1] += text.count("== runner: attempt")
    steps = STEP_LINE.findall(text)
    seen[2] = steps[-1] if steps else seen[2]
    if not seen[2]:
        return "starting", ""
    step, sps, ret = seen[2]
    return "running", f"step {step:>11}  {sps:>6} steps/s  return {ret:>8}" + (
        f"  (attempt {seen[1]})" if seen[1] > 1 else ""
    )


def show(jobs, states, out, tty, previous_lines):
    lines = []
    for job in jobs:
        state = states[job["name"]]
        if state == "pending":
            state, line = progress(job, out)
        else:
            line = ""
        lines.append(f"  {job['name']:<44} {state:<9} {line}")
    done = sum(s in ("done", "skipped") for s in states.values())
    failed = sum(s == "FAILED" for s in states.values())
    lines.insert(0, f"{time.strftime('%H:%M:%S')}  {done}/{len(jobs)} done, {failed} failed")
    if tty:  # redraw the block in place
        sys.stdout.write(f"\x1b[{previous_lines}F" if previous_lines else "")
        sys.stdout.write("".join(f"\x1b[2K{line}\n" for line in lines))
    else:
        sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    return len(lines)


def sweep(a, extra):
    import ray

    try:
        if a.address and ":" in a.address:  # fail fast: Ray itself keeps retrying an address nobody answers for minutes
            import socket

            host, port = a.address.rsplit(":", 1)
            socket.create_connection((host, int(port)), timeout=10).close()
        ray.init(
            address=a.address or "local",
            num_cpus=None if a.address else os.cpu_count(),
            include_dashboard=False,
            log_to_driver=False,
            logging_level="WARNING",
        )
    except Exception as e:  # no cluster there, a wrong token
        sys.exit(
            f"runner.py: error: cannot {'connect to Ray at ' + a.address if a.address else 'start Ray'}: "
            f"{' '.join(str(e).split())[:300]}"
        )
    cluster = ray.cluster_resources()
    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    problems = []
    if not any(n.get("CPU", 0) >= a.cpus_per_run for n in nodes):
        problems.append(f"--cpus-per-run {a.cpus_per_run}: no node of this Ray cluster has that many CPUs")
    if a.cuda and not any(n.get("GPU", 0) >= a.gpus_per_run for n in nodes):
        problems.append(
            f"--cuda: no node of this Ray cluster has {a.gpus_per_run:g} GPU(s); leave out --cuda to run on CPUs"
        )
    if problems:  # runs that no node can take would wait forever
        sys.exit("\n".join(f"runner.py: error: {p}" for p in problems))
    out = os.path.abspath(a.out)
    for sub in ("logs", "runs", "code"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    for script in a.scripts:  # a restarted sweep keeps the code it started with
        if not os.path.exists(os.path.join(out, "code", os.path.basename(script))):
            shutil.copy2(os.path.join(ROOT, script), os.path.join(out, "code"))
    token = f"{os.getpid()} {time.time()}"
    with open(os.path.join(out, ".sweep"), "w") as f:
        f.write(token)
    variants = [v.split("=", 1) for v in a.variants] or [("", "")]
    jobs = []
    for script in a.scripts:
        for label, flags in variants:
            exp = os.path.basename(script)[:-3] + (f"_{label}" if label else "")
            for env_id in a.env_ids:
                for seed in a.seeds:
                    env = env_id.replace("/", "-").replace(":", "-")
                    cmd = [
                        sys.executable,
                        os.path.join(out, "code", os.path.basename(script)),
                        "--env-id",
                        env_id,
                        "--seed",
                        str(seed),
                        "--exp-name",
                        exp,
                        "--cuda" if a.cuda else "--no-cuda",
                        "--checkpoint-frequency",
                        str(a.checkpoint_frequency),
                        "--torch-threads",
                        str(a.cpus_per_run),
                        *flags.split(),
                        *extra,
                    ]
                    jobs.append({"name": f"{exp}__{env}__{seed}", "cmd": cmd, "run_prefix": f"{env}__{exp}__{seed}__"})
    states = {
        j["name"]: "skipped" if os.path.exists(os.path.join(out, "logs", j["name"] + ".done")) else "pending"
        for j in jobs
    }
    todo = [j for j in jobs if states[j["name"]] == "pending"]
    print(
        f"{len(jobs)} runs ({len(jobs) - len(todo)} already done) on Ray "
        f"{'at ' + a.address if a.address else 'on this machine'}"
        f" ({cluster.get('CPU', 0):.0f} CPUs, {cluster.get('GPU', 0):.0f} GPUs, "
        f"{len(nodes)} node{'s' if len(nodes) > 1 else ''}), into {out}",
        flush=True,
    )
    task = ray.remote(run_task).options(
        num_cpus=a.cpus_per_run,
        num_gpus=a.gpus_per_run if a.cuda else 0,
        memory=int(a.memory_per_run * 2**30) if a.memory_per_run else None,
        max_retries=a.retries,
        retry_exceptions=[RunKilled],
    )
    pending = {task.remote(j, out, token): j for j in todo}
    results, tty, shown, last = {}, sys.stdout.isatty(), 0, 0.0
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                job = pending.pop(ref)
                try:
                    code, seconds = ray.get(ref)
                    results[job["name"]] = f"exit {code} after {seconds:,.0f} s"
                    states[job["name"]] = "done" if code == 0 else "FAILED"
                except Exception as e:
                    results[job["name"]] = f"{type(e).__name__}: {str(e).strip().splitlines()[-1][:200]}"
                    states[job["name"]] = "FAILED"
            if ready or time.time() - last > (2 if tty else a.progress_every):
                shown, last = show(jobs, states, out, tty, shown), time.time()
    except KeyboardInterrupt:
        print(
            "stopping: every run saves a checkpoint (Ctrl-C again: stop at once); start the same command again to "
            "resume",
            flush=True,
        )
        for ref in pending:
            ray.cancel(ref)
        try:
            ray.wait(list(pending), num_returns=len(pending))
        except KeyboardInterrupt:
            pass
        sys.exit(130)
    show(jobs, states, out, False, 0)
    failed = [j for j in jobs if states[j["name"]] == "FAILED"]
    for j in failed:
        print(f"FAILED {j['name']}: {results[j['name']]}; log: {os.path.join(out, 'logs', j['name'] + '.log')}")
    return not failed


if __name__ == "__main__":
    signal.signal(
        signal.SIGINT, signal.default_int_handler
    )  # Ctrl-C stops the sweep, even one started with `&`, which ignores it
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scripts", nargs="+", default=["dqn.py"])
    parser.add_argument("--env-ids", nargs="+", default=["CartPole-v1"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument(
        "--variants",
        nargs="*",
        default=[],
        metavar="LABEL=FLAGS",
        help="flag sets to sweep over; each run's exp-name gets _LABEL",
    )
    parser.add_argument("--out", default="benchmark/results/latest", help="the sweep's folder (shared by every node)")
    parser.add_argument("--address", help="a running Ray cluster (auto, or HOST:PORT); default: a local instance")
    parser.add_argument("--cpus-per-run", type=int, default=1, help="CPUs reserved per run, also its torch threads")
    parser.add_argument("--cuda", action="store_true", help="run with --cuda, reserving --gpus-per-run GPUs")
    parser.add_argument("--gpus-per-run", type=float, default=1.0)
    parser.add_argument("--memory-per-run", type=float, help="GiB of RAM reserved per run (Atari: the buffer's size)")
    parser.add_argument("--checkpoint-frequency", type=int, default=20_000, help="steps between a run's checkpoints")
    parser.add_argument("--retries", type=int, default=3, help="retries of a run killed by a signal")
    parser.add_argument(
        "--progress-every", type=float, default=60.0, help="seconds between progress blocks (not a tty)"
    )
    parser.add_argument("--report-only", action="store_true", help="only rebuild the table and plots from <out>/runs")
    a = parser.parse_args(argv)
    problems = [f"no script {s} in {ROOT}" for s in a.scripts if not os.path.isfile(os.path.join(ROOT, s))]
    labels = [v.split("=", 1)[0] for v in a.variants]
    problems += [
        f"--variants {v!r} is not LABEL=FLAGS with a label of letters and digits"
        for v in a.variants
        if not re.fullmatch(r"[A-Za-z0-9]+=.*", v)
    ]
    problems += [f"--variants: the label {l!r} is given twice" for l in sorted(set(labels)) if labels.count(l) > 1]
    if a.report_only and not os.path.isdir(os.path.join(a.out, "runs")):
        problems.append(f"--report-only: no runs in {a.out}")
    problems += [
        f"--{k.replace('_', '-')} must be >= {m}"
        for k, m in (("cpus_per_run", 1), ("retries", 0), ("checkpoint_frequency", 1))
        if getattr(a, k) < m
    ]
    if not a.report_only:
        try:
            import ray  # noqa: F401
        except ImportError:
            problems.append("ray is not installed: pip install -r requirements-dev.txt (or pip install ray)")
    if problems:
        sys.exit("\n".join(f"runner.py: error: {p}" for p in problems))
    ok = a.report_only or sweep(a, extra)
    from report import report

    report(os.path.abspath(a.out))
    sys.exit(0 if ok else 1)
