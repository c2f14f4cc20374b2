"""dqn_atari.py: DeepMind preprocessing, the real game score, and the one-frame-per-step replay memory."""
import os
import runpy
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import ROOT, run_dirs, run_script, scalars
from stable_baselines3.common.buffers import ReplayBuffer

import dqn_atari

# Breakout with games cut at 1000 emulator frames (250 steps): truncations come often
gym.register("ShortBreakoutNoFrameskip-v4", entry_point="ale_py.env:AtariEnv",
             kwargs={**gym.spec("BreakoutNoFrameskip-v4").kwargs, "max_num_frames_per_episode": 1000})


def random_stream(env_id, num_envs, steps, seed=0):
    """(obs, real_next_obs, actions, clipped rewards, terminations, game_over) per step, as dqn_atari.py makes them."""
    envs, rng = dqn_atari.make_env(env_id, num_envs), np.random.default_rng(seed)
    obs, info = envs.reset(seed=seed)
    lives, frames = info["lives"], info["episode_frame_number"]
    for _ in range(steps):
        actions = rng.integers(envs.single_action_space.n, size=num_envs)
        next_obs, rewards, terminations, truncations, info = envs.step(actions)
        lost_life = (info["lives"] < lives) & (info["episode_frame_number"] > frames)
        game_over = truncations | (terminations & ~lost_life)
        real_next_obs = next_obs.copy()
        if game_over.any():
            real_next_obs[game_over] = info["final_obs"][game_over]
        yield obs, real_next_obs, actions, np.sign(rewards), terminations, truncations, game_over
        obs, lives, frames = next_obs, info["lives"], info["episode_frame_number"]
    envs.close()


# ---- preprocessing ------------------------------------------------------------------------------

@pytest.mark.parametrize("env_id", ["BreakoutNoFrameskip-v4", "ALE/Breakout-v5"])
def test_observations_are_4_stacked_84x84_uint8_frames_4_emulator_frames_per_step(env_id):
    envs = dqn_atari.make_env(env_id, 2)
    obs, info = envs.reset(seed=1)
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    assert not obs[:, :3].any() and obs[:, 3].any(), "a game starts with zeros behind its first frame"
    frames = info["frame_number"].copy()
    next_obs, *_ , info = envs.step(np.zeros(2, dtype=np.int64))
    assert (info["frame_number"] - frames == 4).all()
    assert (next_obs[:, :3] == obs[:, 1:]).all(), "the stack shifts by one frame per step"
    envs.close()


def test_lost_life_ends_the_training_episode_but_not_the_game():
    lost_lives = games = 0
    for obs, next_obs, _, rewards, terminations, _, game_over in random_stream("BreakoutNoFrameskip-v4", 2, 1500):
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
    envs = dqn_atari.make_env("ShortBreakoutNoFrameskip-v4", num_envs)
    spaces = envs.single_observation_space, envs.single_action_space
    envs.close()
    capacity = 240 * num_envs  # the stream below wraps around the ring several times
    plain = ReplayBuffer(capacity, *spaces, "cpu", n_envs=num_envs, handle_timeout_termination=False)
    frame = dqn_atari.FrameReplayBuffer(capacity, *spaces, "cpu", n_envs=num_envs)
    seen = {"life lost": 0, "truncated": 0, "game over": 0}
    for step, (obs, next_obs, actions, rewards, terms, truncs, over) in enumerate(
        random_stream("ShortBreakoutNoFrameskip-v4", num_envs, 1500)
    ):
        plain.add(obs, next_obs, actions, rewards, terms, {})
        frame.add(obs, next_obs, actions, rewards, terms, {})
        seen["life lost"] += (terms & ~over).sum()
        seen["truncated"] += truncs.sum()
        seen["game over"] += (terms & over).sum()
        if step % 97 == 0 or step > 1490:  # every stored index, for every env
            for env in range(num_envs):
                np.random.seed(step)
                inds = np.arange(plain.buffer_size if plain.full else plain.pos)
                a = plain._get_samples(inds)
                np.random.seed(step)
                b = frame._get_samples(inds)
                assert same(a, b), step
    assert all(seen.values()), seen
    np.random.seed(5)
    a = plain.sample(32)
    np.random.seed(5)
    b = frame.sample(32)
    assert same(a, b)


