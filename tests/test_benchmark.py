"""benchmark/runner.py runs sweeps as Ray tasks (a local instance, or a real two-node cluster on 127.0.0.1) and
benchmark/report.py reports them with rliable."""

import glob
import os
import secrets
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest

from conftest import ROOT, run_script, scalars

RAY = os.path.join(os.path.dirname(sys.executable), "ray")
RUNNER = [sys.executable, os.path.join(ROOT, "benchmark", "runner.py")]
TINY = ["--total-timesteps", "3000", "--learning-starts", "1000", "--eval-episodes", "2"]
sys.path.insert(0, os.path.join(ROOT, "benchmark"))


def test_the_sweep_shows_the_step_a_script_printed_last(tmp_path):
    import runner

    flags = ["--total-timesteps", 700, "--learning-starts", 100, "--eval-episodes", 0, "--no-cuda"]
    result = run_script("dqn.py", *flags, cwd=tmp_path)
    os.makedirs(tmp_path / "logs")
    (tmp_path / "logs" / "run.log").write_text(result.stdout)
    state, line = runner.progress({"name": "run"}, str(tmp_path))
    assert (state, line.split()[:2]) == ("running", ["step", "700"]), (result.stdout, line)


def cleanrl_log(path, games):
    noise = "A.L.E: Arcade Learning Environment\nSPS: 40\n"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(noise + "".join(f"global_step={s}, episodic_return=[{r}]\n" for s, r in games))


def test_the_atari_check_reads_cleanrls_console_log_like_events(tmp_path):
    """CleanRL's runs are committed as its console logs (a line per game): the report bins them as it bins events."""
    import atari_300k

    games = [(187, 2.0), (49_999, 4.0), (50_001, 10.0), (299_350, 32.0)]
    cleanrl_log(tmp_path / "seed3.log", games)
    seed, run = atari_300k.read_log(str(tmp_path / "seed3.log"))
    assert seed == "3" and run["steps"] == 299_350 and not run["wall"]
    assert run["returns"][:, 1:].tolist() == [[s, r] for s, r in games]
    cleanrl_log(tmp_path / "out" / "cleanrl" / "seed3.log", games)
    atari_300k.report(str(tmp_path / "out"), "PongNoFrameskip-v4", [])
    row = next(line for line in open(tmp_path / "out" / "results.md") if line.startswith("| CleanRL | 3 |"))
    assert row.split(" | ")[2:4] == ["3.00 (2)", "10.00 (1)"] and "| 299,350 | n/a | n/a |" in row, row
    assert os.path.exists(tmp_path / "out" / "pong_300k.png")


def test_the_atari_aggregate_human_normalises_each_games_last_40_and_compares_the_programs(tmp_path):
    import atari_300k

    # each run: 50 games, its last 40 scoring `last`; random and human: Pong -20.7 and 14.6, Breakout 1.7 and 30.5
    runs = {
        ("PongNoFrameskip-v4", ""): {1: -20.7, 2: 14.6},
        ("PongNoFrameskip-v4", "cleanrl"): {1: -20.7, 2: -20.7},
        ("BreakoutNoFrameskip-v4", ""): {1: 30.5, 2: 16.1, 3: 99.0},  # a third seed on one game only: left out
        ("BreakoutNoFrameskip-v4", "cleanrl"): {3: 1.7, 4: 1.7},  # other seeds than on Pong: still 2 runs per game
    }
    for (game, program), seeds in runs.items():
        for seed, last in seeds.items():
            scores = [(1000 * i, 99.0 if i < 10 else last) for i in range(50)]
            cleanrl_log(tmp_path / game / program / f"seed{seed}.log", scores)
    atari_300k.aggregate(str(tmp_path))
    text = open(tmp_path / "aggregate.md").read()
    ours = next(line for line in text.splitlines() if line.startswith("| ours |")).split(" | ")
    cleanrl = next(line for line in text.splitlines() if line.startswith("| CleanRL |")).split(" | ")
    # ours normalised: Breakout 1.0 and 0.5, Pong 0.0 and 1.0: the IQM of 4 is the mean of the middle two, 0.5 and 1.0
    assert ours[1:4] == ["breakout, pong", "1, 2", "2 x 2"] and ours[4].startswith("0.750 ["), ours
    assert ours[5].startswith("0.625 ["), ours
    assert cleanrl[2:5] == ["breakout 3, 4; pong 1, 2", "2 x 2", "0.000 [0.000, 0.000]"], cleanrl
    # a run of ours beats one of CleanRL's: Breakout always; Pong seed 2 always, seed 1 ties (a half): 0.875
    assert "beats a run of CleanRL's on a game (averaged over the 2 games): 0.875 [" in text, text


