"""Measures dqn.py and dqn_atari.py side by side with a peer (Stable-Baselines3's DQN) and any git ref, on this machine.

    python benchmark/bench.py                     # us and SB3 on the same work, ratios (README's speed section)
    python benchmark/bench.py --baseline main     # ... and the scripts of a git ref (a worktree), in the same run
    python benchmark/bench.py --peer cleanrl --cleanrl PYTHON CHECKOUT  # CleanRL's dqn.py and dqn_atari.py as the peer
    python benchmark/bench.py --quick             # fewer steps, for a look
    python benchmark/bench.py --repeat 3          # each program 3 times per configuration, in turn: medians
    python benchmark/bench.py --only default      # only the default `dqn.py --env-id CartPole-v1` run (500k steps)
    python benchmark/bench.py --cuda              # every program on the GPU (on a machine without one: says so)
    python benchmark/bench.py --profile           # only: where dqn.py's time goes per env step, 1 and 8 envs,
                                                  # and what a step of each vector env of CartPole costs
    python benchmark/bench.py --checkpoint        # only: saving and reading a full 1M-step Atari replay memory
    python benchmark/bench.py --limits            # only: each update's and action's FLOPs, this CPU's matmul peak,
                                                  # and how far the scripts' arithmetic is from it

The table's header names the CPU model, cores, torch version and date: figures hold for that machine only, so quote
the ratios, which compare programs measured in the same run. For each configuration each program runs as a user
would (a fresh process in a scratch folder) and the numbers come from outside it: wall time of the whole process,
peak resident memory (the kernel's rusage), and steps/s before and
after learning starts from the wall-clock stamps of its TensorBoard `charts/SPS` points. Start-up is the whole-process
wall time of a 2-step run (imports, env and network creation, one update, writing the logs), best of 3. These
machines are shared: the same program can take 15 % longer from one run to the next, so --repeat runs the programs
in turn (A B C A B C) and reports medians with the wall time's range.
With `--peer cleanrl`, CleanRL's own `cleanrl/dqn.py` and `cleanrl/dqn_atari.py` run from a checkout of
vwxyzjn/cleanrl with the interpreter of their pinned environment (docs/atari.md; `PYTHONPATH` set to the checkout), with
`--no-cuda` (or `--cuda`), the same steps and learning start, and in the Breakout rows the same memory size and final
epsilon; they run one env only, so the 8-env rows leave them out, and they evaluate only a saved model. Their
steps/s come from the wall-clock stamps of all their TensorBoard points (they log SPS only once learning starts, and
each game as it ends). Without `--cleanrl PYTHON CHECKOUT` the peer is skipped, with one line on stderr. When that
environment has jax 0.4.30, flax 0.8.5 and optax 0.2.3, CleanRL's `dqn_jax.py` and `dqn_atari_jax.py` run too, the
same way (they have no `--cuda`: `JAX_PLATFORMS=cpu`, or `cuda` with `--cuda`); else one line says they are skipped.
SB3's DQN gets the same hyperparameters (network, batch, learning rate, buffer, train frequency with as many updates
per env step, target period, epsilon schedule, no gradient clipping) and its steps/s come from a callback's stamps.
Each program keeps its own numerics: SB3 and ours compute in float32; a --baseline ref from before e4a63a0 runs
dqn_atari.py's update batches in bfloat16 on CPUs with AVX-512 bf16 (its --bf16 default then).
Then the replay memory of dqn_atari.py: bytes per transition, what resident memory grows per stored step, and what
`sample(32)` costs against SB3's plain ReplayBuffer. With --checkpoint, only the bytes and seconds of dqn_atari.py's
checkpoint of a full 1M-step replay memory, written to a scratch folder as the script writes it, and read back as a
resume reads it.
"""

import argparse
import contextlib
import glob
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLEANRL = ("cleanrl", "cleanrl-jax")  # CleanRL's torch scripts, and its JAX ones (dqn_jax.py, dqn_atari_jax.py)
JAX_PINS = ["0.4.30", "0.8.5", "0.2.3"]  # jax, flax and optax: the versions CleanRL's JAX scripts run with