def test_frame_buffer_stores_one_frame_per_transition():
    envs = dqn_atari.make_env("BreakoutNoFrameskip-v4", 1)
    rb = dqn_atari.FrameReplayBuffer(100_000, envs.single_observation_space, envs.single_action_space)
    envs.close()
    arrays = [v for v in vars(rb).values() if isinstance(v, np.ndarray)]
    per_transition = sum(a.nbytes for a in arrays) / 100_000
    assert per_transition <= 7200, per_transition
    assert sum(a.nbytes for a in arrays) == dqn_atari.FrameReplayBuffer.nbytes(100_000, envs.single_observation_space)


def run_in_process(monkeypatch, workdir, *flags):
    """Runs dqn_atari.py in this process and returns its globals (the replay buffer is `rb`)."""
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(sys, "argv", ["dqn_atari.py", *map(str, flags)])
    return runpy.run_path(os.path.join(ROOT, "dqn_atari.py"), run_name="__main__")


def test_no_transition_bootstraps_from_another_games_frame_and_scores_are_real_game_scores(monkeypatch, workdir):
    g = run_in_process(monkeypatch, workdir, "--env-id", "ShortBreakoutNoFrameskip-v4", "--total-timesteps", 600,
                       "--learning-starts", 500, "--buffer-size", 1000, "--end-e", 1, "--eval-episodes", 0,
                       "--no-cuda")
    rb = g["rb"]
    np.random.seed(0)
    data = rb._get_samples(np.arange(rb.pos))
    obs, next_obs = data.observations.numpy(), data.next_observations.numpy()
    # every stored next observation is its observation one frame on: the same game, never the next one's start
    assert (next_obs[:, :3] == obs[:, 1:]).all()
    assert rb.starts[: rb.pos].sum() >= 3, "the run crossed several games"


