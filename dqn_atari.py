# DQN (Mnih et al. 2015, "Nature DQN") for Atari, one file. Docs: README.md and docs/
import contextlib
import copy
import fcntl
import glob
import importlib.util
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
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
    """whether to use CUDA if there is a GPU"""
    torch_threads: int = 0
    """CPU threads for torch (0 = torch's default)"""
    capture_video: bool = False
    """whether to record videos of the agent (in `videos/`)"""
    save_model: bool = False
    """whether to save model into the run folder"""
    track: bool = False
    """whether to track the run with Weights and Biases"""
    wandb_project_name: str = "cleanRL"
    """the wandb's project name"""
    wandb_entity: str | None = None
    """the entity (team) of wandb's project"""
    upload_model: bool = False
    """whether to upload the saved model to huggingface"""
    hf_entity: str = ""
    """the user or org name of the model repository from the Hugging Face Hub"""

    # Algorithm specific arguments
    env_id: str = "BreakoutNoFrameskip-v4"
    """the id of the environment"""
    total_timesteps: int = 10000000
    """the steps of the run, summed over all envs"""
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
    """the steps between target network updates"""
    batch_size: int = 32
    """the batch size of samples from the replay memory"""
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
    checkpoint_frequency: int = 100000
    """the timesteps between checkpoints, each adding what is new (0: only at Ctrl-C, SIGTERM or an error)"""
    resume: str | None = None
    """continue this run (folder or checkpoint) with its flags; --total-timesteps may grow"""
    eval_checkpoint: str | None = None
    """only evaluate this model, checkpoint or run folder"""