def machine():
    """CPU model, cores, torch, Python and date: the header every table carries."""
    import torch

    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
            f.seek(0)
            flags = next((l.split(":", 1)[1].split() for l in f if l.startswith("flags")), [])
        cpu += ", AVX-512" * ("avx512f" in flags) + " with bf16" * ("avx512_bf16" in flags)
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    return (
        f"{cpu}; {os.cpu_count()} cores; torch {torch.__version__}; Python {platform.python_version()}; "
        f"{time.strftime('%Y-%m-%d %H:%M')}"
    )


def run(cmd, env=None):
    """Runs a command in a scratch folder; returns (wall seconds, peak RSS MiB, stdout, (wall, step) stamps)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with tempfile.TemporaryDirectory() as cwd, tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0), err.seek(0)
        if status != 0:
            sys.exit(f"bench.py: error: {' '.join(map(str, cmd))} failed: {err.read()[-500:]}")
        text, runs = out.read(), glob.glob(os.path.join(cwd, "runs", "*"))
        if runs:  # every scalar's wall-clock stamp: CleanRL logs SPS only once it learns, but each game as it ends
            acc = EventAccumulator(runs[0], size_guidance={"scalars": 0}).Reload()
            sps = sorted({(e.wall_time, e.step) for tag in acc.Tags()["scalars"] for e in acc.Scalars(tag)})
        else:  # SB3: the callback's stamps
            sps = [tuple(p) for p in json.loads(text.splitlines()[-1])]
        return wall, usage.ru_maxrss / 1024, text, sps


def steps_per_second(sps, first, last):
    """Env steps/s between the points nearest to steps `first` and `last`."""
    a = min(sps, key=lambda p: abs(p[1] - first))
    b = min(sps, key=lambda p: abs(p[1] - last))
    return (b[1] - a[1]) / (b[0] - a[0])


def command(program, work, total, before):
    """The command line of one program on one piece of work."""
    if program[1] == "sb3":
        spec = {**work, "total": total, "before": before}
        return [sys.executable, os.path.abspath(__file__), "--sb3", json.dumps(spec)]
    atari = work["env_id"].startswith("Breakout")
    device = ["--cuda" if work["cuda"] else "--no-cuda"]
    if program[1] == "cleanrl-jax":  # (no such flag: JAX takes its device from JAX_PLATFORMS, see command_env)
        device = []
    python, folder = (sys.executable, program[2]) if program[1] == "script" else program[2]
    if program[1] in CLEANRL:  # CleanRL's scripts are in the checkout's cleanrl/ folder
        folder = os.path.join(folder, "cleanrl")
    script = os.path.join(
        folder, ("dqn_atari" if atari else "dqn") + ("_jax.py" if program[1] == "cleanrl-jax" else ".py")
    )
    if work.get("default"):  # the run as a user starts it: every default, the evaluation included
        return [python, script, "--env-id", work["env_id"], *device]
    flags = ["--env-id", work["env_id"], *device, "--total-timesteps", total, "--learning-starts", before]
    if program[1] == "script":  # (CleanRL's scripts have one env and evaluate only a saved model)
        flags += ["--num-envs", work["n_envs"], "--eval-episodes", 0]
    if atari:
        flags += ["--buffer-size", work["buffer"], "--end-e", work["end_e"]]
    return [python, script, *map(str, flags)]


def command_env(program, work, total, before):
    """The command and the environment variables it runs with: CleanRL's scripts import from their checkout, and its
    JAX scripts run on the CPU unless the work is on the GPU."""
    env = {"PYTHONPATH": program[2][1]} if program[1] in CLEANRL else None
    if program[1] == "cleanrl-jax":
        env["JAX_PLATFORMS"] = "cuda" if work["cuda"] else "cpu"
    return command(program, work, total, before), env


def measure(name, work, before, after, programs, repeat):
    """Every program on the same work, `repeat` times in turn (A B C A B C ...: a slow spell of the machine hits all
    of them); one table row each with the medians, and the wall time's range and ratio to ours."""
    programs = [p for p in programs if p[1] != "sb3" or not work.get("default")]
    programs = [p for p in programs if p[1] not in CLEANRL or work["n_envs"] == 1]  # CleanRL's DQN runs one env
    short = {**work, "default": False}  # start-up: a 2-step run, whatever the configuration
    startups = [min(run(*command_env(p, short, 2, 1))[0] for _ in range(3)) for p in programs]  # best of 3: cold
    runs = [[] for _ in programs]
    for _ in range(repeat):
        for program, results in zip(programs, runs):
            wall, rss, _, sps = run(*command_env(program, work, before + after, before))
            pre = steps_per_second(sps, min(1000, before // 10), before)
            post = steps_per_second(sps, before + min(1000, after // 10), before + after)
            results.append((pre, post, wall, rss))
    medians = [np.median(np.array(results), axis=0) for results in runs]
    for program, startup, results, (pre, post, wall, rss) in zip(programs, startups, runs, medians):
        spread = f" ({min(r[2] for r in results):.1f}-{max(r[2] for r in results):.1f})" if repeat > 1 else ""
        ratio = "1" if program is programs[0] else f"{wall / medians[0][2]:.2f}"
        print(
            f"| {name} | {program[0]} | {startup:.1f} | {pre:,.0f} | {post:,.0f} | {wall:.1f}{spread} | {rss:,.0f} | "
            f"{ratio} |",
            flush=True,
        )
    return medians


def sb3_child(spec):
    """Stable-Baselines3's DQN on the same work as ours; prints its (wall time, step) stamps as JSON."""
    import math

    import ale_py
    import gymnasium as gym
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_atari_env, make_vec_env
    from stable_baselines3.common.vec_env import VecFrameStack

    atari, n = spec["env_id"].startswith("Breakout"), spec["n_envs"]
    gym.register_envs(ale_py)
    torch.set_num_threads(spec["threads"] or torch.get_num_threads())  # the thread count ours uses
    env = (
        VecFrameStack(make_atari_env(spec["env_id"], n, seed=1), 4)
        if atari
        else make_vec_env(spec["env_id"], n, seed=1)
    )
    g = math.gcd(spec["train_freq"], n)  # as many updates per env step as ours: train_freq counts vector steps
    model = DQN(
        "CnnPolicy" if atari else "MlpPolicy",
        env,
        learning_rate=spec["lr"],
        buffer_size=spec["buffer"],
        learning_starts=spec["before"],
        batch_size=spec["batch"],
        tau=1.0,
        gamma=0.99,
        train_freq=spec["train_freq"] // g,
        gradient_steps=n // g,
        target_update_interval=spec["target"],
        exploration_fraction=spec["fraction"],
        exploration_initial_eps=1.0,
        exploration_final_eps=spec["end_e"],
        max_grad_norm=math.inf,
        optimize_memory_usage=atari,
        replay_buffer_kwargs={"handle_timeout_termination": False} if atari else None,
        policy_kwargs=None if atari else {"net_arch": [120, 84]},
        device="cuda" if spec["cuda"] else "cpu",
        seed=1,
    )
    stamps = []

    class Stamps(BaseCallback):
        def _on_step(self):
            if not stamps or self.num_timesteps - stamps[-1][1] >= 100 or self.num_timesteps >= spec["total"]:
                stamps.append((time.time(), self.num_timesteps))
            return True

    model.learn(spec["total"], callback=Stamps())
    print(json.dumps(stamps))


def breakout_stream(dqn_atari, n=2000):
    """n real Breakout transitions of a random agent, as rb.add's arguments, to replay in a loop."""
    import gymnasium as gym

    envs = gym.vector.SyncVectorEnv(
        [dqn_atari.make_env("BreakoutNoFrameskip-v4", 0)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
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
    print(
        f"- FrameReplayBuffer({capacity:,}): {arrays / capacity:,.0f} bytes per transition "
        f"({arrays / 2**30:.2f} GiB for all its arrays); resident memory grew {grown:,.0f} bytes per stored step "
        f"over {fill:,} steps (SB3's plain buffer: {2 * 4 * 84 * 84 + 8 + 4 + 4 + 4:,} bytes per transition)"
    )
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


def checkpoint_numbers(capacity):
    """dqn_atari.py's checkpoint (networks, optimizer, the whole replay memory) of a full buffer, written as the script
    writes it, then read back as a resume reads it (the memory's arrays copied out of the mapped file)."""
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
    for _ in range(capacity):
        rb.add(*steps[rb.added % len(steps)], {})
    fields = {k: v for k, v in vars(rb).items() if not isinstance(v, (gym.Space, torch.device))}  # as checkpoint()
    state = {
        "global_step": rb.added,
        "q_network": q_network.state_dict(),
        "target_network": target_network.state_dict(),
        "optimizer": optimizer.state_dict(),
        "buffer": {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in fields.items()},
    }
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        assert dqn_atari.write_checkpoint(state, run_dir)
        written = time.perf_counter() - start
        path = os.path.join(run_dir, "checkpoint", "checkpoint.pt")
        start = time.perf_counter()
        saved, _ = dqn_atari.load_tensors(path)
        arrays = {k: v.numpy().copy() for k, v in saved["buffer"].items() if torch.is_tensor(v)}
        read = time.perf_counter() - start
        assert np.array_equal(arrays["frames"], rb.frames)
        size = os.path.getsize(path) / 2**20
        print(
            f"- checkpoint of a full replay memory (FrameReplayBuffer({capacity:,})): {size:,.0f} MiB written in "
            f"{written:.1f} s, read back in {read:.1f} s",
            flush=True,
        )


def profile(steps, before, n_envs):
    """Where dqn.py's time goes per env step (default CartPole, `n_envs` envs), from cProfile's cumulative times (which
    add their own overhead to every Python call, so read the shares, not the absolute microseconds)."""
    import pstats

    def profiled(total, learning_starts):
        with tempfile.TemporaryDirectory() as cwd:
            out = os.path.join(cwd, "profile.out")
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "cProfile",
                    "-o",
                    out,
                    os.path.join(ROOT, "dqn.py"),
                    "--no-cuda",
                    "--num-envs",
                    str(n_envs),
                    "--total-timesteps",
                    str(total),
                    "--learning-starts",
                    str(learning_starts),
                    "--eval-episodes",
                    "0",
                ],
                cwd=cwd,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            stats = pstats.Stats(out).stats
        return stats, max(v[3] for k, v in stats.items() if k[0].endswith("dqn.py") and k[2] == "<module>")

    stats, total = profiled(steps, before)
    startup = profiled(2, 1)[1]  # imports, env and network creation: not per step
    parts = {  # label: (file name ends with, function name)
        "env step (SyncVectorEnv.step)": ("sync_vector_env.py", "step"),
        "greedy action (act_forward, NumPy)": ("dqn.py", "act_forward"),
        "forward passes of the updates (QNetwork.forward)": ("dqn.py", "forward"),
        "buffer add (ReplayBuffer.add)": ("buffers.py", "add"),
        "buffer sample (ReplayBuffer.sample)": ("buffers.py", "sample"),
        "backward": ("__init__.py", "backward"),
        "optimizer step (Adam)": ("adam.py", "step"),
        "zero_grad": ("optimizer.py", "zero_grad"),
        "TensorBoard (add_scalar)": ("writer.py", "add_scalar"),
    }
    total -= startup
    print(
        f"dqn.py CartPole-v1, {n_envs} env{'s' * (n_envs > 1)}, {before:,} + {steps - before:,} steps, under cProfile: "
        f"{total / steps * 1e6:,.1f} us "
        f"per env step in all, start-up ({startup:.1f} s) left out\n\n"
        "| part | calls | us per env step | share |\n|---|---|---|---|"
    )
    accounted = 0.0
    for label, (file, name) in parts.items():
        hits = [v for k, v in stats.items() if k[0].endswith(file) and k[2] == name]
        calls, seconds = max((v[1], v[3]) for v in hits)  # the outermost of a method and its super()
        accounted += seconds
        print(f"| {label} | {calls:,} | {seconds / steps * 1e6:,.1f} | {seconds / total:.0%} |")
    print(
        f"| everything else (the loop itself) | | {(total - accounted) / steps * 1e6:,.1f} | "
        f"{(total - accounted) / total:.0%} |"
    )


def update_and_action(q_network, target_network, rb, batch, gamma, lr):
    """One update (sample, TD target, loss, backward, Adam) and one greedy action, as the scripts' loops compute
    them."""
    import torch
    import torch.nn.functional as F

    target_network.load_state_dict(q_network.state_dict())
    optimizer = torch.optim.Adam(q_network.parameters(), lr=lr, fused=True)
    obs = torch.as_tensor(rb.sample(1).observations)

    def update():
        data = rb.sample(batch)
        with torch.no_grad():
            target_max, _ = target_network(data.next_observations).max(dim=1)
            td_target = data.rewards.flatten() + gamma * target_max * (1 - data.dones.flatten())
        old_val = q_network(data.observations).gather(1, data.actions).squeeze(1)
        loss = F.mse_loss(td_target, old_val)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def act():
        with torch.no_grad():
            return q_network(obs).argmax(dim=1).cpu().numpy()

    return update, act


def flops(fn):
    """The FLOPs of one call: torch's count of its matrix products and convolutions, forward and backward."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def limits(rounds=300):
    """How far each configuration is from what this CPU can do. The FLOPs of one update (sample, target, loss,
    backward, Adam) and of one greedy action, counted by torch's FlopCounterMode on the scripts' own QNetwork (matrix
    products and convolutions, forward and backward: the arithmetic that matters), against a plain float32 matmul at
    the thread count the script uses by default (its peak here), and the time of each in this process, computed as the
    script computes it. At the peak rate a product of these small matrices is out of reach (MKL's tiny-matrix paths and
    torch's dispatch cost more than the arithmetic): the ratio says how much a compiler or a faster kernel could ever
    recover, not what it will."""
    import gymnasium as gym
    import torch
    from stable_baselines3.common.buffers import ReplayBuffer

    sys.path.insert(0, ROOT)
    import dqn
    import dqn_atari

    def best(fn, n):  # the median of 5 rounds of n calls, per call (seconds)
        fn()
        times = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(n):
                fn()
            times.append((time.perf_counter() - start) / n)
        return float(np.median(times))

    def peak(threads, size=1024):
        torch.set_num_threads(threads)
        a, b = torch.randn(size, size), torch.randn(size, size)
        return 2 * size**3 / best(lambda: a @ b, 10)

    torch.manual_seed(0)
    cartpole_memory = ReplayBuffer(
        10_000,
        gym.spaces.Box(-np.inf, np.inf, (4,), np.float32),
        gym.spaces.Discrete(2),
        handle_timeout_termination=False,
    )
    for _ in range(10_000):
        o = np.random.randn(1, 4).astype(np.float32)
        cartpole_memory.add(o, o, np.random.randint(2, size=1), np.ones(1), np.zeros(1), [{}])
    frames = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    breakout_memory = dqn_atari.FrameReplayBuffer(100_000, frames, gym.spaces.Discrete(4))
    steps = breakout_stream(dqn_atari)
    for i in range(20_000):
        breakout_memory.add(*steps[i % len(steps)], {})
    configs = [  # label, the script's networks, its memory, batch, gamma, learning rate, default torch threads
        ("CartPole-v1 (dqn.py)", dqn.QNetwork(4, 2), dqn.QNetwork(4, 2), cartpole_memory, 128, 0.99, 2.5e-4, 1),
        (
            "Breakout (dqn_atari.py)",
            dqn_atari.QNetwork(4),
            dqn_atari.QNetwork(4),
            breakout_memory,
            32,
            0.99,
            1e-4,
            torch.get_num_threads(),
        ),
    ]
    print(
        f"{machine()}; float32; medians of 5 rounds\n\n| configuration | torch threads | matmul peak (GFLOP/s) | "
        "update (MFLOP) | update at the peak (us) | update measured (us) | measured / peak | action (MFLOP) | "
        "action at the peak (us) | action measured (us) | measured / peak |\n" + "|---" * 11 + "|"
    )
    for label, q_network, target_network, rb, batch, gamma, lr, threads in configs:
        update, act = update_and_action(q_network, target_network, rb, batch, gamma, lr)
        counts = [flops(update), flops(act)]
        rate = peak(threads)
        times = [best(update, rounds // (10 if "Breakout" in label else 1)), best(act, rounds * 3)]
        cells = [
            f"{count / 1e6:,.2f} | {count / rate * 1e6:,.1f} | {t * 1e6:,.0f} | {t / (count / rate):,.1f}x"
            for count, t in zip(counts, times)
        ]
        print(f"| {label} | {threads} | {rate / 1e9:,.0f} | {cells[0]} | {cells[1]} |", flush=True)


def vector_env_numbers(steps=5000):
    """gymnasium's SyncVectorEnv of CartPole (dqn.py's, SAME_STEP) against its NumPy CartPoleVectorEnv (NEXT_STEP)."""
    import gymnasium as gym
    from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

    for n in (1, 8):
        sync = gym.vector.SyncVectorEnv(
            [lambda: gym.make("CartPole-v1")] * n, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
        )
        for label, envs in (("SyncVectorEnv", sync), ("CartPoleVectorEnv", CartPoleVectorEnv(num_envs=n))):
            envs.reset(seed=0)
            actions, times = np.random.default_rng(0).integers(2, size=(steps, n)), []
            for _ in range(5):
                start = time.perf_counter()
                for a in actions:
                    envs.step(a)
                times.append((time.perf_counter() - start) / steps)
            print(
                f"- CartPole-v1, {n} env{'s' * (n > 1)}, {label}.step: {min(times) * 1e6:,.1f} us "
                f"(best of 5 x {steps:,})"
            )


def baseline_worktree(ref, stack):
    """The scripts of a git ref, checked out in a temporary worktree that is removed at exit."""
    folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-baseline-"))
    found = subprocess.run(
        ["git", "-C", ROOT, "worktree", "add", "--detach", folder, ref], capture_output=True, text=True
    )
    if found.returncode != 0:
        sys.exit(f"bench.py: error: cannot check out {ref!r}: {found.stderr.strip().splitlines()[-1]}")
    stack.callback(subprocess.run, ["git", "-C", ROOT, "worktree", "remove", "--force", folder], capture_output=True)
    sha = subprocess.run(
        ["git", "-C", folder, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return (f"{ref} ({sha})" if ref != sha else sha, "script", folder)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps")
    parser.add_argument("--baseline", nargs="*", default=[], metavar="REF", help="git refs to measure beside us")
    parser.add_argument("--no-peer", action="store_true", help="leave out Stable-Baselines3's DQN")
    parser.add_argument(
        "--peer", choices=["sb3", "cleanrl"], default="sb3", help="the peer measured beside us (default: SB3's DQN)"
    )
    parser.add_argument(
        "--cleanrl",
        nargs=2,
        metavar=("PYTHON", "CHECKOUT"),
        help="with --peer cleanrl: the interpreter of CleanRL's environment and a checkout of vwxyzjn/cleanrl",
    )
    parser.add_argument("--only", choices=["cartpole", "default", "breakout"], help="one family of configurations")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each program per configuration, in turn (medians)"
    )
    parser.add_argument("--cuda", action="store_true", help="run every program on the GPU (needs one)")
    parser.add_argument(
        "--checkpoint", action="store_true", help="only the checkpoint of a full 1M-step Atari replay memory"
    )
    parser.add_argument("--profile", action="store_true", help="only: where dqn.py's time goes per env step")
    parser.add_argument("--limits", action="store_true", help="only: FLOPs and this CPU's matmul peak against time")
    parser.add_argument("--sb3", help=argparse.SUPPRESS)  # internal: one SB3 run, in its own process
    options = parser.parse_args()
    if options.sb3:
        sys.exit(sb3_child(json.loads(options.sb3)))
    if options.repeat < 1:
        sys.exit(f"bench.py: error: --repeat must be >= 1, got {options.repeat}")
    if options.cuda and (options.checkpoint or options.profile or options.limits):
        sys.exit(
            "bench.py: error: --checkpoint, --profile and --limits measure the CPU; --cuda goes with the table only"
        )
    if options.cuda:
        import torch

        if not torch.cuda.is_available():  # nothing to measure: say so, and leave
            sys.exit(print("bench.py: --cuda: this machine has no CUDA device; nothing was measured", file=sys.stderr))
    if options.checkpoint:
        sys.exit(checkpoint_numbers(1_000_000))
    if options.limits:
        sys.exit(limits(10 if options.quick else 300))
    if options.profile:
        for n_envs in (1, 8):
            profile(15_000 if options.quick else 60_000, 10_000 if not options.quick else 5_000, n_envs)
            print()
        sys.exit(vector_env_numbers())
    with contextlib.ExitStack() as stack:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(
            ["git", "-C", ROOT, "status", "--porcelain", "--", "dqn.py", "dqn_atari.py"], capture_output=True, text=True
        ).stdout.strip()
        programs = [(f"ours ({head.stdout.strip() or 'this folder'}{', modified' if dirty else ''})", "script", ROOT)]
        programs += [baseline_worktree(ref, stack) for ref in options.baseline]
        if options.no_peer:
            pass
        elif options.peer == "sb3":
            programs += [("SB3 DQN", "sb3", None)]
        elif options.cleanrl:
            python, checkout = options.cleanrl
            head = ["git", "-C", checkout, "rev-parse", "--short", "HEAD"]
            sha = subprocess.run(head, capture_output=True, text=True)
            name = f"CleanRL ({sha.stdout.strip() or 'checkout'})"
            programs += [(name, "cleanrl", (python, checkout))]
            ask = "import jax, flax, optax; print(jax.__version__, flax.__version__, optax.__version__)"
            versions = subprocess.run([python, "-c", ask], capture_output=True, text=True).stdout.split()
            if versions == JAX_PINS:
                programs += [(name.replace("CleanRL", "CleanRL JAX"), "cleanrl-jax", (python, checkout))]
            else:
                print(
                    f"bench.py: --peer cleanrl: CleanRL's environment has not jax {JAX_PINS[0]}, flax {JAX_PINS[1]} and"
                    f" optax {JAX_PINS[2]} (it has {' '.join(versions) or 'none'}); its dqn_jax.py skipped",
                    file=sys.stderr,
                )
        else:
            print("bench.py: --peer cleanrl: no --cleanrl PYTHON CHECKOUT given; CleanRL skipped", file=sys.stderr)
        q, r = options.quick, options.repeat
        gpu = f"; GPU: {__import__('torch').cuda.get_device_name()}" if options.cuda else ""
        print(f"{machine()}{gpu}{f'; medians of {r} runs each, in turn (wall range in brackets)' if r > 1 else ''}\n")
        print(
            "| configuration | program | start-up (s) | steps/s before learning | steps/s after learning | wall (s) | "
            "peak RSS (MiB) | wall / ours |"
        )
        print("|---|---|---|---|---|---|---|---|")
        cartpole = {
            "env_id": "CartPole-v1",
            "lr": 2.5e-4,
            "buffer": 10000,
            "batch": 128,
            "train_freq": 10,
            "target": 500,
            "fraction": 0.5,
            "end_e": 0.05,
            "threads": 1,
            "cuda": options.cuda,
        }
        breakout = {
            "env_id": "BreakoutNoFrameskip-v4",
            "lr": 1e-4,
            "buffer": 100000,
            "batch": 32,
            "train_freq": 4,
            "target": 1000,
            "fraction": 0.1,
            "end_e": 0.9,
            "threads": 0,
            "cuda": options.cuda,
        }  # epsilon 1 -> 0.9: the default run's first 8%
        if options.only in (None, "cartpole"):
            before, after = (10000, 50000) if not q else (5000, 10000)
            for n in (1, 8):
                measure(
                    f"CartPole-v1, {before // 1000}k + {after // 1000}k steps, {n} env{'s' * (n > 1)}",
                    {**cartpole, "n_envs": n},
                    before,
                    after,
                    programs,
                    r,
                )
        if (
            options.only == "default" or options.only is None and not q
        ):  # 500k steps and the evaluation; no SB3 (minutes more)
            measure(
                "`dqn.py --env-id CartPole-v1` (the default run)",
                {**cartpole, "n_envs": 1, "default": True},
                10000,
                490000,
                programs,
                r,
            )
        if options.only in (None, "breakout"):
            before, after = (10000, 4000) if not q else (3000, 1000)
            for n in (1, 8):
                measure(
                    f"Breakout, {before // 1000}k + {after // 1000}k steps, {n} env{'s' * (n > 1)}, buffer 100k",
                    {**breakout, "n_envs": n},
                    before,
                    after,
                    programs,
                    r,
                )
        if not options.only and not options.cuda:
            print()
            buffer_numbers(1_000_000, 50_000 if q else 200_000)