def test_logged_return_is_the_unclipped_score_summed_over_all_lives(monkeypatch, workdir):
    # SpaceInvaders pays 5 to 30 points per alien and has 3 lives
    g = run_in_process(monkeypatch, workdir, "--env-id", "SpaceInvadersNoFrameskip-v4", "--total-timesteps", 2500,
                       "--learning-starts", 2400, "--buffer-size", 5000, "--end-e", 1, "--eval-episodes", 0,
                       "--no-cuda")
    tags = scalars(run_dirs(workdir)[0])
    logged = [(v, l) for (_, v), (_, l) in zip(tags["charts/episodic_return"], tags["charts/episodic_length"])]
    # replay the same actions in a plain env that knows nothing of lives: its games are the real ones
    actions = g["rb"].actions[: g["rb"].pos, 0, 0]
    env = dqn_atari.ale_py.AtariVectorEnv("space_invaders", 1, reward_clipping=False, episodic_life=False,
                                          autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    env.reset(seed=1)
    games, score, steps = [], 0, 0
    for a in actions:
        _, r, term, trunc, _ = env.step(np.array([a]))
        score, steps = score + r[0], steps + 1
        if term[0] or trunc[0]:
            games.append((score, steps))
            score, steps = 0, 0
    assert len(games) >= 2 and [v for v, _ in logged] == [v for v, _ in games]
    for (_, frames), (_, steps) in zip(logged, games):  # lengths in emulator frames, as CleanRL logs them: 4 per
        assert 4 * (steps - 1) < frames <= 4 * steps + 34  # step (the last may end early), plus the no-op start
    assert max(v for v, _ in logged) > 50
    assert set(np.unique(g["rb"].rewards[: g["rb"].pos])) <= {-1.0, 0.0, 1.0}


# ---- FIRE at the start of every life ------------------------------------------------------------

class NoopRng:
    """Stands in for the script's exploration generator: with epsilon 1 every action it draws is NOOP (0)."""

    def __init__(self, seed=None):
        pass

    def random(self, size=None):
        return np.zeros(size) if size else 0.0

    def integers(self, high, size=None):
        return np.zeros(size, dtype=np.int64)


def noop_agent_run(monkeypatch, workdir, env_id, num_envs, *flags):
    monkeypatch.setattr(np.random, "default_rng", NoopRng)
    steps = 600 * num_envs
    return run_in_process(monkeypatch, workdir, "--env-id", env_id, "--num-envs", num_envs, "--total-timesteps", steps,
                          "--learning-starts", steps - num_envs, "--buffer-size", 2 * steps, "--start-e", 1, "--end-e", 1,
                          "--no-cuda", *flags)


# Breakout with games cut at 300 emulator frames (75 steps): a NOOP agent's games end by truncation
gym.register("TinyBreakoutNoFrameskip-v4", entry_point="ale_py.env:AtariEnv",
             kwargs={**gym.spec("BreakoutNoFrameskip-v4").kwargs, "max_num_frames_per_episode": 300})


@pytest.mark.parametrize("env_id,num_envs", [("BreakoutNoFrameskip-v4", 1), ("BreakoutNoFrameskip-v4", 3),
                                             ("ALE/Breakout-v5", 1), ("ALE/Breakout-v5", 3),
                                             ("TinyBreakoutNoFrameskip-v4", 2)])
def test_an_agent_that_never_presses_fire_still_finishes_its_games(monkeypatch, workdir, env_id, num_envs):
    g = noop_agent_run(monkeypatch, workdir, env_id, num_envs, "--eval-episodes", 0)
    tags = scalars(run_dirs(workdir)[0])
    games = len(tags["charts/episodic_return"])
    assert games >= 3 * num_envs, "600 NOOP steps hold several whole games: each life is served"
    assert max(v for _, v in tags["charts/episodic_length"]) < 1200, "no game waits for FIRE (a game is 1200+ frames)"
    rb = g["rb"]
    actions, dones, game_starts = rb.actions[: rb.pos, :, 0], rb.dones[: rb.pos], rb.starts[: rb.pos]
    # every lost life (and game over) is stored as a done, so no TD target bootstraps across it; every life's first
    # 2 steps, after a lost life, a game over or a truncation, are stored with the action really taken, FIRE (1);
    # all else is NOOP
    if env_id.startswith("Tiny"):
        assert all(300 <= v < 340 for _, v in tags["charts/episodic_length"]), "games cut at the 300-frame limit"
    else:  # Breakout has 5 lives (+ the lives lost in the games still in flight)
        assert 5 * games <= dones.sum() < 5 * games + 5 * num_envs
    for env in range(num_envs):
        life_start = np.r_[True, dones[:-1, env] > 0] | game_starts[:, env]
        first_two = life_start | np.r_[True, life_start[:-1]]
        assert (actions[:, env] == np.where(first_two, 1, 0)).all()


@pytest.mark.parametrize("env_id", ["BreakoutNoFrameskip-v4", "ALE/Breakout-v5"])
def test_evaluation_games_of_an_agent_that_never_presses_fire_end(monkeypatch, env_id):
    from types import SimpleNamespace

    steps, make_env = [], dqn_atari.make_env

    def counted(*a, **k):  # the evaluation env, its steps counted
        envs = make_env(*a, **k)
        step = envs.step
        envs.step = lambda actions: steps.append(actions[0]) or step(actions)
        return envs

    monkeypatch.setattr(dqn_atari, "make_env", counted)
    args = SimpleNamespace(env_id=env_id, seed=1, end_e=1.0, eval_episodes=3, capture_video=False, fire_after_life_loss=True)
    scores = dqn_atari.evaluate(None, args, "eval", "cpu", NoopRng())
    assert len(scores) == 3 and len(steps) < 3 * 300, "a NOOP game without its serve lasts 27,000 steps"
    assert steps[:2] == [1, 1] and steps.count(1) >= 2 * 5 * 3, "FIRE twice at each life of each game"


def test_without_the_serve_a_noop_agent_waits_forever_after_its_first_lost_life(monkeypatch, workdir):
    g = noop_agent_run(monkeypatch, workdir, "BreakoutNoFrameskip-v4", 1, "--eval-episodes", 0, "--no-fire-after-life-loss")
    rb = g["rb"]
    assert "charts/episodic_return" not in scalars(run_dirs(workdir)[0]), "not one game finished"
    assert rb.dones[: rb.pos].sum() == 1 and not rb.actions[: rb.pos].any()


def test_games_without_fire_are_not_served():
    envs = dqn_atari.make_env("MsPacmanNoFrameskip-v4", 1)
    assert dqn_atari.serve(envs, True) == (0, 0)
    envs.close()
    envs = dqn_atari.make_env("ALE/Pong-v5", 1)
    assert dqn_atari.serve(envs, True) == (1, 2) and dqn_atari.serve(envs, False) == (0, 0)
    envs.close()


# ---- the whole script ---------------------------------------------------------------------------

@pytest.mark.parametrize("env_id", ["BreakoutNoFrameskip-v4", "PongNoFrameskip-v4"])
def test_short_run_logs_cleanrl_tags(workdir, env_id):
    result = run_script("dqn_atari.py", "--env-id", env_id, "--total-timesteps", 1200, "--learning-starts", 1000,
                        "--buffer-size", 2000, "--num-envs", 2, "--end-e", 0.5, "--eval-episodes", 0, "--no-cuda",
                        cwd=workdir)
    assert result.returncode == 0, result.stderr
    tags = scalars(run_dirs(workdir)[0])
    for tag in ("charts/epsilon", "charts/SPS", "losses/td_loss", "losses/q_values"):
        assert tag in tags
    if env_id.startswith("Breakout"):  # Pong's first game lasts longer than this run
        assert len(tags["charts/episodic_return"]) >= 2


def test_capture_video_records_playable_evaluation_games(workdir):
    import imageio.v3 as iio

    result = run_script("dqn_atari.py", "--total-timesteps", 300, "--learning-starts", 200, "--buffer-size", 1000,
                        "--eval-episodes", 1, "--end-e", 1.0, "--capture-video", "--no-cuda", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "eval:" in result.stdout
    videos = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(workdir, "videos")) for f in fs]
    frames = iio.imread(videos[0])
    assert len(videos) == 1 and frames.ndim == 4 and frames.shape[-1] == 3 and len(frames) > 50
    assert [v for _, v in scalars(run_dirs(workdir)[0])["eval/episodic_return"]]