def make_env(env_id, seed, capture_video=False, run_name=""):
    """CleanRL's and SB3's Atari protocol (docs/atari.md): edit it to change what the agent sees."""

    def thunk():
        env = gym.make(env_id, frameskip=1, render_mode="rgb_array" if capture_video else None)
        if capture_video:  # evaluation: every game; training, as CleanRL: games 0, 1, 8, 27, ..., 1000, 2000, ...
            trigger = (lambda game: True) if run_name.endswith("-eval") else None
            env = gym.wrappers.RecordVideo(env, f"videos/{run_name}", episode_trigger=trigger)
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
    """SB3's ReplayBuffer storing each frame once, not two 4-frame stacks per transition (docs/atari.md).

    Observation n is frame rows n-3..n, its next one rows n-2..n+1 (row numbers modulo the number of rows).
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
        self.added = 0  # transitions added so far
        self.ended = [True] * n_envs  # whose episode ended at the last transition

    def add(self, obs, next_obs, action, reward, done, infos):
        n, rows = self.added, len(self.frames)
        for env in np.flatnonzero(self.ended) if n else []:  # a new episode takes row n; the old last frame moves aside
            self.last_frames[(n - 1, int(env))] = torch.from_numpy(self.frames[n % rows, env].copy())
        for env in range(self.n_envs):  # transition n - buffer_size leaves
            self.last_frames.pop((n - self.buffer_size, env), None)
        self.first[n % rows] = np.where(self.ended, n, self.first[(n - 1) % rows])
        self.frames[n % rows], self.frames[(n + 1) % rows] = obs[:, -1], next_obs[:, -1]
        self.ended = [bool(e) for e in infos.get("_final_obs", [False] * self.n_envs)]
        self.actions[self.pos] = action.reshape(self.n_envs, 1)
        self.rewards[self.pos], self.dones[self.pos] = reward, done
        self.added += 1
        self.pos = (self.pos + 1) % self.buffer_size
        self.full = self.full or self.pos == 0

    def _get_samples(self, batch_inds, env=None):
        env_inds = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        # slot pos - 1 holds the newest transition, number added - 1; slot s holds one (pos - 1 - s) % size older
        n = self.added - 1 - (self.pos - 1 - batch_inds) % self.buffer_size
        rows = len(self.frames)
        # n's two stacks: rows n-3..n+1, none before its episode's first (which a new episode's stack repeats)
        stack_rows = np.maximum(n[:, None] + np.arange(-3, 2), self.first[n % rows, env_inds][:, None])
        frames = self.frames[stack_rows % rows, env_inds[:, None]]
        # n ended its episode if row n + 1 starts a new one: its last frame was moved to last_frames
        ended = self.first[(n + 1) % rows, env_inds] == n + 1
        for b in np.flatnonzero(ended):
            frames[b, -1] = self.last_frames[(n[b], env_inds[b])]
        frames = self.to_torch(frames)
        return ReplayBufferSamples(
            observations=frames[:, :-1],
            actions=self.to_torch(self.actions[batch_inds, env_inds]),
            next_observations=frames[:, 1:],
            dones=self.to_torch(self.dones[batch_inds, env_inds].reshape(-1, 1)),
            rewards=self.to_torch(self.rewards[batch_inds, env_inds].reshape(-1, 1)),
        )


def linear_schedule(start_e: float, end_e: float, duration: float, t: int):
    slope = (end_e - start_e) / duration
    return max(slope * t + start_e, end_e)


def crossed(step, n_steps, every):
    return step // every > (step - n_steps) // every


# ---- Robustness: bad input, signals, checkpoints, the run's lock; evaluation ----
SCRIPT = os.path.basename(__file__)
stop_signal = []


def fail(*problems):
    sys.exit("\n".join(f"{SCRIPT}: error: {' '.join(str(p).split())}" for p in problems))


def on_signal(signum, frame):
    if stop_signal:
        os._exit(128 + signum)
    stop_signal.append(signum)
    print(f"{SCRIPT}: {signal.Signals(signum).name}: saving (again: quit now)", file=sys.stderr)


def check_args(args, step=0):
    ranges = dict(  # flag: (lowest, highest), both allowed
        total_timesteps=(max(1, step), np.inf),
        seed=(0, 2**32 - 1),
        num_envs=(1, min(1024, args.buffer_size)),
        batch_size=(1, args.buffer_size),
        gamma=(0, 1),
        tau=(0, 1),
        start_e=(0, 1),
        end_e=(0, min(1, args.start_e)),
        exploration_fraction=(0, 1),
        learning_starts=(0, args.total_timesteps - 1),
        train_frequency=(1, np.inf),
        target_network_frequency=(1, np.inf),
        learning_rate=(0, np.inf),
        torch_threads=(0, os.cpu_count()),
        eval_episodes=(1 if args.eval_checkpoint else 0, np.inf),
        checkpoint_frequency=(0, np.inf),
    )
    above_lowest = ("tau", "exploration_fraction", "learning_rate")  # these exclude their lowest value
    problems = []
    for flag, (low, high) in ranges.items():
        value = getattr(args, flag)
        in_range = low < value <= high if flag in above_lowest else low <= value <= high  # (NaN is in no range)
        if not in_range or abs(value) == np.inf:
            left = "(" if flag in above_lowest else "["
            right = ")" if high == np.inf else "]"
            problems.append(f"--{flag.replace('_', '-')} must be in {left}{low}, {high}{right}, got {value}")
    if set("/\0:;,#?'") & set(args.exp_name) or len(f"{args.env_id}{args.exp_name}".encode()) > 200:
        problems.append(f"--exp-name must be a short name without /:;,#?': {args.exp_name!r}")
    if args.track and not importlib.util.find_spec("wandb"):
        problems.append("--track needs wandb: pip install wandb")
    try:
        spec = gym.spec(args.env_id)
    except Exception as e:
        return problems + [f"--env-id {args.env_id}: {e}"]
    if not str(spec.entry_point).startswith("ale_py"):
        return problems + [f"--env-id {args.env_id}: not an Atari env (see dqn.py)"]
    if spec.kwargs.get("frameskip", 1) != 1:
        print(f"{SCRIPT}: note: {args.env_id}'s frame skip {spec.kwargs['frameskip']} is replaced by make_env's")
    env = make_env(args.env_id, 0)()
    memory = FrameReplayBuffer(1, env.observation_space, env.action_space)
    row = sum(v[0].nbytes for v in vars(memory).values() if isinstance(v, np.ndarray))  # bytes per transition
    free = max(psutil.virtual_memory().available - 2**30, 0)
    if args.buffer_size * row > free and not args.eval_checkpoint:
        needed = args.buffer_size * row / 2**30
        problems.append(f"--buffer-size needs {needed:.1f} GiB: the largest that fits is {free // row:,}")
    return problems


def load_tensors(path):
    if os.path.isdir(path):  # a run folder
        if not os.path.exists(f"{path}/checkpoint/checkpoint.pt"):
            fail(f"'{path}' has no checkpoint: the run stopped before its first one, or it is not a run folder")
        path = f"{path}/checkpoint/checkpoint.pt"
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True), path
    except pickle.UnpicklingError:
        fail(f"'{path}' pickles Python objects, which can run code when loaded: refused")
    except Exception as e:
        fail(f"cannot read '{path}': {type(e).__name__}: {e}")


def fits(saved, fresh):
    if torch.is_tensor(fresh):
        return torch.is_tensor(saved) and (saved.shape, saved.dtype) == (fresh.shape, fresh.dtype)
    return type(saved) is type(fresh) or (type(fresh), type(saved)) in ((float, int), (type(None), str))


def described(value):  # for a line about a checkpoint's entry
    if torch.is_tensor(value):
        return f"{value.dtype} {list(value.shape)}"
    return f"{type(value).__name__} of {len(value)}" if isinstance(value, (list, tuple)) else type(value).__name__


def mismatches(saved, fresh, name="checkpoint"):
    """The entries of a checkpoint that are missing, extra or unlike this script's own (docs/long-runs.md)."""
    if not isinstance(fresh, (dict, list, tuple)):
        return [] if fits(saved, fresh) else [f"{name} is {described(saved)}, not {described(fresh)}"]
    if type(saved) is not type(fresh) or (not isinstance(fresh, dict) and len(saved) != len(fresh)):
        return [f"{name} is {described(saved)}, not {described(fresh)}"]
    if not isinstance(fresh, dict):
        return [m for i in range(len(fresh)) for m in mismatches(saved[i], fresh[i], f"{name}[{i}]")]
    if fresh and all(type(k) is str for k in fresh):  # named entries
        problems = [f"{name}.{k} extra" for k in saved if k not in fresh]
        problems += [f"{name}.{k} missing" for k in fresh if k not in saved]
        for k in [k for k in fresh if k in saved]:
            problems += mismatches(saved[k], fresh[k], f"{name}.{k}")
        return problems
    problems = []  # data (optimizer state, last frames, chunks): each value like fresh's of its key, or else a first
    example = next(iter(fresh.values() or saved.values()), None)
    for k, v in saved.items():
        problems += mismatches(v, fresh.get(k, example), f"{name}[{k!r}]")
    return problems