@pytest.fixture
def cluster(monkeypatch):
    """A real Ray cluster of its own: a head node and a second node, 1 CPU each, on 127.0.0.1, with their own temp dir
    and ports; each node is a `ray start --block` process of this test, and stopping it stops that node's processes
    only (never `ray stop`, which stops every Ray instance on the machine)."""
    import shutil
    import tempfile

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # token authentication, as on a real cluster: every node and the driver share one secret
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
    env, temp = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}, tempfile.mkdtemp(prefix="ray")  # short: socket paths
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats", "--block"]
    address, nodes = f"127.0.0.1:{port}", []
    try:
        for flags in (
            ["--head", "--port", str(port), "--temp-dir", temp, "--include-dashboard", "false"],
            ["--address", address],
        ):
            nodes.append(
                subprocess.Popen(
                    [RAY, "start", *flags, *common], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            )
            deadline = time.time() + 120
            while (
                subprocess.run([RAY, "status", "--address", address], env=env, capture_output=True).stdout.count(
                    b" node_"
                )
                < len(nodes)
                and time.time() < deadline
            ):
                time.sleep(1)
        yield address
    finally:
        for node in reversed(nodes):
            node.terminate()
            node.wait(timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def test_a_sweep_on_a_two_node_cluster_survives_a_killed_worker_by_resuming_the_run(cluster, tmp_path):
    out = tmp_path / "sweep"
    flags = ["--total-timesteps", "6000", "--learning-starts", "1000", "--eval-episodes", "2"]
    # a user's process that looks like a run of seed 1: the test must leave it alone
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(900)", "dqn.py", "--seed", "1"])
    sweep = subprocess.Popen(
        [
            *RUNNER,
            "--address",
            cluster,
            "--env-ids",
            "CartPole-v1",
            "--seeds",
            "1",
            "2",
            "--out",
            str(out),
            "--checkpoint-frequency",
            "1000",
            "--progress-every",
            "5",
            "--",
            *flags,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline, victim = time.time() + 300, None
        while victim is None and time.time() < deadline:  # seed 1's script, once it has a checkpoint
            time.sleep(0.2)
            if glob.glob(str(out / "runs" / "CartPole-v1__dqn__1__*" / "checkpoint" / "checkpoint.pt")):
                # the run's own record names its process: TensorBoard's events file ends in the writer's pid
                [events] = glob.glob(str(out / "runs" / "CartPole-v1__dqn__1__*" / "events.out.tfevents.*"))
                victim = psutil.Process(int(events.split(".")[-2]))
                assert "dqn.py" in " ".join(victim.cmdline()), victim.cmdline()
        assert victim is not None, "seed 1 never reached its first checkpoint"
        victim.parent().send_signal(signal.SIGKILL)  # the Ray worker running the task dies, as when a node is lost
        output, _ = sweep.communicate(timeout=600)
    finally:
        sweep.kill()
        alive = bystander.poll() is None
        bystander.kill()
    assert alive, "a process the test did not start was killed"
    assert sweep.returncode == 0, output
    assert "2 runs (0 already done)" in output and "2 CPUs" in output and "2 nodes" in output, output
    log = (out / "logs" / "dqn__CartPole-v1__1.log").read_text()
    assert log.count("== runner: attempt") == 2 and "resuming runs/CartPole-v1__dqn__1__" in log, log
    resumed_at = int(log.split("resumed ")[1].split(" at step ")[1].split()[0].replace(",", ""))
    assert 1000 <= resumed_at < 6000
    [run] = glob.glob(str(out / "runs" / "CartPole-v1__dqn__1__*"))  # the same run folder goes on
    attempts = sorted(glob.glob(os.path.join(run, "events.out.tfevents.*")), key=os.path.getmtime)
    assert len(attempts) == 2
    second = scalars(attempts[1])["charts/SPS"]
    assert second[0][0] > resumed_at and second[-1][0] == 6000  # the steps continue, not restart
    steps = [s for s, _ in scalars(run)["charts/SPS"]]
    assert (
        steps == sorted(set(steps)) and steps[-1] == 6000
    )  # one curve, points logged again after the checkpoint dropped
    assert not (out / "abandoned").exists()
    assert (out / "logs" / "dqn__CartPole-v1__2.log").read_text().count("== runner: attempt") == 1
    rows = (out / "results.md").read_text().splitlines()
    assert any(r.startswith("| dqn | CartPole-v1 | 1,2 | ") for r in rows), rows


def test_a_local_sweep_reports_failures_and_a_restart_skips_finished_runs(tmp_path):
    out = tmp_path / "sweep"
    command = [*RUNNER, "--env-ids", "CartPole-v1", "NoSuchEnv-v0", "--seeds", "1", "--out", str(out), "--", *TINY]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "2 runs (0 already done) on Ray on this machine" in first.stdout
    failed_log = out / "logs" / "dqn__NoSuchEnv-v0__1.log"
    assert "FAILED dqn__NoSuchEnv-v0__1: exit 1 after" in first.stdout and str(failed_log) in first.stdout
    assert failed_log.read_text().count("== runner: attempt") == 1  # a script's own error is not retried
    assert (out / "logs" / "dqn__CartPole-v1__1.done").exists()
    assert (out / "code" / "dqn.py").read_bytes() == open(os.path.join(ROOT, "dqn.py"), "rb").read()
    assert (out / "dqn__CartPole-v1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert "2 runs (1 already done)" in again.stdout, again.stdout + again.stderr
    assert (out / "logs" / "dqn__CartPole-v1__1.log").read_text().count("== runner: attempt") == 1
    assert len(glob.glob(str(out / "runs" / "CartPole-v1__dqn__1__*"))) == 1


def test_runner_refuses_bad_arguments_with_one_line_each(tmp_path):
    result = subprocess.run(
        [*RUNNER, "--scripts", "nope.py", "--variants", "a b", "--retries", "-1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 3 and all(l.startswith("runner.py: error: ") for l in lines), lines
    assert not os.listdir(tmp_path)


def write_run(out, env_id, exp, seed, final, evals=(), cut=()):
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(os.path.join(out, "runs", f"{env_id}__{exp}__{seed}__1")) as w:
        for i, r in enumerate([0.0] * 5 + [final] * 20):
            w.add_scalar("charts/episodic_return", r, 100 * (i + 1))
        w.add_scalar("charts/SPS", 100, 2500)
        for i, r in enumerate(cut):  # an evaluation stopped part-way, then done again by the resumed run
            w.add_scalar("eval/episodic_return", r, i)
        for i, r in enumerate(evals):
            w.add_scalar("eval/episodic_return", r, i)


def test_report_gives_iqm_with_bootstrap_ci_and_human_normalised_atari_aggregates(tmp_path):
    from report import ATARI, atari_game, report

    assert [
        atari_game(e) for e in ("BreakoutNoFrameskip-v4", "ALE-MsPacman-v5", "UpNDownNoFrameskip-v4", "CartPole-v1")
    ] == ["breakout", "ms_pacman", "up_n_down", None]
    for seed, score in zip((1, 2, 3, 4), (10.0, 20.0, 30.0, 1000.0)):
        write_run(tmp_path, "CartPole-v1", "dqn", seed, score, evals=[score, score + 2], cut=[-500.0] * (seed == 1))
    for seed in (1, 2):  # human level on Breakout, random level on Pong: normalised 1 and 0
        write_run(tmp_path, "BreakoutNoFrameskip-v4", "dqn_atari", seed, ATARI["breakout"][1])
        write_run(tmp_path, "PongNoFrameskip-v4", "dqn_atari", seed, ATARI["pong"][0])
    report(str(tmp_path))
    text = (tmp_path / "results.md").read_text()
    [cartpole] = [r for r in text.splitlines() if r.startswith("| dqn | CartPole-v1 |")]
    cells = [c.strip() for c in cartpole.split("|")[1:-1]]
    assert cells[2] == "1,2,3,4"
    assert cells[3].startswith("25.00 [")  # IQM of 10, 20, 30, 1000: the middle two; the outlier is trimmed
    assert cells[4] == f"{np.mean([10, 20, 30, 1000]):.2f} ± {np.std([10, 20, 30, 1000]):.2f}"
    low, high = map(float, cells[3].split("[")[1].rstrip("]").split(","))
    assert 10 <= low < 25 < high <= 1000
    assert cells[5].startswith("26.00 [")  # eval: each run's mean of its evaluation episodes
    [atari] = [r for r in text.splitlines() if r.startswith("| dqn_atari | final |")]
    assert [c.strip() for c in atari.split("|")[1:-1]][2:] == [
        "2",
        "2",
        "0.500 [0.500, 0.500]",
        "0.500 [0.500, 0.500]",
        "0.500 [0.500, 0.500]",
    ]
    assert (tmp_path / "atari_profile.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_runner_stops_with_one_line_when_no_node_can_take_a_run_or_no_cluster_answers(tmp_path):
    for flags, says in (
        (["--cuda"], "--cuda: no node of this Ray cluster has 1 GPU(s)"),
        (["--cpus-per-run", "64"], "--cpus-per-run 64: no node of this Ray cluster has that many CPUs"),
        (["--address", "127.0.0.1:1"], "cannot connect to Ray at 127.0.0.1:1"),
    ):
        result = subprocess.run(
            [*RUNNER, "--out", str(tmp_path / "sweep"), *flags], capture_output=True, text=True, timeout=300
        )
        errors = [l for l in result.stderr.splitlines() if l.startswith("runner.py: error: ")]
        assert result.returncode == 1 and len(errors) == 1 and says in errors[0], result.stderr
        assert not (tmp_path / "sweep").exists()


def test_a_stopped_sweep_started_again_resumes_its_unfinished_run(tmp_path):
    out = tmp_path / "sweep"
    command = [
        *RUNNER,
        "--env-ids",
        "CartPole-v1",
        "--seeds",
        "1",
        "--out",
        str(out),
        "--checkpoint-frequency",
        "1000",
        "--",
        "--total-timesteps",
        "40000",
        "--learning-starts",
        "1000",
        "--eval-episodes",
        "2",
    ]
    sweep = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 300
        while not glob.glob(str(out / "runs" / "*" / "checkpoint" / "checkpoint.pt")) and time.time() < deadline:
            time.sleep(0.2)
        sweep.send_signal(signal.SIGINT)  # Ctrl-C
        output, _ = sweep.communicate(timeout=300)
    finally:
        sweep.kill()
    assert sweep.returncode == 130 and "start the same command again to resume" in output, output
    log = out / "logs" / "dqn__CartPole-v1__1.log"
    assert "continue with --resume runs/" in log.read_text()  # the run saved on its way out
    assert not (out / "logs" / "dqn__CartPole-v1__1.done").exists()
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    text = log.read_text()
    assert text.count("== runner: attempt") == 2 and "resuming runs/CartPole-v1__dqn__1__" in text, text
    [run] = glob.glob(str(out / "runs" / "*"))
    assert scalars(run)["charts/SPS"][-1][0] == 40000


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU is here: bench.py --cuda would measure it")
def test_bench_cuda_without_a_gpu_says_so_in_one_line_and_measures_nothing():
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmark", "bench.py"), "--cuda"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout) == (0, "")
    assert done.stderr == "bench.py: --cuda: this machine has no CUDA device; nothing was measured\n"


def test_bench_runs_cleanrls_own_scripts_from_its_checkout_with_its_interpreter_on_one_env_only(monkeypatch, capsys):
    import bench

    cleanrl = ("CleanRL (fe8d8a0)", "cleanrl", ("/venv/bin/python", "/src/cleanrl"))
    cartpole = {"env_id": "CartPole-v1", "cuda": False, "n_envs": 1, "buffer": 10000, "end_e": 0.05}
    assert bench.command(cleanrl, {**cartpole, "default": True}, 500000, 10000) == [
        "/venv/bin/python",
        "/src/cleanrl/cleanrl/dqn.py",
        "--env-id",
        "CartPole-v1",
        "--no-cuda",
    ]
    breakout = {**cartpole, "env_id": "BreakoutNoFrameskip-v4", "buffer": 100000, "end_e": 0.9}
    command, env = bench.command_env(cleanrl, breakout, 14000, 10000)
    assert command[:2] == ["/venv/bin/python", "/src/cleanrl/cleanrl/dqn_atari.py"] and env == {
        "PYTHONPATH": "/src/cleanrl"
    }
    assert "--no-cuda" in command and "--num-envs" not in command and "--eval-episodes" not in command
    words = [word for word in command[2:] if word != "--no-cuda"]
    flags = dict(zip(words[::2], words[1::2]))
    assert {k: flags[k] for k in ("--total-timesteps", "--learning-starts", "--buffer-size", "--end-e")} == {
        "--total-timesteps": "14000",
        "--learning-starts": "10000",
        "--buffer-size": "100000",
        "--end-e": "0.9",
    }
    ours = ("ours", "script", ROOT)
    assert bench.command(ours, {**cartpole, "n_envs": 8}, 2, 1)[:2] == [sys.executable, os.path.join(ROOT, "dqn.py")]
    ran = []
    stamps = [(0.0, 0), (1.0, 1), (2.0, 2)]
    monkeypatch.setattr(bench, "run", lambda cmd, env=None: ran.append(cmd[1]) or (1.0, 100.0, "", stamps))
    bench.measure("8 envs", {**cartpole, "n_envs": 8}, 1, 1, [ours, cleanrl], 1)
    assert not [script for script in ran if "cleanrl" in script], "CleanRL's DQN takes one env only"
    assert "CleanRL" not in capsys.readouterr().out
    jax = ("CleanRL JAX (fe8d8a0)", "cleanrl-jax", ("/venv/bin/python", "/src/cleanrl"))
    command, env = bench.command_env(jax, {**cartpole, "default": True}, 500000, 10000)
    assert command == ["/venv/bin/python", "/src/cleanrl/cleanrl/dqn_jax.py", "--env-id", "CartPole-v1"]
    assert env == {"PYTHONPATH": "/src/cleanrl", "JAX_PLATFORMS": "cpu"}, "no --cuda flag: JAX is told the device"
    assert bench.command(jax, breakout, 14000, 10000)[1] == "/src/cleanrl/cleanrl/dqn_atari_jax.py"


def test_same_tags_tells_a_changed_result_from_an_unchanged_one():
    import same_tags

    with open(os.path.join(ROOT, "dqn.py")) as f:
        source = f.read()
    flags = ["--total-timesteps", "800", "--learning-starts", "500", "--eval-episodes", "0"]
    first = same_tags.tags(source, "dqn.py", flags)
    assert "losses/td_loss" in first and "charts/SPS" not in first
    assert same_tags.tags(source, "dqn.py", flags) == first, "the same seed gives the same values"
    changed = same_tags.tags(source.replace("gamma: float = 0.99", "gamma: float = 0.9"), "dqn.py", flags)
    assert changed["losses/td_loss"] != first["losses/td_loss"] and changed["charts/epsilon"] == first["charts/epsilon"]


def test_generated_mutants_change_one_place_each_and_every_listed_equivalent_is_still_generated():
    import mutate

    generated = set()
    for script in ("dqn.py", "dqn_atari.py"):
        with open(os.path.join(ROOT, script)) as f:
            lines = f.read().splitlines()
        found = mutate.mutants(script)
        assert len(found) > 200
        for m in found:
            changed = [i for i, (a, b) in enumerate(zip(lines, m["source"].decode().splitlines())) if a != b]
            assert changed and changed[0] == m["line"] - 1, m
            generated.add((script, m["was"], m["now"]))
        assert not any("print(" in m["was"] or "fail(" in m["was"] for m in found)  # out of scope
    assert {(s, w, n) for ss, w, n in mutate.EQUIVALENT for s in ss.split()} <= generated, (
        "an equivalent mutant no longer matches its script: update the list"
    )


def test_each_tier_runs_the_survivors_of_the_one_before_and_a_second_run_skips_what_was_killed(tmp_path, monkeypatch):
    import mutate

    # mutant 0 is killed by the first tier, 1 by the second, 2 by neither; 3 survives and is listed as equivalent
    killers = {0: "tests/t.py::fast", 1: "tests/t.py::slow"}
    found = [dict(number=n, source=f"mutant {n}".encode()) for n in range(4)]
    tiers = [(["tests/t.py::fast"], 1.0), (["tests/t.py::slow"], 1.0)]
    ran = []

    def run_all(jobs, workers, timeout, on_done):
        results = {}
        for number, folder, pytest_args, log in jobs:
            ran.append((pytest_args[-1], number))
            results[number] = (int(killers.get(number) in pytest_args), 0.1)
            on_done(number, results[number])
        return results

    monkeypatch.setattr(mutate, "run_all", run_all)
    monkeypatch.setattr(mutate, "folder_with", lambda scratch, name, script, source: name)
    monkeypatch.setattr(mutate, "equivalent", lambda script, m: m["number"] == 3)
    results = mutate.run_tiers("dqn.py", found, tiers, str(tmp_path), 2)
    assert {n: code for n, (code, _) in results.items()} == {0: 1, 1: 1, 2: 0, 3: 0}
    assert ran == [("tests/t.py::fast", n) for n in range(4)] + [("tests/t.py::slow", 1), ("tests/t.py::slow", 2)]
    ran.clear()  # started again: killed ones stay killed, survivors meet the tests again, the equivalent one does not
    results = mutate.run_tiers("dqn.py", found, tiers, str(tmp_path), 2)
    assert {n: code for n, (code, _) in results.items()} == {0: 1, 1: 1, 2: 0, 3: 0}
    assert ran == [("tests/t.py::fast", 1), ("tests/t.py::fast", 2), ("tests/t.py::slow", 2)]


def test_the_limits_count_two_forward_passes_and_one_backward_per_update_and_one_forward_per_action():
    """bench.py --limits: FLOPs of dqn.py's CartPole update and action, against a count by hand (the products of the
    4-120-84-2 network; backward computes the weights' gradients, and the inputs' for all but the first layer)."""
    import bench
    import gymnasium as gym
    from stable_baselines3.common.buffers import ReplayBuffer

    import dqn

    rb = ReplayBuffer(
        256, gym.spaces.Box(-1, 1, (4,), np.float32), gym.spaces.Discrete(2), handle_timeout_termination=False
    )
    for _ in range(256):
        o = np.zeros((1, 4), np.float32)
        rb.add(o, o, np.zeros(1), np.ones(1), np.zeros(1), [{}])
    update, act = bench.update_and_action(dqn.QNetwork(4, 2), dqn.QNetwork(4, 2), rb, 128, 0.99, 2.5e-4)
    weights, inner = 4 * 120 + 120 * 84 + 84 * 2, 120 * 84 + 84 * 2  # multiply-adds per sample
    assert bench.flops(update) == 2 * 128 * (2 * weights + weights + inner)
    assert bench.flops(act) == 2 * weights


def test_long_runs_stops_a_real_run_and_reports_what_its_stop_wrote(tmp_path, capsys):
    """benchmark/long_runs.py's measurement on a short dqn.py run: a SIGTERM after its first console line, a
    checkpoint of the steps done, and a table row with the bytes the stop wrote."""
    import long_runs

    _, seconds, signalled = long_runs.stop("dqn.py", str(tmp_path), ["--eval-episodes", 0], at_step=12_000)
    [run_dir] = glob.glob(str(tmp_path / "runs" / "*"))
    long_runs.row("dqn.py, a short run", run_dir, seconds, signalled)
    cells = capsys.readouterr().out.split("|")
    assert int(cells[2].replace(",", "")) == 10_000 and cells[3].strip().endswith(" MiB"), cells  # (10k steps, full)
    assert long_runs.written_since(run_dir, signalled) > 100_000 and seconds > 0, "the stop wrote its checkpoint"
