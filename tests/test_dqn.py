"""dqn.py: DQN's rules, each checked on the script itself."""

import os
import runpy
import sys

import numpy as np
import pytest
import torch

import conftest
import dqn
from conftest import ROOT, run_dirs, run_script, scalars

FAST = ["--total-timesteps", 3000, "--learning-starts", 500, "--eval-episodes", 0, "--no-cuda"]


# ---- the pieces: schedule, target update, counting steps ---------------------------------------


def test_epsilon_falls_linearly_then_stays_at_end_e():
    duration = 100
    assert dqn.linear_schedule(1.0, 0.05, duration, 0) == 1.0
    assert dqn.linear_schedule(1.0, 0.05, duration, 50) == pytest.approx(0.525)
    assert dqn.linear_schedule(1.0, 0.05, duration, 100) == pytest.approx(0.05)
    assert dqn.linear_schedule(1.0, 0.05, duration, 10_000) == 0.05


def test_events_happen_once_per_multiple_of_their_period_whatever_the_number_of_envs():
    for n_envs in (1, 3, 8):
        steps = range(n_envs, 1000 + 1, n_envs)
        assert sum(dqn.crossed(s, n_envs, 10) for s in steps) == (steps[-1]) // 10


def test_q_network_is_the_cleanrl_mlp():
    net = dqn.QNetwork(4, 2)
    keys = ("in_features", "out_features")
    layers = [(type(m).__name__, *(getattr(m, k) for k in keys if hasattr(m, k))) for m in net.network]
    assert layers == [("Linear", 4, 120), ("ReLU",), ("Linear", 120, 84), ("ReLU",), ("Linear", 84, 2)]
    x = torch.randn(5, 4)
    assert torch.equal(net(x), net.network(x))


def test_evaluation_plays_whole_episodes_each_from_a_reset_and_closes_its_env(monkeypatch, workdir):
    from types import SimpleNamespace

    calls, make_env = [], dqn.make_env

    def recorded(*a, **k):
        def thunk():
            env = make_env(*a, **k)()
            step, reset, close = env.step, env.reset, env.close

            def stepped(action):
                result = step(action)
                calls.append("end" if result[2] or result[3] else "step")
                return result

            env.step = stepped
            env.reset = lambda **kw: calls.append("reset") or reset(**kw)
            env.close = lambda: calls.append("close") or close()
            return env

        return thunk

    monkeypatch.setattr(dqn, "make_env", recorded)
    monkeypatch.chdir(workdir)
    args = SimpleNamespace(env_id="CartPole-v1", seed=1, end_e=0.0, eval_episodes=3, capture_video=False)
    returns = dqn.evaluate(dqn.QNetwork(4, 2), args, "eval", "cpu", np.random.default_rng(0))
    episodes = " ".join(calls).split("reset")[1:]  # what follows each reset
    assert calls[0] == "reset" and calls[-1] == "close" and calls.count("close") == 1
    assert [e.split() for e in episodes[:3]] == [["step"] * (len(e.split()) - 1) + ["end"] for e in episodes[:3]]
    assert returns == [float(len(e.split())) for e in episodes[:3]]  # CartPole: a reward of 1 per step
    assert not os.path.exists("videos"), "no video without --capture-video"


# ---- the replay memory holds the right transitions (read from the script's own buffer) -----------


def run_in_process(monkeypatch, workdir, *flags):
    """Runs dqn.py in this process and returns its replay buffer."""
    from stable_baselines3.common import buffers

    kept = {}

    class KeptReplayBuffer(buffers.ReplayBuffer):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            kept["rb"] = self

    monkeypatch.setattr(buffers, "ReplayBuffer", KeptReplayBuffer)
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(sys, "argv", ["dqn.py", *map(str, flags)])
    runpy.run_path(os.path.join(ROOT, "dqn.py"), run_name="__main__")
    return kept["rb"]


@pytest.mark.parametrize("num_envs", [1, 3])
def test_replay_transitions_never_cross_episodes_and_only_terminations_are_dones(monkeypatch, workdir, num_envs):
    rb = run_in_process(
        monkeypatch,
        workdir,
        "--env-id",
        "tiny_envs:Counter-v0",
        "--num-envs",
        num_envs,
        "--total-timesteps",
        60,
        "--learning-starts",
        30,
        "--batch-size",
        4,
        "--eval-episodes",
        0,
        "--buffer-size",
        120,
        "--no-cuda",
    )
    obs, next_obs = rb.observations[: rb.pos], rb.next_observations[: rb.pos]
    dones = rb.dones[: rb.pos]
    assert len(obs) * num_envs == 60
    episode, t, next_episode, next_t = obs[..., 0], obs[..., 1], next_obs[..., 0], next_obs[..., 1]
    assert (next_episode == episode).all(), "a transition paired an observation with another episode's"
    assert (next_t == t + 1).all()
    terminated = (episode % 2 == 1) & (next_t == 3)
    truncated = (episode % 2 == 0) & (next_t == 4)
    assert truncated.any() and terminated.any()
    assert (dones == terminated).all(), "dones must be the terminations, never the truncations"
    # the step after an episode's end starts the next episode at t = 0
    ends = terminated | truncated
    assert (obs[1:][ends[:-1]][..., 1] == 0).all()


