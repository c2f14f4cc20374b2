"""dqn_atari.py: DeepMind preprocessing, the real game score, and the one-frame-per-step replay memory."""

import glob
import os
import runpy
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.atari_wrappers import AtariWrapper
from stable_baselines3.common.buffers import ReplayBuffer

import conftest
import dqn_atari
from conftest import ROOT, run_dirs, run_script, scalars

# Breakout with games cut at 1000 emulator frames (250 steps): truncations come often
gym.register(
    "ShortBreakoutNoFrameskip-v4",
    entry_point="ale_py.env:AtariEnv",
    kwargs={**gym.spec("BreakoutNoFrameskip-v4").kwargs, "max_num_frames_per_episode": 1000},
)


def vector_env(env_id, num_envs, make_env=None):
    """The script's training envs: its make_env in a SAME_STEP SyncVectorEnv, env i seeded with i."""
    make_env = make_env or dqn_atari.make_env
    return gym.vector.SyncVectorEnv(
        [make_env(env_id, i) for i in range(num_envs)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )


def sb3_stack(env_id, seed):
    """The reference: SB3's Atari wrappers with gymnasium's frame stack (reset padding) and game statistics."""

    def thunk():
        env = gym.wrappers.RecordEpisodeStatistics(gym.make(env_id))
        env = gym.wrappers.FrameStackObservation(AtariWrapper(env), 4, padding_type="reset")
        env.action_space.seed(seed)
        return env

    return thunk


def random_stream(env_id, num_envs, steps, seed=0, make_env=None):
    """(obs, real_next_obs, actions, rewards, terminations, truncations, game_over) per step of random play."""
    envs, rng = vector_env(env_id, num_envs, make_env), np.random.default_rng(seed)
    obs, _ = envs.reset(seed=seed)
    for _ in range(steps):
        actions = rng.integers(envs.single_action_space.n, size=num_envs)
        next_obs, rewards, terminations, truncations, info = envs.step(actions)
        real_next_obs, game_over = next_obs.copy(), np.zeros(num_envs, bool)
        if "final_obs" in info:
            for i in np.flatnonzero(info["_final_obs"]):
                real_next_obs[i] = info["final_obs"][i].reshape(obs.shape[1:])
            game_over = info["final_info"].get("_episode", game_over)
        yield obs, real_next_obs, actions, rewards, terminations, truncations, game_over
        obs = next_obs
    envs.close()


# ---- the protocol: what the agent observes, is credited with and stores is SB3's wrapper stack's -----------------

GAMES = ["BreakoutNoFrameskip-v4", "PongNoFrameskip-v4", "SpaceInvadersNoFrameskip-v4"]


@pytest.mark.parametrize("num_envs", [1, 3])
@pytest.mark.parametrize("env_id", GAMES + ["ShortBreakoutNoFrameskip-v4"])
def test_every_step_equals_sb3s_atari_wrappers_with_a_reset_padded_frame_stack(env_id, num_envs):
    """Observations at every decision (to the pixel: both grey with OpenCV, then resize), clipped rewards, terminal
    and truncation flags, and the true last observations of the lives and games that end."""
    ours = random_stream(env_id, num_envs, 1500)
    reference = random_stream(env_id, num_envs, 1500, make_env=sb3_stack)
    seen = np.zeros(3, int)
    for step, (a, b) in enumerate(zip(ours, reference)):
        for name, x, y in zip(
            ["obs", "next_obs", "actions", "rewards", "terminations", "truncations", "game_over"], a, b
        ):
            assert np.array_equal(x, y.reshape(x.shape)), (name, step)
        seen += a[4].sum(), a[5].sum(), a[6].sum()
    lost_lives, truncations, games = seen
    assert games >= num_envs and (truncations > 0) == env_id.startswith("Short"), seen
    assert lost_lives > games or env_id.startswith("Pong"), "several lives end before their game does"


@pytest.mark.parametrize(
    "env_id,num_envs",
    [
        ("BreakoutNoFrameskip-v4", 1),
        ("SpaceInvadersNoFrameskip-v4", 3),
        ("PongNoFrameskip-v4", 3),
        ("ShortBreakoutNoFrameskip-v4", 2),
    ],
)
def test_the_script_stores_and_logs_what_sb3s_stack_gives_for_its_actions(monkeypatch, workdir, env_id, num_envs):
    """The script's loop, fed by its own random actions: every transition read back from its replay memory, and every
    logged game (its unclipped score and emulator frames), equal what SB3's stack gives for the same actions."""
    steps = 1200 * num_envs
    g = run_in_process(
        monkeypatch,
        workdir,
        "--env-id",
        env_id,
        "--num-envs",
        num_envs,
        "--total-timesteps",
        steps,
        "--learning-starts",
        steps - num_envs,
        "--buffer-size",
        steps,
        "--start-e",
        1,
        "--end-e",
        1,
        "--eval-episodes",
        0,
        "--seed",
        0,
        "--no-cuda",
    )
    rb = g["rb"]
    envs = vector_env(env_id, num_envs, sb3_stack)
    obs, _ = envs.reset(seed=0)
    games = []
    for t in range(steps // num_envs):
        actions = rb.actions[t, :, 0]
        next_obs, rewards, terminations, _, info = envs.step(actions)
        real_next_obs = next_obs.copy()
        if "final_obs" in info:
            for i in np.flatnonzero(info["_final_obs"]):
                real_next_obs[i] = info["final_obs"][i]
            for i in np.flatnonzero(info["final_info"].get("_episode", ())):
                games.append((info["final_info"]["episode"]["r"][i], info["final_info"]["episode"]["l"][i]))
        for env in range(num_envs):
            monkeypatch.setattr(np.random, "randint", lambda *a, size, **k: np.full(size, env))
            data = rb._get_samples(np.array([t]))
            assert np.array_equal(data.observations[0].numpy(), obs[env, ..., 0]), t
            assert np.array_equal(data.next_observations[0].numpy(), real_next_obs[env, ..., 0]), t
            assert data.rewards[0, 0] == rewards[env] and data.dones[0, 0] == terminations[env], t
        obs = next_obs
    tags = scalars(run_dirs(workdir)[0])
    logged = [(r, l) for (_, r), (_, l) in zip(tags["charts/episodic_return"], tags["charts/episodic_length"])]
    assert len(games) >= num_envs and logged == games, "each game's whole unclipped score and its emulator frames"


def test_evaluation_plays_whole_games_of_the_protocol_and_scores_them_unclipped():
    from types import SimpleNamespace

    args = SimpleNamespace(
        env_id="SpaceInvadersNoFrameskip-v4", seed=1, end_e=1.0, eval_episodes=2, capture_video=False
    )
    rng = np.random.default_rng(3)
    scores = dqn_atari.evaluate(None, args, "eval", "cpu", rng)
    env = sb3_stack(args.env_id, 0)()  # the same actions, drawn again, in the reference stack
    rng, (obs, _), games = np.random.default_rng(3), env.reset(seed=args.seed + 10_000), []
    while len(games) < 2:
        rng.random()
        obs, _, terminated, truncated, info = env.step(rng.integers(env.action_space.n))
        if "episode" in info:
            games.append(info["episode"]["r"])
        if terminated or truncated:
            env.reset()
    assert scores == games and max(scores) > 50, "whole games of 3 lives, 5 to 30 points per alien"


@pytest.mark.parametrize("env_id", ["BreakoutNoFrameskip-v4", "ALE/Breakout-v5"])
def test_observations_are_4_stacked_84x84_uint8_frames_4_emulator_frames_per_step(env_id):
    envs = vector_env(env_id, 2)
    obs, _ = envs.reset(seed=1)
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    assert (obs == obs[:, -1:]).all() and obs.any(), "a game starts with 4 copies of its first frame"
    frames = [e.unwrapped.ale.getEpisodeFrameNumber() for e in envs.envs]
    next_obs, *_ = envs.step(np.zeros(2, dtype=np.int64))
    assert [e.unwrapped.ale.getEpisodeFrameNumber() - f for e, f in zip(envs.envs, frames)] == [4, 4]
    assert (next_obs[:, :3] == obs[:, 1:]).all(), "the stack shifts by one frame per step"
    envs.close()


def test_a_lost_life_ends_the_training_episode_and_the_next_life_starts_a_fresh_stack():
    lost_lives = games = 0
    ended = np.zeros(2, bool)
    for obs, _, _, rewards, terminations, truncations, game_over in random_stream("BreakoutNoFrameskip-v4", 2, 600):
        assert (obs[ended] == obs[ended, -1:]).all(), "a new life or game: 4 copies of its first frame"
        ended = terminations | truncations
        lost_lives += (terminations & ~game_over).sum()
        games += game_over.sum()
        assert set(np.unique(rewards)) <= {-1, 0, 1}, "training rewards are clipped to their sign"
    assert lost_lives >= 3 * games > 0


# ---- the replay memory --------------------------------------------------------------------------


def same(a, b):
    """The two ReplayBufferSamples hold bit-identical tensors (fields SB3 leaves as None are None in both)."""
    return all((x is None and y is None) or torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("num_envs", [1, 3])
def test_frame_buffer_gives_bit_identical_samples_to_sb3_plain_buffer(num_envs):
    envs = vector_env("ShortBreakoutNoFrameskip-v4", num_envs)
    spaces = envs.single_observation_space, envs.single_action_space
    envs.close()
    buffers = [  # the stream below wraps around the ring several times; the smallest holds one transition per env
        (
            ReplayBuffer(capacity, *spaces, "cpu", n_envs=num_envs, handle_timeout_termination=False),
            dqn_atari.FrameReplayBuffer(capacity, *spaces, "cpu", n_envs=num_envs),
        )
        for capacity in (240 * num_envs, num_envs)
    ]
    seen = {"life lost": 0, "truncated": 0, "game over": 0}
    for step, (obs, next_obs, actions, rewards, terms, truncs, over) in enumerate(
        random_stream("ShortBreakoutNoFrameskip-v4", num_envs, 1500)
    ):
        for plain, frame in buffers:
            plain.add(obs, next_obs, actions, rewards, terms, {})
            frame.add(obs, next_obs, actions, rewards, terms, {"_final_obs": terms | truncs})  # as the vector env says
        seen["life lost"] += (terms & ~over).sum()
        seen["truncated"] += truncs.sum()
        seen["game over"] += (terms & over).sum()
        if step % 97 == 0 or step > 1490:  # every stored index, for every env
            for plain, frame in buffers:
                for env in range(num_envs):
                    np.random.seed(step)
                    inds = np.arange(plain.buffer_size if plain.full else plain.pos)
                    a = plain._get_samples(inds)
                    np.random.seed(step)
                    b = frame._get_samples(inds)
                    assert same(a, b), step
                # the last frames of ended episodes are kept only while their transition is stored
                kept = [n for n, _ in frame.last_frames]
                assert min(kept, default=np.inf) >= frame.added - frame.buffer_size, (step, kept)
    assert all(seen.values()), seen
    for plain, frame in buffers:
        np.random.seed(5)
        a = plain.sample(32)
        np.random.seed(5)
        b = frame.sample(32)
        assert same(a, b)
        for name in ("buffer_size", "n_envs", "obs_shape", "action_dim", "pos", "full"):  # what SB3's code reads
            assert getattr(frame, name) == getattr(plain, name), name


def test_after_a_resume_each_env_starts_a_fresh_stack_and_the_saved_transitions_keep_their_frames(monkeypatch, workdir):
    flags = ["--num-envs", 2, "--buffer-size", 800, "--learning-starts", 399, "--eval-episodes", 0, "--no-cuda"]
    first = run_in_process(monkeypatch, workdir, *flags, "--total-timesteps", 400, "--checkpoint-frequency", 400)
    resumed = run_in_process(monkeypatch, workdir, "--resume", run_dirs(workdir)[0], "--total-timesteps", 600)
    saved_rb, rb = first["rb"], resumed["rb"]
    assert (saved_rb.added, rb.added) == (200, 300)
    for env in range(2):
        monkeypatch.setattr(np.random, "randint", lambda *a, size, **k: np.full(size, env))
        before, after = saved_rb._get_samples(np.array([199])), rb._get_samples(np.array([199, 200]))
        # the last saved transition keeps its next observation, though the env was reset for the resumed run
        assert same(before, rb._get_samples(np.array([199]))), env
        fresh = after.observations[1]  # the reset's observation: its first frame 4 times
        assert all(torch.equal(fresh[i], fresh[3]) for i in range(3)), env
        assert not torch.equal(fresh[3], after.next_observations[0, 3]), "the reset is a new game's first frame"


def test_frame_buffer_stores_one_frame_per_transition():
    envs = vector_env("BreakoutNoFrameskip-v4", 1)
    rb = dqn_atari.FrameReplayBuffer(100_000, envs.single_observation_space, envs.single_action_space)
    envs.close()
    arrays = [v for v in vars(rb).values() if isinstance(v, np.ndarray)]
    per_transition = sum(a.nbytes for a in arrays) / 100_000
    assert per_transition <= 84 * 84 + 24 + 1, per_transition  # a frame, its episode's first, action, reward, done


def run_in_process(monkeypatch, workdir, *flags):
    """Runs dqn_atari.py in this process and returns its globals (the replay buffer is `rb`)."""
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(sys, "argv", ["dqn_atari.py", *map(str, flags)])
    return runpy.run_path(os.path.join(ROOT, "dqn_atari.py"), run_name="__main__")


# ---- the whole script ---------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ["BreakoutNoFrameskip-v4"])
def test_short_run_logs_cleanrl_tags_and_the_exploration_schedule(workdir, env_id):
    result = run_script(
        "dqn_atari.py",
        "--env-id",
        env_id,
        "--total-timesteps",
        1200,
        "--learning-starts",
        1000,
        "--buffer-size",
        2000,
        "--num-envs",
        2,
        "--end-e",
        0.5,
        "--exploration-fraction",
        0.5,
        "--train-frequency",
        3,
        "--eval-episodes",
        0,
        "--no-cuda",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    tags = scalars(run_dirs(workdir)[0])
    # CleanRL's cadence: the charts every 100 steps; the losses every 100 steps of learning, at a step with an update
    # (2 envs: steps 2, 4, ...; an update when a multiple of 3 is crossed: at step 1200, not at 1100)
    steps = {tag: [step for step, _ in tags[tag]] for tag in ("charts/epsilon", "charts/SPS", "losses/td_loss")}
    assert steps["charts/epsilon"] == steps["charts/SPS"] == list(range(100, 1201, 100)), steps
    assert steps["losses/td_loss"] == [step for step, _ in tags["losses/q_values"]] == [1200], steps
    # epsilon falls linearly from --start-e to --end-e over 0.5 * 1200 steps, then stays (logged after the step of
    # 2 envs that acted with it)
    for step, epsilon in tags["charts/epsilon"]:
        assert epsilon == pytest.approx(max(1.0 - 0.5 * (step - 2) / 600, 0.5), abs=1e-6), step
    if env_id.startswith("Breakout"):  # Pong's first game lasts longer than this run
        assert len(tags["charts/episodic_return"]) >= 2


def test_cuda_flag_without_cuda_runs_on_cpu(workdir):
    flags = ["--cuda", "--total-timesteps", 300, "--learning-starts", 200, "--buffer-size", 1000, "--eval-episodes", 0]
    result = run_script("dqn_atari.py", *flags, cwd=workdir)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    if not torch.cuda.is_available():
        assert "dqn_atari.py: note: --cuda: this machine has no CUDA device; running on the CPU" in result.stdout


def test_capture_video_records_training_game_0_and_the_evaluation_and_changes_nothing_the_agent_sees(workdir):
    import imageio.v3 as iio

    flags = ["--total-timesteps", 600, "--learning-starts", 200, "--buffer-size", 1000, "--eval-episodes", 1]
    flags += ["--end-e", 1.0, "--no-cuda"]
    result = run_script("dqn_atari.py", *flags, "--capture-video", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "eval:" in result.stdout
    [run_dir] = run_dirs(workdir)
    run = os.path.basename(run_dir)
    training = sorted(
        glob.glob(os.path.join(workdir, "videos", run, "*.mp4"))
    )  # env 0's games 0, 1, 8, ... (CleanRL's)
    evaluation = glob.glob(os.path.join(workdir, "videos", f"{run}-eval", "*.mp4"))
    assert 1 <= len(training) <= 3 and len(evaluation) == 1, (training, evaluation)
    for video in (training[0], evaluation[0]):
        frames = iio.imread(video)
        assert frames.ndim == 4 and frames.shape[-1] == 3 and len(frames) > 50, video
    plain = os.path.join(workdir, "plain")
    os.makedirs(plain)
    assert run_script("dqn_atari.py", *flags, cwd=plain).returncode == 0
    recorded, not_recorded = scalars(run_dir), scalars(run_dirs(plain)[0])
    for tag in ("charts/episodic_return", "losses/td_loss", "eval/episodic_return"):
        assert recorded[tag] == not_recorded[tag], f"{tag}: recording changed what the agent saw or learned"


BAD_INPUT = [
    (["--env-id", "CartPole-v1"], ["dqn.py"]),
    (["--env-id", "BreakoutNoFrameskip-v3"], ["BreakoutNoFrameskip-v4"]),
    (["--buffer-size", 10**10], ["--buffer-size needs"]),
    (["--learning-starts", 10**8], ["--learning-starts"]),
    (["--tau", 2], ["--tau"]),
    (["--env-id", "PongNoFrameskip-v4", "--tau", 2, "--buffer-size", 10**10], ["--tau", "--buffer-size needs"]),
    (["--env-id", "Breakout-v3", "--tau", 2], ["--tau", "Breakout-v4"]),  # (an unknown env: its memory is unknown)
]


@pytest.mark.parametrize("flags,named", BAD_INPUT, ids=[" ".join(map(str, f)) for f, _ in BAD_INPUT])
def test_bad_input_gives_one_line_per_problem_and_no_run_folder(workdir, flags, named):
    result = run_script("dqn_atari.py", *flags, "--no-cuda", cwd=workdir)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert all(line.startswith("dqn_atari.py: error: ") for line in lines), result.stderr
    assert len(lines) == len(named) and all(n in result.stderr for n in named), lines
    assert not os.path.exists(os.path.join(workdir, "runs"))


def test_every_atari_id_plays_4_frames_per_step_whatever_its_registered_frame_skip(capsys):
    """An id registered with another frame skip gets make_env's, and one note line says so."""
    for env_id in ["Breakout-v0", "Breakout-v4", "ALE/Breakout-v5", "ShortBreakoutNoFrameskip-v4"]:
        assert dqn_atari.check_args(dqn_atari.Args(env_id=env_id, buffer_size=1000)) == []
        notes = capsys.readouterr().out.splitlines()
        if "NoFrameskip" in env_id:
            assert notes == []
        else:
            assert notes == [
                f"dqn_atari.py: note: {env_id}'s frame skip {gym.spec(env_id).kwargs['frameskip']} "
                "is replaced by make_env's"
            ], notes
        env = dqn_atari.make_env(env_id, 0)()
        env.reset(seed=0)
        frames = env.unwrapped.ale.getEpisodeFrameNumber()
        env.step(0)
        assert env.unwrapped.ale.getEpisodeFrameNumber() - frames == 4, env_id
        env.close()


def test_training_with_the_frame_buffer_matches_training_with_sb3_plain_buffer(workdir):
    """The same seed gives the same losses and returns whichever buffer stores the transitions."""
    source = open(os.path.join(ROOT, "dqn_atari.py")).read()
    spaces = "probe.observation_space, probe.action_space"
    line = f"rb = FrameReplayBuffer(args.buffer_size, {spaces}, device, args.num_envs)"
    plain = line.replace("FrameReplayBuffer(", "ReplayBuffer(").replace(
        "args.num_envs)", "args.num_envs, handle_timeout_termination=False)"
    )
    assert source.count(line) == 1
    os.makedirs(os.path.join(workdir, "plain"))
    with open(os.path.join(workdir, "plain", "dqn_atari.py"), "w") as f:
        f.write(source.replace(line, plain))
    flags = [
        "--env-id",
        "BreakoutNoFrameskip-v4",
        "--total-timesteps",
        1200,
        "--learning-starts",
        600,
        "--buffer-size",
        1000,
        "--exploration-fraction",
        0.5,
        "--torch-threads",
        1,
        "--eval-episodes",
        0,
        "--no-cuda",
    ]
    curves = []
    for script in (os.path.join(ROOT, "dqn_atari.py"), os.path.join(workdir, "plain", "dqn_atari.py")):
        cwd = os.path.dirname(script) if "plain" in script else workdir
        result = run_script(script, *flags, cwd=cwd)
        assert result.returncode == 0, result.stderr
        tags = scalars(run_dirs(cwd)[0])
        curves.append((tags["losses/td_loss"], tags["charts/episodic_return"]))
    assert len(curves[0][0]) >= 5 and len(curves[0][1]) >= 3
    assert curves[0] == curves[1]


def test_memory_preflight_names_the_largest_buffer_that_fits(monkeypatch):
    from types import SimpleNamespace

    row = 84 * 84 + 24  # bytes per transition
    monkeypatch.setattr(dqn_atari.psutil, "virtual_memory", lambda: SimpleNamespace(available=8 * 2**30))
    [problem] = dqn_atari.check_args(dqn_atari.Args(buffer_size=10**7))
    assert "GiB" in problem
    fits = int(problem.rsplit(" ", 1)[1].replace(",", ""))
    assert fits * row <= 7 * 2**30 < (fits + 1) * row, "1 GiB is kept for the rest of the process"
    assert dqn_atari.check_args(dqn_atari.Args(buffer_size=fits)) == []
    # a 16 GiB machine with about 14 GiB available holds the default 1M-step buffer
    monkeypatch.setattr(dqn_atari.psutil, "virtual_memory", lambda: SimpleNamespace(available=14 * 2**30))
    assert dqn_atari.check_args(dqn_atari.Args()) == []


# ---- DQN's rules, on the script's own loop (Breakout's lost lives are its terminal transitions) ---------------------


def spied_run(monkeypatch, workdir, *flags):
    return conftest.spied_run(monkeypatch, workdir, "dqn_atari.py", *flags)


def test_td_target_is_the_reward_at_a_terminal_and_bootstraps_from_the_targets_max_otherwise(monkeypatch, workdir):
    # the target network is never updated here: it stays the initial network, so each target can be recomputed
    g, updates = spied_run(
        monkeypatch,
        workdir,
        "--total-timesteps",
        600,
        "--learning-starts",
        400,
        "--buffer-size",
        600,
        "--target-network-frequency",
        10**6,
        "--gamma",
        0.9,
    )
    assert len(updates) == 50, "one update every 4 steps after learning-starts"
    assert conftest.terminal_samples_checked(updates, g["target_network"], 0.9) >= 10, "a lost life is terminal"


def test_the_loss_takes_q_of_the_action_taken(monkeypatch, workdir):
    g, updates = spied_run(
        monkeypatch,
        workdir,
        "--total-timesteps",
        400,
        "--learning-starts",
        396,
        "--end-e",
        1,
        "--buffer-size",
        400,
        "--target-network-frequency",
        10**6,
    )
    [(data, _, old_val)] = updates  # the first update: the online network is still the initial one, the target's twin
    with torch.no_grad():
        q = g["target_network"](data.observations)
    assert len(data.actions.unique()) > 1 and torch.equal(old_val, q.gather(1, data.actions).squeeze(1))


def test_the_target_network_is_the_online_one_after_a_hard_update(monkeypatch, workdir):
    g, updates = spied_run(
        monkeypatch,
        workdir,
        "--total-timesteps",
        600,
        "--learning-starts",
        400,
        "--buffer-size",
        600,
        "--target-network-frequency",
        100,
    )
    online, target = g["q_network"].state_dict(), g["target_network"].state_dict()
    assert len(updates) == 50 and all(torch.equal(online[k], target[k]) for k in online), "copied at step 600"


def test_a_soft_update_moves_the_target_by_tau_once_per_period(monkeypatch, workdir):
    # one target update, at step 600: target = tau * online + (1 - tau) * initial
    g, updates = spied_run(
        monkeypatch,
        workdir,
        "--total-timesteps",
        600,
        "--learning-starts",
        400,
        "--tau",
        0.25,
        "--buffer-size",
        600,
        "--target-network-frequency",
        600,
    )
    torch.manual_seed(1)  # the run's seed: its first torch draws are its Q-network's initial weights
    initial = dqn_atari.QNetwork(4).state_dict()
    online, target = g["q_network"].state_dict(), g["target_network"].state_dict()
    assert len(updates) == 50
    for k in online:
        assert torch.allclose(target[k], 0.25 * online[k] + 0.75 * initial[k], atol=1e-6), k


def test_epsilon_zero_acts_greedily_and_epsilon_one_at_random(monkeypatch, workdir):
    for e in (0, 1):
        os.makedirs(os.path.join(workdir, str(e)))
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
        rb = g["rb"]
        np.random.seed(0)
        data = rb._get_samples(np.arange(400))
        with torch.no_grad():  # the target network is the network that acted (the one update came after)
            greedy = g["target_network"](data.observations).argmax(dim=1)
        agree = (greedy == data.actions.flatten()).float().mean().item()
        assert agree == 1.0 if e == 0 else agree < 0.5, (e, agree)


def test_q_network_is_the_nature_cnn_on_frames_scaled_to_0_1():
    net = dqn_atari.QNetwork(6)
    keys = ("in_channels", "out_channels", "kernel_size", "stride", "in_features", "out_features")
    layers = [(type(m).__name__, *(getattr(m, k) for k in keys if hasattr(m, k))) for m in net.network]
    assert layers == [
        ("Conv2d", 4, 32, (8, 8), (4, 4)),
        ("ReLU",),
        ("Conv2d", 32, 64, (4, 4), (2, 2)),
        ("ReLU",),
        ("Conv2d", 64, 64, (3, 3), (1, 1)),
        ("ReLU",),
        ("Flatten",),
        ("Linear", 3136, 512),
        ("ReLU",),
        ("Linear", 512, 6),
    ]
    frames = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.equal(net(frames), net.network(frames / 255.0))


def test_evaluation_is_greedy_at_epsilon_zero_and_plays_its_own_env_from_a_seeded_reset(monkeypatch, workdir):
    from types import SimpleNamespace

    net = dqn_atari.QNetwork(4)
    with torch.no_grad():  # Q-values that prefer action 3 (LEFT) everywhere
        net.network[-1].weight.zero_()
        net.network[-1].bias.copy_(torch.tensor([0.0, 0.0, 0.0, 1.0]))
    actions, calls, made, make_env = [], [], [], dqn_atari.make_env

    def recorded(*a, **k):
        made.append((a, k))

        def thunk():
            env = make_env(*a, **k)()
            step, reset, close = env.step, env.reset, env.close

            def stepped(action):
                actions.append(int(action))
                result = step(action)
                calls.append("end" if result[2] or result[3] else "step")
                return result

            env.step = stepped
            env.reset = lambda **kw: calls.append(f"reset{kw}") or reset(**kw)
            env.close = lambda: calls.append("close") or close()
            return env

        return thunk

    monkeypatch.setattr(dqn_atari, "make_env", recorded)
    monkeypatch.chdir(workdir)
    args = SimpleNamespace(env_id="BreakoutNoFrameskip-v4", seed=1, end_e=0.0, eval_episodes=1, capture_video=False)
    assert len(dqn_atari.evaluate(net, args, "eval", "cpu", np.random.default_rng(0))) == 1
    assert len(actions) > 100 and set(actions) == {3}, (
        "every action the greedy agent chose (FIRE after a lost life is the wrappers')"
    )
    [(made_with, _)] = made
    assert made_with[0] == "BreakoutNoFrameskip-v4" and made_with[2] is False, "its own env, no video"
    assert calls[0].startswith("reset{'seed': ") and calls.count("close") == 1, "from a seeded reset, then closed"
    assert calls[-2:] == ["end", "close"], "no reset after the last game: a reset would start a video"
    assert not os.path.exists("videos"), "no video without --capture-video"


def test_the_published_defaults_are_pinned():
    """CleanRL's dqn_atari.py hyperparameters: a changed default is a deliberate, visible change."""
    assert {k: v for k, v in vars(dqn_atari.Args()).items() if k not in ("exp_name",)} == dict(
        seed=1,
        torch_deterministic=True,
        cuda=True,
        torch_threads=0,
        capture_video=False,
        save_model=False,
        track=False,
        wandb_project_name="cleanRL",
        wandb_entity=None,
        upload_model=False,
        hf_entity="",
        env_id="BreakoutNoFrameskip-v4",
        total_timesteps=10000000,
        learning_rate=1e-4,
        num_envs=1,
        buffer_size=1000000,
        gamma=0.99,
        tau=1.0,
        target_network_frequency=1000,
        batch_size=32,
        start_e=1,
        end_e=0.01,
        exploration_fraction=0.1,
        learning_starts=80000,
        train_frequency=4,
        eval_episodes=10,
        checkpoint_frequency=100000,  # not CleanRL's (it has none): checkpoints that write only what is new
        resume=None,
        eval_checkpoint=None,
    )
