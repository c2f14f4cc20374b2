# DQN (Mnih et al. 2015, "Nature DQN") for Atari, one file. Docs: README.md and docs/
import contextlib
import glob
import importlib.util
import os
import pickle
import random
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass

import ale_py
import gymnasium as gym
import numpy as np
import psutil
import stable_baselines3.common.atari_wrappers as sb3
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from stable_baselines3.common.buffers import BaseBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from torch.utils.tensorboard import SummaryWriter

gym.register_envs(ale_py)
ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment"""
    seed: int = 1
    """seed of the experiment"""
    torch_deterministic: bool = True
    """if toggled, `torch.backends.cudnn.deterministic=True`"""
    cuda: bool = True
    """if toggled, cuda will be enabled by default (if there is one)"""
    torch_threads: int = 0
    """CPU threads for torch (0 = torch's default)"""
    capture_video: bool = False
    """whether to capture videos of the agent performances (check out `videos` folder)"""
    save_model: bool = False
    """whether to save model into the run folder"""
    track: bool = False
    """if toggled, this experiment will be tracked with Weights and Biases"""
    wandb_project_name: str = "cleanRL"
    """the wandb's project name"""
    wandb_entity: str | None = None
    """the entity (team) of wandb's project"""

    # Algorithm specific arguments
    env_id: str = "BreakoutNoFrameskip-v4"
    """the id of the environment"""
    total_timesteps: int = 10000000
    """total timesteps of the experiments (summed over all environments)"""
    learning_rate: float = 1e-4
    """the learning rate of the optimizer"""
    num_envs: int = 1
    """the number of parallel game environments"""
    buffer_size: int = 1000000
    """the replay memory buffer size"""
    gamma: float = 0.99
    """the discount factor gamma"""
    tau: float = 1.0
    """the target network update rate"""
    target_network_frequency: int = 1000
    """the timesteps it takes to update the target network"""
    batch_size: int = 32
    """the batch size of sample from the reply memory"""
    start_e: float = 1.0
    """the starting epsilon for exploration"""
    end_e: float = 0.01
    """the ending epsilon for exploration (and evaluation)"""
    exploration_fraction: float = 0.10
    """the fraction of `total-timesteps` it takes from start-e to go end-e"""
    learning_starts: int = 80000
    """timestep to start learning"""
    train_frequency: int = 4
    """the frequency of training"""
    eval_episodes: int = 10
    """the number of evaluation games after training"""
    checkpoint_frequency: int = 0
    """the timesteps between checkpoints (0: only on Ctrl-C or SIGTERM)"""
    resume: str | None = None
    """continue this run (folder or checkpoint) with its flags; --total-timesteps may grow"""
    eval_checkpoint: str | None = None
    """only evaluate this model, checkpoint or run folder"""


def make_env(env_id, seed, capture_video=False, run_name=""):
    """CleanRL's and SB3's Atari protocol as a wrapper list (docs/atari.md): edit it to change what the agent sees."""

    def thunk():
        env = gym.make(env_id, frameskip=1, render_mode="rgb_array" if capture_video else None)
        if capture_video:
            env = gym.wrappers.RecordVideo(env, f"videos/{run_name}", episode_trigger=lambda game: True)
        env = gym.wrappers.RecordEpisodeStatistics(env)  # the whole game's unclipped score
        env = sb3.NoopResetEnv(env, noop_max=30)
        env = sb3.MaxAndSkipEnv(env, skip=4)
        env = sb3.EpisodicLifeEnv(env)  # a lost life ends the training episode; the game goes on
        if "FIRE" in env.unwrapped.get_action_meanings():
            env = sb3.FireResetEnv(env)
        env = sb3.ClipRewardEnv(env)
        env = gym.wrappers.ReshapeObservation(sb3.WarpFrame(env), (84, 84))  # 84x84 grayscale
        env = gym.wrappers.FrameStackObservation(env, 4, padding_type="reset")  # a new life starts with 4 copies
        env.action_space.seed(seed)
        return env

    return thunk


class QNetwork(nn.Module):
    def __init__(self, n_actions):
        super().__init__()
        self.network = nn.Sequential(
            nn.Conv2d(4, 32, 8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(3136, 512),
            nn.ReLU(),
            nn.Linear(512, n_actions),
        )

    def forward(self, x):
        return self.network(x / 255.0)


class FrameReplayBuffer(ReplayBuffer):
    """SB3's ReplayBuffer storing each 84x84 frame once, not two 4-frame stacks per transition (docs/atari.md).

    Observation n is frame rows n-3..n, its next one rows n-2..n+1. Checkpoints save the rows of the transitions added
    since the last one: after writing to an older transition's row, add its number to `rewritten`.
    """

    def __init__(self, buffer_size, observation_space, action_space, device="cpu", n_envs=1):
        BaseBuffer.__init__(self, buffer_size, observation_space, action_space, device, n_envs=n_envs)
        self.buffer_size = max(buffer_size // n_envs, 1)
        self.optimize_memory_usage = False
        rows = self.buffer_size + 4  # the oldest observation's 3 earlier frames, the newest next frame
        self.frames = np.zeros((rows, n_envs, *observation_space.shape[1:]), observation_space.dtype)
        self.first = np.zeros((rows, n_envs), np.int64)  # row n: the number of its episode's first transition
        self.actions = np.zeros((self.buffer_size, n_envs, 1), action_space.dtype)
        self.rewards = np.zeros((self.buffer_size, n_envs), np.float32)
        self.dones = np.zeros((self.buffer_size, n_envs), np.float32)
        self.last_frames = {}  # (transition, env): the last frame of the episode that ended there
        self.added, self.ended, self.rewritten = 0, [True] * n_envs, set()

    def add(self, obs, next_obs, action, reward, done, infos):
        n, rows = self.added, len(self.frames)
        for env in np.flatnonzero(self.ended) if n else []:  # a new episode takes row n; the old last frame moves aside
            self.last_frames[(n - 1, int(env))] = torch.from_numpy(self.frames[n % rows, env].copy())
        for env in range(self.n_envs):  # transition n - buffer_size leaves
            self.last_frames.pop((n - self.buffer_size, env), None)
        self.first[n % rows] = np.where(self.ended, n, self.first[(n - 1) % rows])
        self.frames[n % rows], self.frames[(n + 1) % rows] = obs[:, -1], next_obs[:, -1]
        self.ended = list(infos.get("_final_obs", [False] * self.n_envs))  # the episodes that end here
        self.actions[self.pos] = action.reshape(self.n_envs, 1)
        self.rewards[self.pos], self.dones[self.pos] = reward, done
        self.added += 1
        self.pos = (self.pos + 1) % self.buffer_size
        self.full = self.full or self.pos == 0

    def _get_samples(self, batch_inds, env=None):
        env_inds = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        n = self.added - 1 - (self.pos - 1 - batch_inds) % self.buffer_size  # the transitions' numbers
        rows = len(self.frames)
        first = self.first[n % rows, env_inds]  # rows n-3..n+1, but not before it: the env's stack repeats its frame
        frames = self.frames[np.maximum(n[:, None] + np.arange(-3, 2), first[:, None]) % rows, env_inds[:, None]]
        for b in np.flatnonzero(self.first[(n + 1) % rows, env_inds] == n + 1):  # n ended an episode: its last frame
            frames[b, -1] = self.last_frames[(n[b], env_inds[b])]
        i = batch_inds, env_inds
        small = np.stack([self.actions[i][:, 0], self.dones[i], self.rewards[i]], 1, dtype=np.float32)
        frames, small = self.to_torch(frames), self.to_torch(small)
        return ReplayBufferSamples(frames[:, :-1], small[:, :1].long(), frames[:, 1:], small[:, 1:2], small[:, 2:])


def linear_schedule(start_e: float, end_e: float, duration: float, t: int):
    slope = (end_e - start_e) / duration
    return max(slope * t + start_e, end_e)


def crossed(step, n_steps, every):
    return step // every > (step - n_steps) // every


# ---- Robustness: bad input, signals, checkpoints ----
SCRIPT = os.path.basename(__file__)
stop_signal = []
last_buffer = {}  # the memory's entry in the last checkpoint
BLOCK_BYTES = 2**25  # per file of the memory


def fail(*problems):
    sys.exit("\n".join(f"{SCRIPT}: error: {' '.join(str(p).split())}" for p in problems))


def on_signal(signum, frame):
    if stop_signal:
        os._exit(128 + signum)
    stop_signal.append(signum)
    print(f"{SCRIPT}: {signal.Signals(signum).name}: saving (again: quit now)", file=sys.stderr)


def check_args(a, step=0):
    inf, above = np.inf, ("tau", "exploration_fraction", "learning_rate")
    ranges = dict(total_timesteps=(max(1, step), inf), seed=(0, 2**32 - 1), num_envs=(1, min(1024, a.buffer_size)))
    ranges |= dict(batch_size=(1, a.buffer_size), gamma=(0, 1), start_e=(0, 1), end_e=(0, min(1, a.start_e)))
    ranges |= dict(exploration_fraction=(0, 1), learning_starts=(0, a.total_timesteps - 1), train_frequency=(1, inf))
    ranges |= dict(target_network_frequency=(1, inf), learning_rate=(0, inf), torch_threads=(0, os.cpu_count()))
    ranges |= dict(eval_episodes=(int(bool(a.eval_checkpoint)), inf), checkpoint_frequency=(0, inf), tau=(0, 1))
    problems = [
        f"--{k.replace('_', '-')} must be in {'(' if k in above else '['}{lo}, {hi}{')' if hi == inf else ']'}, got {v}"
        for k, (lo, hi) in ranges.items()
        for v in [getattr(a, k)]
        if not lo <= v <= hi or abs(v) == inf or k in above and v == lo
    ]
    if set("/\0:;,#?'") & set(a.exp_name) or len(f"{a.env_id}{a.exp_name}".encode()) > 200:
        problems.append(f"--exp-name must be a short name without /:;,#?': {a.exp_name!r}")
    if a.track and not importlib.util.find_spec("wandb"):
        problems.append("--track needs wandb: pip install wandb")
    try:
        assert str(gym.spec(a.env_id).entry_point).startswith("ale_py"), "not an Atari env (see dqn.py)"
    except Exception as e:
        problems.append(f"--env-id {a.env_id}: {e}")
    free, row = max(psutil.virtual_memory().available - 2**30, 0), 84 * 84 + 24  # bytes per transition
    if (need := a.buffer_size * row) > free and not a.eval_checkpoint:
        problems.append(f"--buffer-size needs {need / 2**30:.1f} GiB: the largest that fits is {free // row:,}")
    return problems


def load_tensors(path):
    path = next((p for p in (f"{path}/checkpoint/checkpoint.pt", f"{path}/checkpoint.pt") if os.path.isfile(p)), path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True), path
    except pickle.UnpicklingError:
        fail(f"'{path}' pickles Python objects, which can run code when loaded: refused")
    except Exception as e:
        fail(f"cannot read '{path}': {type(e).__name__}: {e}")


def fits(saved, fresh):
    if isinstance(fresh, dict) and fresh:  # (an empty one: any dict)
        return isinstance(saved, dict) and saved.keys() == fresh.keys() and all(fits(saved[k], fresh[k]) for k in fresh)
    if torch.is_tensor(fresh):
        return torch.is_tensor(saved) and (saved.shape, saved.dtype) == (fresh.shape, fresh.dtype)
    return type(saved) is type(fresh) or (type(fresh), type(saved)) in ((float, int), (type(None), str))


def write_checkpoint(state, run_dir):
    """Writes new block files, then replaces checkpoint.pt (which names them) in one rename, then deletes the rest."""
    folder, rb = os.path.join(run_dir, "checkpoint"), state["buffer"]
    path = os.path.join(folder, "checkpoint.pt")
    try:
        os.makedirs(folder, exist_ok=True)
        state["buffer"] = save_buffer(rb, folder, last_buffer)
        with open(path + ".tmp", "wb") as f:
            torch.save(state, f)
            os.fsync(f.fileno())
        os.replace(path + ".tmp", path)
        last_buffer.clear()
        last_buffer.update(state["buffer"])
        return rb.rewritten.clear() or True
    except Exception as e:
        print(f"{SCRIPT}: warning: checkpoint of step {state['global_step']:,} not written: {e}", file=sys.stderr)
    finally:  # (a failed save's files too)
        with contextlib.suppress(OSError):
            for name in set(os.listdir(folder)) - {"checkpoint.pt", *last_buffer.get("files", {}).values()}:
                os.remove(os.path.join(folder, name))


def save_buffer(rb, folder, old):
    """Writes each block with a row added since the `old` save (transition n: row n % len) or in `rb.rewritten`."""
    arrays = fields(rb, np.ndarray)
    rows = old.get("rows") or max(1, BLOCK_BYTES // sum(v[0].nbytes for v in arrays.values()))
    since = old.get("added", 0)
    n = np.r_[np.arange(since, min(rb.added, since + max(map(len, arrays.values()))) + 1), list(rb.rewritten)]
    files = dict(old.get("files", {}))  # block: its file
    for b in sorted({int(b) for v in arrays.values() for b in np.unique(n % len(v) // rows)}):
        files[b] = f"buffer.{b}.{time.time_ns()}.npz"
        with open(os.path.join(folder, files[b]), "wb") as f:
            np.savez(f, **{k: v[b * rows : b * rows + rows] for k, v in arrays.items()})
            os.fsync(f.fileno())
    return {"added": rb.added, "rows": rows, "files": files, "plain": fields(rb, int, dict)}


def fields(rb, *types):
    return {k: v for k, v in vars(rb).items() if isinstance(v, types)}


def load_buffer(rb, folder, entry):
    if not fits(entry, {"added": 0, "rows": 0, "files": {}, "plain": fields(rb, int, dict)}):
        raise ValueError("its replay memory differs from this FrameReplayBuffer's")
    for b, name in entry["files"].items():
        b *= entry["rows"]
        with np.load(os.path.join(folder, name), allow_pickle=False) as f:
            for k, v in fields(rb, np.ndarray).items():
                saved, rows = f[k], v[b : b + entry["rows"]]
                assert (saved.dtype, saved.shape) == (rows.dtype, rows.shape), f"{k} is {saved.dtype} {saved.shape}"
                rows[:] = saved  # (numpy would cast or broadcast another dtype or shape)
    vars(rb).update(entry["plain"])
    last_buffer.update(entry)


@torch.no_grad()
def evaluate(q_network, args, run_name, device, rng):
    env = make_env(args.env_id, args.seed + 10_000, args.capture_video, f"{run_name}-eval")()
    obs, _ = env.reset(seed=args.seed + 10_000)
    scores = []
    while len(scores) < args.eval_episodes and not stop_signal:
        if rng.random() < args.end_e:
            action = rng.integers(env.action_space.n)
        else:
            action = q_network(torch.as_tensor(obs[None], device=device)).argmax().item()
        obs, _, terminated, truncated, info = env.step(action)
        if "episode" in info:  # the game is over, not just a life
            scores.append(float(info["episode"]["r"]))
        if (terminated or truncated) and len(scores) < args.eval_episodes:  # (a reset starts a game's video)
            obs, _ = env.reset()
    env.close()
    print(f"eval: {np.mean(scores):.2f} +- {np.std(scores):.2f} over {len(scores)} games")
    return scores


def parse_args(argv=None):
    args, problems, saved = tyro.cli(Args, args=argv), [], None
    if args.resume:
        (saved, path), defaults = load_tensors(args.resume), vars(Args())
        try:
            given, step = saved["args"], saved["global_step"]
            assert all(fits(v, defaults.get(k, v)) for k, v in given.items()) and type(step) is int and step >= 0
            assert 0 < saved["exploration_steps"] < np.inf
        except Exception:
            fail(f"'{path}' is not a checkpoint of this {SCRIPT}")
        for k in defaults.keys() - given.keys():
            print(f"{SCRIPT}: note: --{k.replace('_', '-')} takes its default, {defaults[k]} (not in the checkpoint)")
        before, saved["path"] = {k: given.get(k, v) for k, v in defaults.items()}, path
        args = tyro.cli(Args, args=argv, default=Args(**{**before, "resume": args.resume}))
        problems = [
            f"--{k.replace('_', '-')}: the run was saved with {before[k]}, given {v}"
            for k, v in vars(args).items()
            if v != before[k] and k not in ("resume", "total_timesteps")
        ]
    if problems := problems + check_args(args, saved["global_step"] if saved else 0):
        fail(*problems)
    return args, saved


if __name__ == "__main__":
    args, saved = parse_args()
    decay = saved["exploration_steps"] if saved else args.exploration_fraction * args.total_timesteps
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    # TRY NOT TO MODIFY: seeding
    random.seed(args.seed)
    np.random.seed(args.seed)  # the replay buffer samples with it
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    rng = np.random.default_rng(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    n_actions = gym.make(args.env_id).action_space.n
    q_network = QNetwork(n_actions).to(device)
    if path := args.eval_checkpoint:
        saved = load_tensors((glob.glob(f"{glob.escape(path)}/*.pt") or [path])[0])[0]
        try:
            q_network.load_state_dict(saved.get("q_network", saved))
        except Exception:
            fail(f"the network in '{path}' differs from QNetwork for this env")
        evaluate(q_network, args, os.path.basename(os.path.normpath(path)), device, rng)
        sys.exit(128 + stop_signal[0] if stop_signal else 0)
    optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate, fused=True)
    target_network = QNetwork(n_actions).to(device)
    target_network.load_state_dict(q_network.state_dict())
    obs_space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    rb = FrameReplayBuffer(args.buffer_size, obs_space, gym.spaces.Discrete(n_actions), device, args.num_envs)
    recent_returns = deque(maxlen=20)
    global_step = start_step = saved["global_step"] if saved else 0
    trained = dict(q_network=q_network, target_network=target_network, optimizer=optimizer)

    def checkpoint():
        _, key, *numpy_state = np.random.get_state()
        return dict(
            args=vars(args),
            global_step=global_step,
            exploration_steps=decay,
            **{k: v.state_dict() for k, v in trained.items()},
            rng=[torch.get_rng_state(), key.tolist(), numpy_state, rng.bit_generator.state],
            buffer=rb,
        )

    if saved:
        if wrong := [k for k, v in checkpoint().items() if k not in ("args", "buffer") and not fits(saved.get(k), v)]:
            fail(f"the {', '.join(wrong)} saved in '{saved['path']}' differ from this script's")
        try:
            for k, v in trained.items():
                v.load_state_dict(saved[k])
            torch_state, key, numpy_state, rng.bit_generator.state = saved["rng"]
            torch.set_rng_state(torch_state)
            np.random.set_state(("MT19937", np.array(key, np.uint32), *numpy_state))
            load_buffer(rb, os.path.dirname(saved["path"]), saved["buffer"])
        except Exception as e:
            fail(f"cannot resume from '{saved['path']}': {type(e).__name__}: {e}")
        run_dir = os.path.dirname(os.path.dirname(os.path.abspath(saved["path"])))
        print(f"resumed {run_dir} at step {start_step:,}")
    else:
        run_dir = (
            f"runs/{args.env_id.replace('/', '-').replace(':', '-')}__{args.exp_name}__{args.seed}__{int(time.time())}"
        )
        while os.path.exists(run_dir):
            run_dir += "+"
    run_name = os.path.basename(run_dir)
    if args.track:
        import wandb

        run = dict(name=run_name, id=run_name.replace("+", "-"), resume="allow", sync_tensorboard=True, save_code=True)
        wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, config=vars(args), **run)
    writer = SummaryWriter(run_dir, purge_step=saved and start_step + 1)
    if not saved:
        table = "\n".join(f"|{k}|{v}|" for k, v in vars(args).items())
        writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{table}")

    envs = gym.vector.SyncVectorEnv(
        [make_env(args.env_id, args.seed + i) for i in range(args.num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )

    # TRY NOT TO MODIFY: start the game
    start_time = last_print = time.time()
    sps = lambda: int((global_step - start_step) / (time.time() - start_time + 1e-9))
    obs, _ = envs.reset(seed=args.seed + start_step)
    n_envs, num_iterations = args.num_envs, -(-args.total_timesteps // args.num_envs)
    for iteration in range(start_step // n_envs, num_iterations):
        global_step = iteration * n_envs
        # ALGO LOGIC: put action logic here
        epsilon = linear_schedule(args.start_e, args.end_e, decay, global_step)
        explore = rng.random(n_envs) < epsilon
        actions = rng.integers(n_actions, size=n_envs)
        if not explore.all():
            with torch.no_grad():
                q_values = q_network(torch.as_tensor(obs, device=device))
            actions = np.where(explore, actions, q_values.argmax(dim=1).cpu().numpy())

        # TRY NOT TO MODIFY: execute the game and log data.
        next_obs, rewards, terminations, truncations, infos = envs.step(actions)
        global_step += n_envs

        # TRY NOT TO MODIFY: a cut episode bootstraps from its true last observation; a game ends with its last life
        real_next_obs = next_obs.copy() if "final_obs" in infos else next_obs
        for i in np.flatnonzero(infos.get("_final_obs", [])):
            real_next_obs[i] = infos["final_obs"][i]
            if infos["final_info"].get("_episode", [False] * n_envs)[i]:
                game = infos["final_info"]["episode"]
                writer.add_scalar("charts/episodic_return", game["r"][i], global_step)
                writer.add_scalar("charts/episodic_length", game["l"][i], global_step)
                recent_returns.append(game["r"][i])
        rb.add(obs, real_next_obs, actions, rewards, terminations, infos)

        # TRY NOT TO MODIFY: CRUCIAL step easy to overlook
        obs = next_obs

        # ALGO LOGIC: training.
        if global_step > args.learning_starts:
            n_updates = global_step // args.train_frequency - (global_step - n_envs) // args.train_frequency
            for _ in range(n_updates):
                data = rb.sample(args.batch_size)
                with torch.no_grad():
                    target_max, _ = target_network(data.next_observations).max(dim=1)
                    td_target = data.rewards.flatten() + args.gamma * target_max * (1 - data.dones.flatten())
                old_val = q_network(data.observations).gather(1, data.actions).squeeze(1)
                loss = F.mse_loss(td_target, old_val)

                # optimize the model
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

            if n_updates and crossed(global_step, n_envs, 100):
                writer.add_scalar("losses/td_loss", loss, global_step)
                writer.add_scalar("losses/q_values", old_val.mean().item(), global_step)

            # update target network
            if crossed(global_step, n_envs, args.target_network_frequency):
                for target_param, q_param in zip(target_network.parameters(), q_network.parameters()):
                    target_param.data.copy_(args.tau * q_param.data + (1.0 - args.tau) * target_param.data)

        if crossed(global_step, n_envs, 100):
            writer.add_scalar("charts/SPS", sps(), global_step)
            writer.add_scalar("charts/epsilon", epsilon, global_step)
        if time.time() - last_print > 10 or iteration == num_iterations - 1:
            last_print, mean = time.time(), np.mean(recent_returns or [np.nan])
            print(f"step {global_step:,}  {sps():,} steps/s  return {mean:.2f}  epsilon {epsilon:.3f}", flush=True)
        if args.checkpoint_frequency and crossed(global_step, n_envs, args.checkpoint_frequency):
            write_checkpoint(checkpoint(), run_dir)
        if stop_signal:
            break

    envs.close()
    if args.eval_episodes > 0 and not stop_signal:
        for i, episodic_return in enumerate(evaluate(q_network, args, run_name, device, rng)):
            writer.add_scalar("eval/episodic_return", episodic_return, i)
    for video in sorted(glob.glob(f"videos/{run_name}*/*.mp4")) if args.track else []:
        wandb.log({"videos/" + video.split("/")[1]: wandb.Video(video)})
    if args.save_model or stop_signal:
        torch.save(q_network.state_dict(), model := f"{run_dir}/{args.exp_name}.pt")
        print(f"model saved to {model}")
    writer.close()
    if stop_signal:
        resume = f"; continue with --resume {run_dir}" * bool(write_checkpoint(checkpoint(), run_dir))
        print(f"{SCRIPT}: stopped at step {global_step:,}{resume}", file=sys.stderr)
        sys.exit(128 + stop_signal[0])