BAD_INPUT = [
    (["--env-id", "CartPole-v1"], ["dqn.py"]),
    (["--env-id", "BreakoutNoFrameskip-v3"], ["BreakoutNoFrameskip-v4"]),
    (["--env-id", "Breakout-v4"], ["frame skip at random", "use BreakoutNoFrameskip-v4 or ALE/Breakout-v5"]),
    (["--env-id", "Pong-v0"], ["frame skip at random", "use PongNoFrameskip-v4 or ALE/Pong-v5"]),
    (["--buffer-size", 10**10], ["largest --buffer-size that fits"]),
    (["--learning-starts", 10**8], ["--learning-starts"]),
    (["--tau", 2], ["--tau"]),
    (["--env-id", "Breakout-v0", "--tau", 2, "--buffer-size", 10**10], ["--tau", "frame skip at random", "largest --buffer-size"]),
]


@pytest.mark.parametrize("flags,named", BAD_INPUT, ids=[" ".join(map(str, f)) for f, _ in BAD_INPUT])
def test_bad_input_gives_one_line_per_problem_and_no_run_folder(workdir, flags, named):
    result = run_script("dqn_atari.py", *flags, "--no-cuda", cwd=workdir)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert all(line.startswith("dqn_atari.py: error: ") for line in lines), result.stderr
    assert len(lines) == len(named) - (named[0] == "frame skip at random") and all(n in result.stderr for n in named), lines
    assert not os.path.exists(os.path.join(workdir, "runs"))


def test_registration_settings_the_vector_env_cannot_honour_are_refused():
    gym.register("ModeBreakoutNoFrameskip-v4", entry_point="ale_py.env:AtariEnv",
                 kwargs={**gym.spec("BreakoutNoFrameskip-v4").kwargs, "mode": 4, "difficulty": 1})
    [problem] = dqn_atari.check_env("ModeBreakoutNoFrameskip-v4")
    assert "sets difficulty, mode" in problem and "use BreakoutNoFrameskip-v4 or ALE/Breakout-v5" in problem
    assert "ModeBreakout" not in problem.split("use ")[1], "never the id refused"
    assert dqn_atari.check_env("ShortBreakoutNoFrameskip-v4") == [], "a frame limit is honoured"
    assert dqn_atari.check_env("ALE/Breakout-v5") == dqn_atari.check_env("BreakoutNoFrameskip-v4") == []