def q_value_learned(workdir, env_id, obs=0.0):
    result = run_script(
        "dqn.py",
        "--env-id",
        env_id,
        "--gamma",
        0.5,
        "--total-timesteps",
        2000,
        "--learning-starts",
        200,
        "--train-frequency",
        1,
        "--target-network-frequency",
        50,
        "--learning-rate",
        1e-3,
        "--batch-size",
        32,
        "--buffer-size",
        1000,
        "--eval-episodes",
        0,
        "--save-model",
        "--no-cuda",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    net = dqn.QNetwork(1, 2)
    net.load_state_dict(torch.load(os.path.join(run_dirs(workdir)[0], "dqn.pt")))
    return net(torch.full((1, 1), obs)).max().item()


def test_terminal_transition_does_not_bootstrap(workdir):
    # reward 1, then the episode terminates: Q = 1, not 1 + gamma * Q(next)
    assert q_value_learned(workdir, "tiny_envs:Terminating-v0") == pytest.approx(1.0, abs=0.05)


def test_truncated_episode_bootstraps_from_its_true_last_observation(workdir):
    # the time limit is not part of the task: Q(goal) = 2; from the next episode's start it would be 1.6, from
    # nothing (a cut taken for a terminal) 4/3
    assert q_value_learned(workdir, "tiny_envs:StartThenGoal-v0", obs=1.0) == pytest.approx(2.0, abs=0.15)


# ---- the whole script, as a user runs it --------------------------------------------------------


def test_help_says_how_steps_are_counted_with_several_envs(workdir):
    text = " ".join(run_script("dqn.py", "--help", cwd=workdir).stdout.replace("│", " ").split())
    for flag in ("--train-frequency", "--target-network-frequency", "--learning-starts", "--exploration-fraction"):
        assert flag in text
    assert "summed over all envs" in text


def test_updates_and_epsilon_count_env_steps_whatever_num_envs(workdir):
    curves = {}
    for n in (1, 4):
        result = run_script("dqn.py", "--num-envs", n, *FAST, cwd=os.path.join(workdir))
        assert result.returncode == 0, result.stderr
        curves[n] = scalars(run_dirs(workdir)[-1])
    for n in (1, 4):  # epsilon reaches end-e at exploration-fraction * total-timesteps in both
        eps = dict(curves[n]["charts/epsilon"])
        assert eps[1500] == pytest.approx(0.05 + 0.95 * (1 - (1500 - n) / 1500), abs=1e-6)
        assert eps[3000] == pytest.approx(0.05)
    # the same steps log a loss: learning starts at the same env step in both
    assert [s for s, _ in curves[1]["losses/td_loss"]] == [s for s, _ in curves[4]["losses/td_loss"]]


def test_run_logs_cleanrl_tags_and_is_reproducible(workdir):
    returns = []
    for _ in range(2):
        result = run_script(
            "dqn.py",
            "--total-timesteps",
            4000,
            "--learning-starts",
            1000,
            "--train-frequency",
            2,
            "--eval-episodes",
            2,
            "--no-cuda",
            cwd=workdir,
        )
        assert result.returncode == 0, result.stderr
        assert "eval:" in result.stdout and "+-" in result.stdout
        tags = scalars(run_dirs(workdir)[-1])
        returns.append([v for _, v in tags["charts/episodic_return"]])
    assert len(run_dirs(workdir)) == 2, "each run gets its own folder"
    for tag in (
        "charts/episodic_return",
        "charts/episodic_length",
        "charts/epsilon",
        "charts/SPS",
        "losses/td_loss",
        "losses/q_values",
        "eval/episodic_return",
    ):
        assert tag in tags
    assert len(tags["eval/episodic_return"]) == 2
    assert len(returns[0]) > 20 and returns[0] == returns[1]
    # each episode is logged at the step it ends, with its return (CartPole: 1 per step) and its length
    lengths = tags["charts/episodic_length"]
    assert tags["charts/episodic_return"] == lengths
    assert [step for step, _ in lengths] == np.cumsum([length for _, length in lengths]).tolist()
    # the loss and the mean Q are logged at the same steps, every 100 from the first update on
    steps = [step for step, _ in tags["losses/td_loss"]]
    assert steps == list(range(1100, 4001, 100)) and [step for step, _ in tags["losses/q_values"]] == steps


@pytest.mark.parametrize("env_id", ["Acrobot-v1", "MountainCar-v0"])
def test_other_classic_control_envs_run(workdir, env_id):
    result = run_script(
        "dqn.py",
        "--env-id",
        env_id,
        "--total-timesteps",
        1200,
        "--learning-starts",
        1000,
        "--eval-episodes",
        0,
        "--no-cuda",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    assert os.path.basename(run_dirs(workdir)[0]).startswith(f"{env_id}__dqn__1__")


def test_cuda_flag_without_cuda_runs_on_cpu(workdir):
    result = run_script(
        "dqn.py", "--cuda", "--total-timesteps", 600, "--learning-starts", 500, "--eval-episodes", 0, cwd=workdir
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    if not torch.cuda.is_available():
        assert "dqn.py: note: --cuda: this machine has no CUDA device; running on the CPU" in result.stdout


def test_capture_video_records_env_0s_first_training_game_whole_and_the_evaluation(workdir):
    import imageio.v3 as iio  # decodes with the ffmpeg that requirements.txt brings

    result = run_script(
        "dqn.py",
        "--capture-video",
        "--total-timesteps",
        300,
        "--learning-starts",
        200,
        "--eval-episodes",
        1,
        "--no-cuda",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    videos = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(workdir, "videos")) for f in fs]
    assert any(v.endswith(".mp4") for v in videos)
    assert any(v.endswith(".mp4") and "-eval" in v for v in videos), "evaluation episodes are recorded too"
    (run_dir,) = run_dirs(workdir)
    first = os.path.join(workdir, "videos", os.path.basename(run_dir), "rl-video-episode-0.mp4")
    frames = iio.imread(first)  # env 0's first game in training: its reset frame and one per step
    assert frames.ndim == 4 and frames.shape[-1] == 3
    assert len(frames) == scalars(run_dir)["charts/episodic_length"][0][1] + 1


BAD_INPUT = [  # the flags, and what each line of the message names (one line per problem)
    (["--env-id", "CartPol-v1"], ["Did you mean: `CartPole`"]),
    (["--env-id", "Pendulum-v1"], ["Discrete"]),
    (["--env-id", "ALE/Pong-v5"], ["Namespace ALE not found"]),
    (["--env-id", "FrozenLake-v1"], ["flat Box"]),
    (["--env-id", "tiny_envs:Image-v0"], ["flat Box"]),
    (["--env-id", "no_such_module:Env-v0"], ["no_such_module"]),
    (["--total-timesteps", 0], ["--total-timesteps", "--learning-starts"]),
    (["--num-envs", 0], ["--num-envs"]),
    (["--batch-size", 20000], ["--batch-size"]),
    (["--gamma", 1.5], ["--gamma"]),
    (["--tau", 0], ["--tau"]),
    (["--end-e", 1.2], ["--end-e must be in [0, 1], got 1.2"]),
    (["--start-e", 0.1, "--end-e", 0.5], ["--end-e must be in [0, 0.1], got 0.5"]),
    (["--exploration-fraction", 0], ["--exploration-fraction"]),
    (["--learning-starts", 600000], ["--learning-starts"]),
]


def error_lines(result, script):
    """The stderr lines of a refused run: a non-zero exit, no traceback, every line an error of the script."""
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines and all(line.startswith(f"{script}: error: ") for line in lines), result.stderr
    return lines


@pytest.mark.parametrize("flags,named", BAD_INPUT, ids=[" ".join(map(str, f)) for f, _ in BAD_INPUT])
def test_bad_input_gives_one_clear_line_per_problem_and_no_run_folder(workdir, flags, named):
    lines = error_lines(run_script("dqn.py", *flags, "--no-cuda", cwd=workdir), "dqn.py")
    assert len(lines) == len(named) and all(n in line for n, line in zip(named, lines)), lines
    assert not os.path.exists(os.path.join(workdir, "runs"))


def test_every_problem_is_reported_at_once_one_line_each(workdir):
    lines = error_lines(
        run_script(
            "dqn.py", "--env-id", "CartPol-v1", "--total-timesteps", 100, "--gamma", 2, "--no-cuda", cwd=workdir
        ),
        "dqn.py",
    )
    assert len(lines) == 3 and "--gamma" in lines[0] and "--learning-starts" in lines[1] and "CartPole" in lines[2]
    lines = error_lines(run_script("dqn.py", "--env-id", "tiny_envs:ContinuousImage-v0", cwd=workdir), "dqn.py")
    assert len(lines) == 2 and "Discrete" in lines[0] and "flat Box" in lines[1]
    assert not os.path.exists(os.path.join(workdir, "runs"))


def test_learns_cartpole_to_a_greedy_mean_of_at_least_200(workdir):
    result = run_script("dqn.py", *LEARNING_FLAGS, "--no-cuda", cwd=workdir)
    assert result.returncode == 0, result.stderr
    evals = [v for _, v in scalars(run_dirs(workdir)[0])["eval/episodic_return"]]
    assert len(evals) == 10 and np.mean(evals) >= 150, evals  # a random policy scores about 22


# The published defaults, but 100k steps with an update every 2 and a greedy end. The same seed learns differently on
# different CPUs (their float kernels differ): seeds 1 and 2 gave 500 +- 0 on one machine, 286 and 281 on an Intel
# Xeon with AVX-512 (2026-11-23), seed 1 gave 249 on another (issue 22), so the bar (150) sits 100 below all of them.
# It is a smoke test of learning; the rules are the rule tests' and the mutation check's.
LEARNING_FLAGS = ["--total-timesteps", 100000, "--train-frequency", 2, "--end-e", 0, "--seed", 1]


# ---- DQN's rules on the script's own loop, seen through its updates (CartPole: a fallen pole is terminal) ----------


def spied_run(monkeypatch, workdir, *flags):
    return conftest.spied_run(monkeypatch, workdir, "dqn.py", "--env-id", "CartPole-v1", *flags)


def test_td_target_is_the_reward_at_a_terminal_and_bootstraps_from_the_targets_max_otherwise(monkeypatch, workdir):
    # the target network is never updated here: it stays the initial network, so each target can be recomputed
    g, updates = spied_run(
        monkeypatch,
        workdir,
        "--total-timesteps",
        2000,
        "--learning-starts",
        1000,
        "--gamma",
        0.9,
        "--buffer-size",
        2000,
        "--target-network-frequency",
        10**6,
        "--train-frequency",
        4,
    )
    assert len(updates) == 250, "one update every 4 steps after learning-starts"
    assert conftest.terminal_samples_checked(updates, g["target_network"], 0.9) >= 50, "a fallen pole is terminal"


def test_the_loss_takes_q_of_the_action_taken_and_the_stored_action_is_the_action_taken(monkeypatch, workdir):
    g, updates = spied_run(
        monkeypatch,
        workdir,
        "--total-timesteps",
        1000,
        "--learning-starts",
        990,
        "--buffer-size",
        1000,
        "--target-network-frequency",
        10**6,
        "--end-e",
        1,
    )
    data, _, old_val = updates[0]  # the first update: the online network is still the initial one, the target's twin
    with torch.no_grad():
        q = g["target_network"](data.observations)
    assert len(data.actions.unique()) > 1 and torch.equal(old_val, q.gather(1, data.actions).squeeze(1))
    # CartPole's velocity moves by a fixed step toward the pushed side: the stored action is the one that moved it
    rb = g["rb"]
    obs, next_obs, actions = rb.observations[:990, 0], rb.next_observations[:990, 0], rb.actions[:990, 0, 0]
    moved = ~rb.dones[:990, 0].astype(bool)
    assert ((next_obs[moved, 1] > obs[moved, 1]) == (actions[moved] == 1)).all()


def test_the_target_network_is_the_online_one_after_a_hard_update(monkeypatch, workdir):
    g, updates = spied_run(
        monkeypatch,
        workdir,
        "--total-timesteps",
        1500,
        "--learning-starts",
        1000,
        "--buffer-size",
        1500,
        "--target-network-frequency",
        500,
    )
    online, target = g["q_network"].state_dict(), g["target_network"].state_dict()
    assert len(updates) == 50 and all(torch.equal(online[k], target[k]) for k in online), "copied at step 1500"


def test_epsilon_zero_acts_greedily_and_epsilon_one_at_random(monkeypatch, workdir):
    for e in (0, 1):
        g, _ = spied_run(
            monkeypatch,
            os.path.join(workdir, str(e)),
            "--total-timesteps",
            400,
            "--learning-starts",
            399,
            "--buffer-size",
            400,
            "--start-e",
            e,
            "--end-e",
            e,
            "--target-network-frequency",
            10**6,
        )
        obs, actions = g["rb"].observations[:400, 0], g["rb"].actions[:400, 0, 0]
        with torch.no_grad():  # the target network is the network that acted (the one update came after)
            greedy = g["target_network"](torch.as_tensor(obs)).argmax(dim=1).numpy()
        agree = (greedy == actions).mean()
        assert agree == 1.0 if e == 0 else agree < 0.7, (e, agree)


def test_the_published_defaults_are_pinned():
    """CleanRL's dqn.py hyperparameters: a changed default is a deliberate, visible change."""
    import dqn

    assert {k: v for k, v in vars(dqn.Args()).items() if k not in ("exp_name",)} == dict(
        seed=1,
        torch_deterministic=True,
        cuda=True,
        torch_threads=1,
        capture_video=False,
        save_model=False,
        track=False,
        wandb_project_name="cleanRL",
        wandb_entity=None,
        upload_model=False,
        hf_entity="",
        env_id="CartPole-v1",
        total_timesteps=500000,
        learning_rate=2.5e-4,
        num_envs=1,
        buffer_size=10000,
        gamma=0.99,
        tau=1.0,
        target_network_frequency=500,
        batch_size=128,
        start_e=1,
        end_e=0.05,
        exploration_fraction=0.5,
        learning_starts=10000,
        train_frequency=10,
        eval_episodes=10,
        checkpoint_frequency=0,
        resume=None,
        eval_checkpoint=None,
    )


def test_a_soft_update_moves_the_target_by_tau_once_per_period(monkeypatch, workdir):
    # one target update, at step 1500: target = tau * online + (1 - tau) * initial
    g, updates = spied_run(
        monkeypatch,
        workdir,
        "--total-timesteps",
        1500,
        "--learning-starts",
        1000,
        "--tau",
        0.25,
        "--buffer-size",
        1500,
        "--target-network-frequency",
        1500,
    )
    torch.manual_seed(1)  # the run's seed: its first torch draws are its Q-network's initial weights
    initial = dqn.QNetwork(4, 2).state_dict()
    online, target = g["q_network"].state_dict(), g["target_network"].state_dict()
    assert len(updates) == 50
    for k in online:
        assert torch.allclose(target[k], 0.25 * online[k] + 0.75 * initial[k], atol=1e-6), k


def greedy_agreement(g, num_envs, steps):
    """Per step and env: did the stored action equal the acting network's greedy one (the target network, never
    updated, is that network: the one update comes after the last action)?"""
    rb = g["rb"]
    obs, actions = rb.observations[: steps // num_envs], rb.actions[: steps // num_envs, :, 0]
    with torch.no_grad():
        greedy = g["target_network"](torch.as_tensor(obs.reshape(-1, 4))).argmax(dim=1).numpy()
    return greedy.reshape(actions.shape) == actions


def test_each_env_draws_its_own_exploration_coin(monkeypatch, workdir):
    g, _ = spied_run(
        monkeypatch,
        workdir,
        "--num-envs",
        4,
        "--total-timesteps",
        2000,
        "--learning-starts",
        1996,
        "--buffer-size",
        2000,
        "--start-e",
        0.5,
        "--end-e",
        0.5,
        "--target-network-frequency",
        10**6,
    )
    agree = greedy_agreement(g, 4, 2000)
    # one coin per env: each env agrees with the greedy action w.p. 0.75, all four w.p. 0.32; one coin for all: 0.53
    assert abs(agree.mean() - 0.75) < 0.05 and agree.all(axis=1).mean() < 0.42, (agree.mean(), agree.all(axis=1).mean())


def test_the_epsilon_that_acts_is_the_epsilon_logged(monkeypatch, workdir):
    g, _ = spied_run(
        monkeypatch,
        workdir,
        "--total-timesteps",
        3000,
        "--learning-starts",
        2999,
        "--buffer-size",
        3000,
        "--start-e",
        1,
        "--end-e",
        0,
        "--exploration-fraction",
        1,
        "--target-network-frequency",
        10**6,
    )
    disagree = ~greedy_agreement(g, 1, 3000)[:, 0]  # a random action is not the greedy one half of the time
    logged = dict(scalars(run_dirs(workdir)[0])["charts/epsilon"])
    for lo in range(0, 3000, 1000):
        epsilon = np.mean([e for s, e in logged.items() if lo < s <= lo + 1000])
        assert abs(disagree[lo : lo + 1000].mean() - epsilon / 2) < 0.06, (lo, epsilon, disagree[lo : lo + 1000].mean())