def lock_run_folder(run_dir):  # one process per run folder: the OS frees the lock when this one ends
    os.makedirs(run_dir, exist_ok=True)
    lock = open(f"{run_dir}/lock", "a+")
    try:
        fcntl.lockf(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fail(f"{run_dir} is in use by process {open(f'{run_dir}/lock').read()}")
    lock.truncate(0)
    print(os.getpid(), end="", file=lock, flush=True)
    return lock


def write_file(path, save):  # all or nothing: a kill or an error leaves the file that was there
    try:
        with open(path + ".tmp", "wb") as f:
            save(f)
            os.fsync(f.fileno())
        os.replace(path + ".tmp", path)
    finally:
        if os.path.exists(path + ".tmp"):
            os.remove(path + ".tmp")


CHUNKED = ("frames",)  # memory arrays saved by chunks of the rows new transitions wrote; the others whole, each time


def save_memory(rb, folder, on_disk):
    """The memory's fields but spaces and device, arrays as tensors; the CHUNKED ones by chunks (docs/long-runs.md).
    `on_disk`: the chunks of the checkpoint on disk; `folder` None: the form only, to check a checkpoint against."""
    memory = {}
    chunks = {}
    for name, value in vars(rb).items():
        if isinstance(value, (gym.Space, torch.device)):
            continue
        if name not in CHUNKED:
            memory[name] = torch.from_numpy(value) if isinstance(value, np.ndarray) else value
            continue
        # transition n wrote rows n and n + 1 (modulo the length); a chunk all of whose rows were written again goes
        kept = on_disk.get(name, {}).items()
        chunks[name] = {first: [last, file] for first, (last, file) in kept if last + len(value) > rb.added}
        first = max([0, rb.added + 1 - len(value)] + [last for last, _ in chunks[name].values()])
        while folder and first <= rb.added:  # a chunk ends at the array's last row: a view is saved, not a copy
            last = min(rb.added, first + len(value) - 1 - first % len(value))
            rows = value[first % len(value) : last % len(value) + 1]
            write_file(f"{folder}/{name}.{first}-{last}.npy", lambda f: np.save(f, rows, allow_pickle=False))
            chunks[name][first] = [last, f"{name}.{first}-{last}.npy"]
            first = last + 1
    return memory, chunks


def load_memory(rb, memory, chunks, folder):  # each chunk checked before it is read: names, rows, shape, dtype
    for name, value in memory.items():
        setattr(rb, name, value.numpy().copy() if torch.is_tensor(value) else value)
    for name, saved in chunks.items():
        array = getattr(rb, name)
        covered = max(0, rb.added + 1 - len(array))  # the oldest row in use; the chunks must go on from it, in order
        for first, (last, file) in sorted(saved.items()):
            if first > covered or file != f"{name}.{first}-{last}.npy":
                raise ValueError(f"the chunk {file!r} of {name} does not follow its rows up to {covered - 1}")
            chunk = np.load(os.path.join(folder, file), mmap_mode="r", allow_pickle=False)
            if (chunk.shape, chunk.dtype) != ((last - first + 1, *array.shape[1:]), array.dtype):
                raise ValueError(f"{file} holds {chunk.dtype} {chunk.shape}, not rows {first}-{last} of {name}")
            array[np.arange(first, last + 1) % len(array)] = chunk
            covered = max(covered, last + 1)
        if covered <= rb.added:
            raise ValueError(f"the chunks of {name} end at its row {covered - 1}, not at {rb.added}")


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


# ---- Sharing: a folder for the Hugging Face Hub, and its push (docs/sharing.md) ----
def hub_repo(args):  # CleanRL's repository name
    name = f"{args.env_id.replace('/', '-').replace(':', '-')}-{args.exp_name}-seed{args.seed}"
    return f"{args.hf_entity}/{name}" if args.hf_entity else name


def hub_problems(args):
    problems = []
    if args.hf_entity and not args.upload_model:
        problems.append("--hf-entity goes with --upload-model")
    if args.upload_model and args.eval_episodes == 0:
        problems.append("--upload-model needs --eval-episodes of 1 or more: the model card gives their score")
    if args.upload_model and not importlib.util.find_spec("huggingface_hub"):
        problems.append("--upload-model needs huggingface_hub: pip install huggingface_hub")
    elif args.upload_model:
        from huggingface_hub.utils import validate_repo_id

        try:
            validate_repo_id(hub_repo(args))
        except Exception as e:
            problems.append(f"--upload-model: the Hub refuses the repository name {hub_repo(args)!r}: {e}")
    return problems


def hub_folder(q_network, args, run_dir, returns, protocol):
    """The model (a .cleanrl_model as CleanRL's evaluation loads it), the script, the flags, the evaluation's returns,
    the TensorBoard events, the evaluation's video and a model card, in run_dir/hub: what a push would upload."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    folder = f"{run_dir}/hub"
    os.makedirs(folder, exist_ok=True)
    torch.save(q_network.state_dict(), f"{folder}/{args.exp_name}.cleanrl_model")
    shutil.copy(__file__, f"{folder}/{SCRIPT}")
    for events in glob.glob(f"{run_dir}/events.*"):
        shutil.copy(events, folder)
    for video in sorted(glob.glob(f"videos/{os.path.basename(run_dir)}-eval/*.mp4"))[-1:]:
        shutil.copy(video, f"{folder}/replay.mp4")
    with open(f"{folder}/hyperparameters.json", "w") as f:
        json.dump(vars(args), f, indent=1)
    with open(f"{folder}/eval_returns.json", "w") as f:
        json.dump(returns, f)
    score = f"{np.mean(returns):.2f} +/- {np.std(returns):.2f}"
    tags = [args.env_id, "deep-reinforcement-learning", "reinforcement-learning", "custom-implementation", "DQN"]
    result = EvalResult(
        task_type="reinforcement-learning",
        dataset_type=args.env_id,
        dataset_name=args.env_id,
        metric_type="mean_reward",
        metric_value=score,
    )
    data = ModelCardData(library_name="cleanrl", tags=tags, model_name="DQN", eval_results=[result])
    flags = []  # the run's command: the flags that differ from their defaults
    for k, v in vars(args).items():
        flag = "--" + k.replace("_", "-")
        if k == "resume" or v == vars(Args())[k]:
            continue
        if isinstance(v, bool):
            flags.append(flag if v else "--no-" + flag[2:])
        else:
            flags.append(f"{flag} {v}")
    here = os.path.dirname(os.path.abspath(__file__))
    commit = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    text = (
        f"# DQN on {args.env_id}\n\nTrained by `{SCRIPT}` ({protocol}; commit {commit or 'unknown'}) for"
        f" {args.total_timesteps:,} steps; {len(returns)} evaluation episodes at epsilon {args.end_e}: {score}.\n\n"
        f"Train it again: `python {SCRIPT} {' '.join(flags)}`. Play it: `python {SCRIPT}"
        f" --env-id {args.env_id} --eval-checkpoint FOLDER`, FOLDER this repository downloaded.\n"
    )
    ModelCard(f"---\n{data.to_yaml()}\n---\n\n{text}").save(f"{folder}/README.md")
    return folder


def push_to_hub(folder, args):  # returns whether it went through
    from huggingface_hub import create_repo, upload_folder

    try:
        repo = create_repo(hub_repo(args), exist_ok=True)
        upload_folder(repo_id=repo.repo_id, folder_path=folder, commit_message=f"{SCRIPT} on {args.env_id}")
        print(f"pushed {folder} to {repo}")
        return True
    except Exception as e:
        print(
            f"{SCRIPT}: the push to the Hub failed ({type(e).__name__}: {' '.join(str(e).split())[:300]}); "
            f"all is saved; push it later with: hf upload {hub_repo(args)} {folder} .",
            file=sys.stderr,
        )
        return False


def checkpoint_problems(saved, defaults):  # what parse_args reads: the flags (of Args' types), the step, ε's decay
    if not isinstance(saved, dict) or not isinstance(saved.get("args"), dict):
        return ["checkpoint.args missing"]
    flags = saved["args"].items()
    problems = [f"checkpoint.args.{k} is {v!r:.20}" for k, v in flags if not fits(v, defaults.get(k, v))]
    step = saved.get("global_step")
    decay = saved.get("exploration_steps")
    if type(step) is not int or step < 0:
        problems.append(f"checkpoint.global_step is {step!r:.20}")
    if type(decay) not in (int, float) or not 0 < decay < np.inf:
        problems.append(f"checkpoint.exploration_steps is {decay!r:.20}")
    return problems


def refuse_checkpoint(path, problems):
    more = f" and {len(problems) - 6} more" if len(problems) > 6 else ""
    fail(f"'{path}' is not a checkpoint of this {SCRIPT}: {', '.join(problems[:6])}{more}")


def parse_args(argv=None):
    args = tyro.cli(Args, args=argv)
    problems = []
    saved = None
    if args.resume:
        saved, path = load_tensors(args.resume)
        defaults = vars(Args())
        if problems := checkpoint_problems(saved, defaults):
            refuse_checkpoint(path, problems)
        saved["path"] = path
        before = {k: saved["args"].get(k, v) for k, v in defaults.items()}  # (a flag added since: its default)
        args = tyro.cli(Args, args=argv, default=Args(**{**before, "resume": args.resume}))
        problems = [
            f"--{k.replace('_', '-')}: the run was saved with {before[k]}, given {v}"
            for k, v in vars(args).items()
            if v != before[k] and k not in ("resume", "total_timesteps")
        ]
    problems += check_args(args, saved["global_step"] if saved else 0) + hub_problems(args)
    if problems:
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
    if args.cuda and not torch.cuda.is_available():
        print(f"{SCRIPT}: note: --cuda: this machine has no CUDA device; running on the CPU")

    probe = make_env(args.env_id, args.seed)()
    n_actions = probe.action_space.n
    q_network = QNetwork(n_actions).to(device)
    if path := args.eval_checkpoint:
        if os.path.isdir(path):
            run_lock = lock_run_folder(path)
        models = glob.glob(f"{glob.escape(path)}/*.pt") + glob.glob(f"{glob.escape(path)}/*.cleanrl_model")
        saved, _ = load_tensors(models[0] if models else path)
        if isinstance(saved, dict) and "q_network" in saved:  # a checkpoint, not a model
            saved = saved["q_network"]
        try:
            q_network.load_state_dict(saved)
        except Exception:
            fail(f"the network in '{path}' differs from QNetwork for this env")
        evaluate(q_network, args, os.path.basename(os.path.normpath(path)), device, rng)
        sys.exit(128 + stop_signal[0] if stop_signal else 0)
    optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate, fused=True)
    target_network = QNetwork(n_actions).to(device)
    target_network.load_state_dict(q_network.state_dict())
    rb = FrameReplayBuffer(args.buffer_size, probe.observation_space, probe.action_space, device, args.num_envs)
    recent_returns = deque(maxlen=20)
    global_step = start_step = saved["global_step"] if saved else 0
    learner = dict(q_network=q_network, target_network=target_network, optimizer=optimizer)

    def checkpoint(learner, memory, chunks):
        _, key, *numpy_state = np.random.get_state()
        return dict(
            args=vars(args),
            global_step=global_step,
            exploration_steps=decay,
            **{k: v.state_dict() for k, v in learner.items()},
            rng=[torch.get_rng_state(), key.tolist(), numpy_state, rng.bit_generator.state],
            buffer=memory,
            chunks=chunks,
        )

    if saved:
        run_dir = os.path.dirname(os.path.dirname(os.path.abspath(saved["path"])))
        trial = copy.deepcopy(learner)  # after one update, so that its optimizer's state has all its entries
        trial["q_network"](torch.zeros(1, *rb.obs_shape, device=device)).sum().backward()
        trial["optimizer"].step()
        fresh = checkpoint(trial, *save_memory(rb, None, {}))
        if problems := mismatches({**saved, "args": {}, "path": ""}, {**fresh, "args": {}, "path": ""}):
            refuse_checkpoint(saved["path"], problems)
        try:
            for k, v in learner.items():
                v.load_state_dict(saved[k])
            torch_state, key, numpy_state, rng.bit_generator.state = saved["rng"]
            torch.set_rng_state(torch_state)
            np.random.set_state(("MT19937", np.array(key, np.uint32), *numpy_state))
            load_memory(rb, saved["buffer"], saved["chunks"], os.path.dirname(saved["path"]))
            rb.ended = [True] * args.num_envs  # the envs are reset: each starts a new episode
        except Exception as e:
            fail(f"cannot resume from '{saved['path']}': {type(e).__name__}: {e}")
    else:
        run_dir = (
            f"runs/{args.env_id.replace('/', '-').replace(':', '-')}__{args.exp_name}__{args.seed}__{int(time.time())}"
        )
    run_name = os.path.basename(run_dir)
    run_lock = lock_run_folder(run_dir)
    if saved:
        print(f"resumed {run_dir} at step {start_step:,}")
    if args.track:
        import wandb

        run = dict(name=run_name, id=run_name, resume="allow", sync_tensorboard=True, save_code=True)
        wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, config=vars(args), **run)
    writer = SummaryWriter(run_dir, purge_step=start_step + 1 if saved else None)  # (a resume drops later events)
    if not saved:
        table = "\n".join(f"|{k}|{v}|" for k, v in vars(args).items())
        writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{table}")

    envs = gym.vector.SyncVectorEnv(
        [make_env(args.env_id, args.seed + i, args.capture_video and i == 0, run_name) for i in range(args.num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )

    # ---- Keeping the work: checkpoints, and what a signal or an error saves before the run ends ----
    chunks_on_disk = {}  # those of the checkpoint on disk (a checkpoint resumed from elsewhere: none here)
    if saved and os.path.dirname(os.path.abspath(saved["path"])) == os.path.abspath(f"{run_dir}/checkpoint"):
        chunks_on_disk = saved["chunks"]

    def save_checkpoint():  # returns whether it was written
        global chunks_on_disk
        folder = f"{run_dir}/checkpoint"
        try:
            os.makedirs(folder, exist_ok=True)
            state = checkpoint(learner, *save_memory(rb, folder, chunks_on_disk))
            write_file(f"{folder}/checkpoint.pt", lambda f: torch.save(state, f))
            chunks_on_disk = state["chunks"]
        except Exception as e:
            print(f"{SCRIPT}: warning: checkpoint of step {global_step:,} not written: {e}", file=sys.stderr)
            state = None
        kept = {file for chunks in chunks_on_disk.values() for _, file in chunks.values()}
        for name in os.listdir(folder) if os.path.isdir(folder) else []:
            if name.endswith((".npy", ".tmp")) and name not in kept:  # the chunks of older checkpoints
                with contextlib.suppress(OSError):  # (or the next checkpoint's)
                    os.remove(f"{folder}/{name}")
        return state is not None

    def save_model():
        model_path = f"{run_dir}/{args.exp_name}.pt"
        torch.save(q_network.state_dict(), model_path)
        print(f"model saved to {model_path}")

    def keep_work():  # the events, a checkpoint and the model; then how to go on
        writer.close()
        written = save_checkpoint()
        save_model()
        return f"continue with --resume {run_dir}" if written else "no checkpoint written"

    def on_error(kind, error, trace):  # an error in the loop or the evaluation: show it, then save
        previous_excepthook(kind, error, trace)
        try:
            how_to_continue = keep_work()
        except Exception as e:
            how_to_continue = f"saving failed: {type(e).__name__}: {e}"
        print(f"{SCRIPT}: {kind.__name__} at step {global_step:,}; {how_to_continue}", file=sys.stderr)

    previous_excepthook = sys.excepthook
    sys.excepthook = on_error

    # TRY NOT TO MODIFY: start the game
    start_time = time.time()
    sps = 0

    obs, _ = envs.reset(seed=args.seed + start_step)
    n_envs = args.num_envs
    num_iterations = (args.total_timesteps + n_envs - 1) // n_envs  # (rounded up)
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
            sps = int((global_step - start_step) / (time.time() - start_time))
            writer.add_scalar("charts/SPS", sps, global_step)
            writer.add_scalar("charts/epsilon", epsilon, global_step)
        if crossed(global_step, n_envs, 10_000) or iteration == num_iterations - 1:
            mean = np.mean(recent_returns or [np.nan])
            left = (args.total_timesteps - global_step) / max(sps, 1)  # seconds, at the steps/s so far
            done = f"step {global_step:,} of {args.total_timesteps:,} ({global_step / args.total_timesteps:.0%})"
            eta = f"{left // 3600:.0f} h {left % 3600 // 60:02.0f} min left"
            print(f"{done}  {sps:,} steps/s  {eta}  return {mean:.2f}  epsilon {epsilon:.3f}", flush=True)
        if args.checkpoint_frequency and crossed(global_step, n_envs, args.checkpoint_frequency):
            save_checkpoint()
        if stop_signal:
            break

    envs.close()
    returns = []
    if args.eval_episodes > 0 and not stop_signal:
        returns = evaluate(q_network, args, run_name, device, rng)
        for i, episodic_return in enumerate(returns):
            writer.add_scalar("eval/episodic_return", episodic_return, i)
    for video in sorted(glob.glob(f"videos/{run_name}*/*.mp4")) if args.track else []:
        wandb.log({"videos/" + video.split("/")[1]: wandb.Video(video)})
    if stop_signal:
        print(f"{SCRIPT}: stopped at step {global_step:,}; {keep_work()}", file=sys.stderr)
        sys.exit(128 + stop_signal[0])
    if args.save_model:
        save_model()
    writer.close()
    protocol = "CleanRL's hyperparameters and Atari protocol, scores of whole games"
    if args.upload_model and not push_to_hub(hub_folder(q_network, args, run_dir, returns, protocol), args):
        sys.exit(1)