def test_training_with_the_frame_buffer_matches_training_with_sb3_plain_buffer(workdir):
    """The same seed gives the same losses and returns whichever buffer stores the transitions."""
    source = open(os.path.join(ROOT, "dqn_atari.py")).read()
    line = "rb = FrameReplayBuffer(args.buffer_size, envs.single_observation_space, envs.single_action_space, device, n_envs)"
    plain = line.replace("FrameReplayBuffer(", "ReplayBuffer(").replace("n_envs)", "n_envs, handle_timeout_termination=False)")
    assert source.count(line) == 1
    os.makedirs(os.path.join(workdir, "plain"))
    with open(os.path.join(workdir, "plain", "dqn_atari.py"), "w") as f:
        f.write(source.replace(line, plain))
    flags = ["--env-id", "BreakoutNoFrameskip-v4", "--total-timesteps", 1200, "--learning-starts", 600,
             "--buffer-size", 1000, "--exploration-fraction", 0.5, "--torch-threads", 1, "--eval-episodes", 0, "--no-cuda"]
    curves = []
    for script in (os.path.join(ROOT, "dqn_atari.py"), os.path.join(workdir, "plain", "dqn_atari.py")):
        cwd = os.path.dirname(script) if "plain" in script else workdir
        result = run_script(script, *flags, cwd=cwd)
        assert result.returncode == 0, result.stderr
        tags = scalars(run_dirs(cwd)[0])
        curves.append((tags["losses/td_loss"], tags["charts/episodic_return"]))
    assert len(curves[0][0]) >= 5 and len(curves[0][1]) >= 3
    assert curves[0] == curves[1]


def test_bf16_computes_the_update_batches_in_bfloat16_but_q_values_and_acting_in_float32():
    torch.manual_seed(0)
    exact, mixed = dqn_atari.QNetwork(4), dqn_atari.QNetwork(4, bf16=True)
    mixed.load_state_dict(exact.state_dict())
    frames = torch.randint(0, 256, (32, 4, 84, 84), dtype=torch.uint8)
    assert torch.equal(mixed(frames[:8]), exact(frames[:8])), "acting batches (<= 8) stay float32"
    q, q_exact = mixed(frames), exact(frames)
    assert q.dtype == torch.float32
    assert not torch.equal(q, q_exact) and torch.allclose(q, q_exact, rtol=0.02, atol=1e-3), "bfloat16 rounding, no more"
    q.square().mean().backward()
    assert all(p.dtype == p.grad.dtype == torch.float32 for p in mixed.parameters()), "weights and gradients stay float32"


def test_bf16_is_off_where_the_cpu_does_not_compute_it_natively(monkeypatch, workdir):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(sys, "argv", ["dqn_atari.py", "--total-timesteps", "40", "--learning-starts", "20",
                                      "--batch-size", "16", "--buffer-size", "100", "--eval-episodes", "0", "--no-cuda"])
    script = runpy.run_path(os.path.join(ROOT, "dqn_atari.py"), run_name="__main__")
    assert script["args"].bf16 is True, "the flag keeps what was asked, so a resume on another machine matches it"
    assert script["q_network"].bf16 is False and script["target_network"].bf16 is False
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    [run] = run_dirs(workdir)
    text = EventAccumulator(run, size_guidance={"tensors": 0}).Reload().Tensors("hyperparameters/text_summary")[0]
    assert "|bf16|False|" in text.tensor_proto.string_val[0].decode(), "the hyperparameters say what ran: float32"


def test_memory_preflight_names_the_largest_buffer_that_fits(monkeypatch):
    from types import SimpleNamespace

    space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    nbytes = lambda n: dqn_atari.FrameReplayBuffer.nbytes(n, space)
    monkeypatch.setattr(dqn_atari.psutil, "virtual_memory", lambda: SimpleNamespace(available=8 * 2**30))
    [problem] = dqn_atari.check_memory(SimpleNamespace(buffer_size=10**7), space)
    assert "GiB" in problem
    fits = int(problem.rsplit(" ", 1)[1].replace(",", ""))
    assert nbytes(fits) <= 7 * 2**30 < nbytes(fits + 1), "1 GiB is kept for the rest of the process"
    assert dqn_atari.check_memory(SimpleNamespace(buffer_size=fits), space) == []
    # a 16 GiB machine with about 14 GiB available holds the default 1M-step buffer
    monkeypatch.setattr(dqn_atari.psutil, "virtual_memory", lambda: SimpleNamespace(available=14 * 2**30))
    assert dqn_atari.check_memory(SimpleNamespace(buffer_size=1_000_000), space) == []
