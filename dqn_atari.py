# DQN for Atari (Mnih et al. 2015, "Nature DQN"), one file, top to bottom. Docs: README.md
import contextlib
import difflib
import glob
import importlib.util
import json
import math
import os
import pickle
import random
import signal
import sys
import time
import warnings
import zipfile
from collections import deque
from dataclasses import dataclass, fields
from typing import Optional

import ale_py
import gymnasium as gym
import numpy as np
import psutil
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from stable_baselines3.common.atari_wrappers import ClipRewardEnv, EpisodicLifeEnv, FireResetEnv, MaxAndSkipEnv, NoopResetEnv, WarpFrame
from stable_baselines3.common.buffers import BaseBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from torch.utils.tensorboard import SummaryWriter

gym.register_envs(ale_py)  # the ALE/... and ...NoFrameskip-v4 ids, with the ROMs ale-py ships
ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)  # stderr is for errors


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment (part of the run folder's name)"""
    seed: int = 1
    """seed of the experiment: Python, NumPy, torch and the environments"""
    torch_deterministic: bool = True
    """if toggled, `torch.backends.cudnn.deterministic=True`"""
    cuda: bool = True
    """if toggled, use CUDA when it is available (otherwise the CPU, with a warning)"""
    torch_threads: int = 0
    """CPU threads for torch (0 = torch's default, one per core: fastest for the CNN update)"""
    capture_video: bool = False
    """if toggled, record videos of the evaluation games into `videos/{run_name}-eval`"""
    save_model: bool = False
    """if toggled, save the Q-network's state_dict into the run folder"""
    track: bool = False
    """if toggled, track the run with Weights & Biases (`pip install wandb`): the TensorBoard scalars, config, code, videos"""
    wandb_project_name: str = "cleanRL"
    """the W&B project"""
    wandb_entity: Optional[str] = None
    """the W&B entity (user or team); None = your default one"""

    # Algorithm specific arguments
    env_id: str = "BreakoutNoFrameskip-v4"
    """the id of the Atari environment: `BreakoutNoFrameskip-v4`, `ALE/Pong-v5`, ... (4 emulator frames per step whatever the id's frame skip)"""
    total_timesteps: int = 10000000
    """total environment (agent) steps, summed over all parallel environments (raised with --resume: the run goes on; epsilon's decay keeps its length in steps, so it stays at end-e)"""
    learning_rate: float = 1e-4
    """the learning rate of the optimizer"""
    num_envs: int = 1
    """the number of parallel environments; each loop iteration takes one step in each of them"""
    buffer_size: int = 1000000
    """the replay memory capacity, in transitions (summed over all environments)"""
    gamma: float = 0.99
    """the discount factor gamma"""
    tau: float = 1.0
    """the target network update rate: target <- tau * online + (1 - tau) * target (1.0 = hard copy)"""
    target_network_frequency: int = 1000
    """the target network is updated every this many environment steps (summed over all environments)"""
    batch_size: int = 32
    """the batch size of sample from the replay memory"""
    start_e: float = 1
    """the starting epsilon for exploration"""
    end_e: float = 0.01
    """the ending epsilon for exploration (also used for the evaluation games)"""
    exploration_fraction: float = 0.10
    """the fraction of `total-timesteps` over which epsilon falls linearly from start-e to end-e"""
    learning_starts: int = 80000
    """the number of environment steps (summed over all environments) before learning starts"""
    train_frequency: int = 4
    """one gradient update every this many environment steps (summed over all environments), whatever num-envs is"""
    eval_episodes: int = 10
    """the number of evaluation games (epsilon = end-e) after training; 0 skips evaluation"""

    # Checkpoints (Ctrl-C or SIGTERM always saves the model and a checkpoint, then exits 130 or 143)
    checkpoint_frequency: int = 0
    """write a resumable checkpoint into the run folder every this many environment steps (0 = off)"""
    checkpoint_buffer: bool = True
    """include the replay buffer in checkpoints; without it a resumed run collects learning-starts steps before it learns again"""
    resume: Optional[str] = None
    """continue the run of this checkpoint (its run folder or checkpoint folder); flags not given keep its values, flags given must equal them, but --total-timesteps may grow"""
    eval_checkpoint: Optional[str] = None
    """only evaluate this saved model (a model file, a checkpoint or a run folder) on --env-id for --eval-episodes"""


def make_env(env_id, seed, capture_video=False, run_name=""):
    """CleanRL's and SB3's Atari protocol (DeepMind's), as a wrapper list: edit it to change what the agent sees."""

    def thunk():
        env = gym.make(env_id, frameskip=1, render_mode="rgb_array" if capture_video else None)
        if capture_video:  # every game, in full colour
            env = gym.wrappers.RecordVideo(env, f"videos/{run_name}", episode_trigger=lambda game: True)
        env = gym.wrappers.RecordEpisodeStatistics(env)  # the whole game: its unclipped score, its emulator frames
        env = NoopResetEnv(env, noop_max=30)
        env = MaxAndSkipEnv(env, skip=4)  # 4 frames per step, the max over the last two
        env = EpisodicLifeEnv(env)  # a lost life ends the training episode; the game goes on
        if "FIRE" in env.unwrapped.get_action_meanings():
            env = FireResetEnv(env)  # FIRE (and action 2) after each reset and each lost life, unstored
        env = ClipRewardEnv(env)  # training rewards: their sign
        env = gym.wrappers.ReshapeObservation(WarpFrame(env), (84, 84))  # 84x84 grayscale, as SB3 makes it
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
    """SB3's ReplayBuffer that stores each 84x84 frame once instead of two 4-frame stacks per transition.

    Frame row m holds the newest frame of the m-th observation added. Observation n is rebuilt from rows n-3..n
    and its next observation from rows n-2..n+1, where frames from before the episode's first frame are copies of
    it, as the env's own stack has them. Where an episode ends, row n+1 (its last frame) is reused by the next
    episode's first frame, so the last frame is kept aside first: no transition ever bootstraps from another episode.
    """

    def __init__(self, buffer_size, observation_space, action_space, device="cpu", n_envs=1):
        BaseBuffer.__init__(self, buffer_size, observation_space, action_space, device, n_envs=n_envs)
        self.buffer_size = max(buffer_size // n_envs, 1)  # transitions per env, as in SB3
        self.optimize_memory_usage = False
        self.stack = observation_space.shape[0]
        rows = self.buffer_size + self.stack  # the oldest observation's 3 earlier frames and the newest next frame
        self.frames = np.zeros((rows, n_envs, *observation_space.shape[1:]), observation_space.dtype)
        self.starts = np.zeros((rows, n_envs), bool)  # row m is the first frame of an episode
        self.actions = np.zeros((self.buffer_size, n_envs, 1), action_space.dtype)
        self.rewards = np.zeros((self.buffer_size, n_envs), np.float32)
        self.dones = np.zeros((self.buffer_size, n_envs), np.float32)
        self.last_frames = {}  # (transition number, env) -> last frame of an episode, for its last transition
        self.added, self.last_next_obs = 0, None

    @staticmethod
    def nbytes(buffer_size, observation_space):
        frame = np.prod(observation_space.shape[1:]) * observation_space.dtype.itemsize
        return (buffer_size + 4) * (frame + 1) + buffer_size * (8 + 4 + 4)

    def add(self, obs, next_obs, action, reward, done, infos):
        n, rows = self.added, len(self.frames)
        starts = np.ones(self.n_envs, bool) if n == 0 else (obs != self.last_next_obs).reshape(self.n_envs, -1).any(1)
        for env in np.flatnonzero(starts):  # a new episode: its first frame takes row n, the last one moves aside
            if (obs[env] != obs[env, -1]).any():
                raise ValueError("FrameReplayBuffer: a new episode's frame stack must be copies of its first frame")
            if n > 0:
                self.last_frames[(n - 1, env)] = self.frames[n % rows, env].copy()
        for env in range(self.n_envs):  # transition n - buffer_size leaves the buffer now
            self.last_frames.pop((n - self.buffer_size, env), None)
        self.frames[n % rows], self.starts[n % rows] = obs[:, -1], starts
        self.frames[(n + 1) % rows], self.starts[(n + 1) % rows] = next_obs[:, -1], False
        self.last_next_obs = next_obs.copy()
        self.actions[self.pos] = action.reshape(self.n_envs, 1)
        self.rewards[self.pos], self.dones[self.pos] = reward, done
        self.added += 1
        self.pos = (self.pos + 1) % self.buffer_size
        self.full = self.full or self.pos == 0

    def _get_samples(self, batch_inds, env=None):
        env_inds = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        n = self.added - 1 - (self.pos - 1 - batch_inds) % self.buffer_size  # the transitions' numbers
        rows = (n[:, None] + np.arange(1 - self.stack, 2)) % len(self.frames)  # n-3 .. n+1
        # a frame before the latest episode start within rows n-2..n is that start's frame (the env's stack repeats it)
        latest = (self.starts[rows[:, 1 : self.stack], env_inds[:, None]] * np.arange(1, self.stack)).max(1)
        frames = self.frames[np.take_along_axis(rows, np.maximum(np.arange(self.stack + 1), latest[:, None]), 1), env_inds[:, None]]
        for b in np.flatnonzero(self.starts[rows[:, -1], env_inds]):  # row n+1 is a new episode's: use the ended episode's last frame
            frames[b, -1] = self.last_frames[(n[b], env_inds[b])]
        # two host-to-device copies per batch: the frames, and the actions, dones and rewards as one float32 array
        frames, small = self.to_torch(frames), self.to_torch(np.stack(
            [self.actions[batch_inds, env_inds, 0], self.dones[batch_inds, env_inds], self.rewards[batch_inds, env_inds]], 1, dtype=np.float32))
        return ReplayBufferSamples(frames[:, :-1], small[:, :1].long(), frames[:, 1:], small[:, 1:2], small[:, 2:])


def linear_schedule(start_e: float, end_e: float, duration: float, t: int):
    slope = (end_e - start_e) / duration
    return max(slope * t + start_e, end_e)


def crossed(step, n_steps, every):
    """True when the last `n_steps` steps, ending at `step`, passed a multiple of `every`."""
    return step // every > (step - n_steps) // every


def check_args(args):
    """Returns every problem with the arguments, one message each."""
    flags = {f"--{k.replace('_', '-')} ": v for k, v in vars(args).items()}
    nan_or_inf = tuple(k for k, v in flags.items() if isinstance(v, float) and not math.isfinite(v))
    rules = [
        (args.exp_name not in ("", ".", "..") and "/" not in args.exp_name and "\0" not in args.exp_name,
         f"--exp-name must be a name, not a path (no '/', not empty, '.' or '..'), got {args.exp_name!r}"),
        (len(f"{args.env_id}{args.exp_name}".encode()) <= 200, "--exp-name: the run folder's name would be too long"),
        (args.total_timesteps > 0, f"--total-timesteps must be > 0, got {args.total_timesteps}"),
        (0 <= args.seed < 2**32, f"--seed must be in [0, 2**32), got {args.seed}"),
        (1 <= args.num_envs <= min(1024, args.buffer_size), f"--num-envs must be in [1, min(1024, buffer-size)], got {args.num_envs}"),
        (args.buffer_size >= 1, f"--buffer-size must be >= 1, got {args.buffer_size}"),
        (args.batch_size >= 1, f"--batch-size must be >= 1, got {args.batch_size}"),
        (args.batch_size <= args.buffer_size, f"--batch-size ({args.batch_size}) must not exceed --buffer-size ({args.buffer_size})"),
        (0 <= args.gamma <= 1, f"--gamma must be in [0, 1], got {args.gamma}"),
        (0 < args.tau <= 1, f"--tau must be in (0, 1], got {args.tau}"),
        (0 <= args.start_e <= 1 and 0 <= args.end_e <= 1, f"--start-e and --end-e must be in [0, 1], got {args.start_e} and {args.end_e}"),
        (args.end_e <= args.start_e, f"--end-e ({args.end_e}) must not exceed --start-e ({args.start_e})"),
        (0 < args.exploration_fraction <= 1, f"--exploration-fraction must be in (0, 1], got {args.exploration_fraction}"),
        (0 <= args.learning_starts < args.total_timesteps, f"--learning-starts must be in [0, total-timesteps), got {args.learning_starts}"),
        (args.train_frequency >= 1 and args.target_network_frequency >= 1, "--train-frequency and --target-network-frequency must be >= 1"),
        (args.learning_rate > 0, f"--learning-rate must be > 0, got {args.learning_rate}"),
        (args.eval_episodes >= 0, f"--eval-episodes must be >= 0, got {args.eval_episodes}"),
        (0 <= args.torch_threads <= os.cpu_count(), f"--torch-threads must be in [0, {os.cpu_count()}], got {args.torch_threads}"),
        (args.checkpoint_frequency >= 0, f"--checkpoint-frequency must be >= 0, got {args.checkpoint_frequency}"),
        (args.eval_episodes > 0 or not args.eval_checkpoint, "--eval-checkpoint needs --eval-episodes > 0"),
        (not args.track or importlib.util.find_spec("wandb"), "--track needs Weights & Biases, which is not installed: pip install wandb"),
    ]
    return [message for ok, message in rules if not ok and not message.startswith(nan_or_inf)] + [
        f"{k}must be a finite number, got {flags[k]}" for k in nan_or_inf]


def check_env(env_id):
    """Returns the problems that keep `env_id` from training here, one message each."""
    atari_ids = [k for k, s in gym.registry.items() if str(s.entry_point).startswith("ale_py")]
    if env_id not in atari_ids:
        close = difflib.get_close_matches(env_id, atari_ids, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else "for other envs use dqn.py"
        return [f"'{env_id}' is not an Atari env id ({hint})"]
    return []


def check_memory(buffer_size, nbytes):
    """The problem, if any, of a replay memory of nbytes(buffer_size) bytes that does not fit in the available memory
    (1 GiB kept for the rest of the process)."""
    available = psutil.virtual_memory().available
    fits = max((available - 2**30 - nbytes(0)) // (nbytes(1) - nbytes(0)), 0)
    return [] if buffer_size <= fits else [
        f"the replay buffer needs {nbytes(buffer_size) / 2**30:.1f} GiB but {available / 2**30:.1f} GiB is available "
        f"(1 GiB kept for the rest): the largest --buffer-size that fits is {int(fits):,}"]


# Robustness: bad input, signals and checkpoints. None of it changes the algorithm.
SCRIPT = os.path.basename(__file__)
stop_signal = []  # the signal (SIGINT, SIGTERM) that asked the run to stop, if any
RINGS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts", "frames", "starts")
BLOCK_BYTES = 2**25  # the replay memory is saved in files of about 32 MiB
warnings.filterwarnings("ignore", "Detected pickle protocol")  # torch.load's, about a file it did not write


def fail(*problems):
    sys.exit("\n".join(f"{SCRIPT}: error: {problem}" for problem in problems))


def on_signal(signum, frame):
    if stop_signal:  # a second Ctrl-C: exit at once
        os._exit(128 + signum)
    stop_signal.append(signum)
    print(f"{SCRIPT}: {signal.Signals(signum).name}: finishing this step, then saving (press Ctrl-C again to exit at once)",
          file=sys.stderr, flush=True)


def load_tensors(path):
    """torch.load with weights_only: tensors and plain values; a file that pickles any other object is refused, and
    so is one whose bytes fail their zip checksums (torch.load does not check them)."""
    try:
        with zipfile.ZipFile(path) as z:
            if z.testzip():
                raise ValueError(f"'{path}' is damaged: its {z.testzip()} fails its checksum")
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        fail(f"'{path}' holds pickled Python objects besides tensors, which can run code when loaded: refused")


def read_checkpoint(path):
    """The manifest and tensors of a checkpoint of this script (its run folder, its folder or its checkpoint.json).
    Nothing in it runs code: JSON, tensors loaded with weights_only, arrays loaded without pickle (load_buffer)."""
    nested = os.path.join(path, "checkpoint")
    folder = nested if os.path.isdir(nested) else os.path.dirname(path) if path.endswith(".json") else path
    pickled = path if path.endswith(".pkl") else os.path.join(path, "checkpoint.pkl")  # an earlier version's checkpoint
    if path.endswith(".pkl") or os.path.exists(pickled) and folder == path:
        fail(f"'{pickled}' is a pickle, which can run any code when loaded: this version loads only its own safe checkpoints")
    try:
        manifest, defaults = read_json(os.path.join(folder, "checkpoint.json")), vars(Args())
        saved, step = manifest["args"], manifest["global_step"]
        kinds = {f.name: (float, int) if f.type is float else (f.type,) if isinstance(f.type, type) else (str, type(None))
                 for f in fields(Args)}  # a flag's JSON value: of its type (an int is a float too; Optional[str])
        wrong = [k for k, v in saved.items() if type(v) not in kinds.get(k, ())]  # also flags this script no longer has
        if manifest.get("script") != SCRIPT or manifest.get("format") != 1 or wrong or type(step) is not int or not (
                0 <= step <= saved["total_timesteps"] and 0 < manifest["exploration_steps"] < math.inf
                and manifest["state"] == os.path.basename(manifest["state"])):
            fail(f"'{path}' is not a checkpoint of this version of {SCRIPT}" + (f" (its {', '.join(wrong)})" if wrong else ""))
        for k in defaults.keys() - saved.keys():  # a flag added since the checkpoint was written
            print(f"{SCRIPT}: note: --{k.replace('_', '-')} is not in the checkpoint: it takes its default, {defaults[k]}",
                  file=sys.stderr)
        manifest["args"] = {**defaults, **saved}
        manifest["folder"], manifest["tensors"] = folder, load_tensors(os.path.join(folder, manifest["state"]))
        return manifest
    except SystemExit:
        raise
    except Exception as e:
        fail(f"cannot read checkpoint '{path}': {type(e).__name__}: {' '.join(str(e).split())[:300]}")


def load_weights(network, tensors):
    """network.load_state_dict(tensors), but a tensor of another dtype (which it would cast) is refused too."""
    mine = network.state_dict()
    wrong = [k for k, v in tensors.items() if k in mine and (not torch.is_tensor(v) or v.dtype != mine[k].dtype)]
    if wrong:
        raise ValueError(f"{', '.join(wrong)}: not {mine[wrong[0]].dtype} tensors")
    network.load_state_dict(tensors)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def durable(path, write):
    with open(path, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def save_buffer(rb, added, folder, old):
    """Saves the replay memory in files of `rows` rows, writing only those with rows added since the last save (`old`,
    its manifest entry); returns this save's entry. A ring array holds row k at slot k % len: transition k (the k-th add),
    or frame k in FrameReplayBuffer's longer frame ring, which runs ahead. Rows before added - buffer_size are gone."""
    rings = {k: getattr(rb, k) for k in RINGS if hasattr(rb, k)}
    end = {k: added + len(a) - rb.buffer_size for k, a in rings.items()}  # one past each ring's newest row
    rows = old["rows"] if old else max(1, BLOCK_BYTES // sum(a[0].nbytes for a in rings.values()))
    kept, since = ({int(f.split(".")[1]): f for f in old["files"]}, old["added"]) if old else ({}, -1)
    files, last_frames, stop = [], getattr(rb, "last_frames", {}), -(-max(end.values()) // rows)
    for b in range(max(added - rb.buffer_size, 0) // rows, stop):
        if b in kept and (b < (since - 1) // rows or since == added):  # not a row of it changed since the last save
            files.append(kept[b])
            continue
        lo, hi = b * rows, (b + 1) * rows
        arrays = {k: a[np.arange(max(lo, end[k] - len(a)), min(hi, end[k])) % len(a)] for k, a in rings.items()}
        keys = sorted(key for key in last_frames if lo <= key[0] < hi)  # (transition, env) -> an episode's last frame
        if keys:
            arrays.update(last_frames_keys=np.array(keys), last_frames=np.stack([last_frames[key] for key in keys]))
        if b == stop - 1 and getattr(rb, "last_next_obs", None) is not None:
            arrays["last_next_obs"] = rb.last_next_obs
        files.append(f"buffer.{b}.{added}.npz")
        durable(os.path.join(folder, files[-1]), lambda f: np.savez(f, **arrays))
    return {"added": added, "rows": rows, "files": files}


def load_buffer(rb, folder, entry):
    """Puts every row that save_buffer wrote back at its slot, and the counters as they were."""
    added, rows, oldest = entry["added"], entry["rows"], entry["added"] - rb.buffer_size
    for name in entry["files"]:
        b, written = map(int, name.split(".")[1:3])
        with np.load(os.path.join(folder, name), allow_pickle=False) as f:
            for k in [k for k in RINGS if hasattr(rb, k)]:
                a, saved = getattr(rb, k), f[k]
                end = written + len(a) - rb.buffer_size  # one past this ring's newest row
                shape = (min((b + 1) * rows, end) - max(b * rows, end - len(a)), *a.shape[1:])
                if saved.dtype != a.dtype or saved.shape != shape:
                    raise ValueError(f"{name}: {k} is {saved.dtype} {saved.shape}, not {a.dtype} {shape}")
                r = np.arange(-len(saved), 0) + min((b + 1) * rows, end)
                a[r[r >= oldest] % len(a)] = saved[r >= oldest]
            if {"last_frames", "last_frames_keys"} & set(f.files):
                keys, frames = f["last_frames_keys"], f["last_frames"]
                if keys.shape != (len(frames), 2) or frames.shape[1:] != rb.frames.shape[2:] or frames.dtype != np.uint8:
                    raise ValueError(f"{name}: last_frames_keys {keys.shape} and last_frames {frames.shape} do not fit")
                rb.last_frames.update((tuple(key), frame) for key, frame in zip(keys.tolist(), frames) if key[0] >= oldest)
            if "last_next_obs" in f.files:
                rb.last_next_obs = f["last_next_obs"]
                if rb.last_next_obs.shape != (rb.n_envs, *rb.obs_shape) or rb.last_next_obs.dtype != np.uint8:
                    raise ValueError(f"{name}: last_next_obs is {rb.last_next_obs.dtype} {rb.last_next_obs.shape}")
    rb.pos, rb.full, rb.added = added % rb.buffer_size, added >= rb.buffer_size, added


def write_checkpoint(state, run_dir):
    """Writes the networks and the replay memory's new rows into new files (named by step: a file a manifest names is
    never rewritten), commits them by replacing checkpoint.json in one rename, then deletes the files it does not name:
    a kill or a full disk at any moment leaves the last good checkpoint whole. Returns the folder, or None after a warning."""
    (manifest, tensors, rb, added), folder = state, os.path.join(run_dir, "checkpoint")
    path, old = os.path.join(folder, "checkpoint.json"), None  # None: unreadable, so nothing is deleted
    try:
        old = read_json(path) if os.path.exists(path) else {}
        os.makedirs(folder, exist_ok=True)
        manifest["state"] = f"state.{manifest['global_step']}.pt"
        durable(os.path.join(folder, manifest["state"]), lambda f: torch.save(tensors, f))
        manifest["buffer"] = save_buffer(rb, added, folder, old.get("buffer")) if rb is not None else None
        durable(path + ".tmp", lambda f: f.write(json.dumps(manifest).encode()))
        os.replace(path + ".tmp", path)  # the commit
        old = manifest
        return folder
    except Exception as e:  # no space, no permission
        print(f"{SCRIPT}: warning: cannot write the checkpoint of step {manifest['global_step']:,} ({e}); the run goes on, "
              f"the last good checkpoint stays", file=sys.stderr, flush=True)
    finally:  # delete what the manifest does not name: the superseded, the evicted, what a failed or a killed save left
        keep = {"checkpoint.json", old["state"], *(old["buffer"] or {}).get("files", [])} if old else {"checkpoint.json"}
        with contextlib.suppress(OSError):
            for name in set(os.listdir(folder)) - keep if old is not None else []:
                os.remove(os.path.join(folder, name))


def load_model(q_network, path):
    """Loads a model file (--save-model), or the Q-network of a checkpoint or its run folder, into q_network."""
    folder = os.path.isdir(path) and not os.path.exists(os.path.join(path, "checkpoint.json"))  # a run folder
    models = sorted(f for f in os.listdir(path) if f.endswith(".pt")) if folder else []
    path = os.path.join(path, models[0]) if models else path
    try:
        checkpoint = os.path.isdir(path) or path.endswith((".json", ".pkl"))
        load_weights(q_network, read_checkpoint(path)["tensors"]["q_network"] if checkpoint else load_tensors(path))
    except SystemExit:
        raise
    except Exception as e:
        fail(f"cannot load a model for this env from '{path}': {' '.join(str(e).split())[:300]}")


def evaluate(q_network, args, run_name, device, rng):
    """Plays `eval_episodes` whole games with epsilon = end-e; returns their unclipped scores."""
    env = make_env(args.env_id, args.seed + 10_000, args.capture_video, f"{run_name}-eval")()
    obs, _ = env.reset(seed=args.seed + 10_000)
    scores = []
    while len(scores) < args.eval_episodes and not stop_signal:
        if rng.random() < args.end_e:
            action = rng.integers(env.action_space.n)
        else:
            with torch.no_grad():
                action = q_network(torch.as_tensor(obs[None], device=device)).argmax().item()
        obs, _, terminated, truncated, info = env.step(action)
        if "episode" in info:  # the game is over (a lost life only ends the training episode)
            scores.append(float(info["episode"]["r"]))
        if (terminated or truncated) and len(scores) < args.eval_episodes:  # (a reset starts the video of a game)
            obs, _ = env.reset()
    env.close()
    return scores


def parse_args(argv=None):
    """The run's flags and, with --resume, its checkpoint; on bad input, one line per problem and exit 1."""
    args = tyro.cli(Args, args=argv)
    saved = read_checkpoint(args.resume) if args.resume else None
    problems = []
    if saved:  # flags not given take the run's saved values; given ones must equal them, but --total-timesteps may change
        before, step = saved["args"], saved["global_step"]
        args = tyro.cli(Args, args=argv, default=Args(**{**before, "resume": args.resume}))
        problems = [f"--{k.replace('_', '-')}: the run was saved with {before[k]}, given {v}" for k, v in vars(args).items()
                    if v != before[k] and k not in ("resume", "total_timesteps")]
        if args.total_timesteps != before["total_timesteps"] and args.total_timesteps <= step:
            problems.append(f"--total-timesteps: the run was saved at step {step:,}, given {args.total_timesteps:,}")
    problems += check_args(args) + check_env(args.env_id)
    if not args.eval_checkpoint:
        problems += check_memory(args.buffer_size, lambda n: FrameReplayBuffer.nbytes(n, gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)))
    if problems:
        fail(*problems)
    return args, saved


if __name__ == "__main__":
    args, saved = parse_args()
    # epsilon's decay, in steps: a resumed run keeps it, whatever --total-timesteps becomes
    decay = saved["exploration_steps"] if saved else args.exploration_fraction * args.total_timesteps
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    # TRY NOT TO MODIFY: seeding
    random.seed(args.seed)
    np.random.seed(args.seed)  # the replay buffer samples with NumPy's global generator
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    rng = np.random.default_rng(args.seed)  # exploration
    if args.cuda and not torch.cuda.is_available():
        print(f"{SCRIPT}: warning: --cuda: CUDA is not available, running on the CPU", file=sys.stderr)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    n_envs, n_actions = args.num_envs, gym.make(args.env_id).action_space.n
    q_network = QNetwork(n_actions).to(device)
    if args.eval_checkpoint:  # evaluate a saved model, and nothing else
        load_model(q_network, args.eval_checkpoint)
        name = os.path.basename(os.path.normpath(args.eval_checkpoint))
        scores = evaluate(q_network, args, name, device, rng)
        print(f"eval: {np.mean(scores):.2f} +- {np.std(scores):.2f} over {len(scores)} games (epsilon {args.end_e})")
        sys.exit(128 + stop_signal[0] if stop_signal else 0)

    if saved:
        run_dir = os.path.dirname(os.path.abspath(saved["folder"]))
        run_name = os.path.basename(os.path.normpath(run_dir))
    else:
        run_name = f"{args.env_id.replace('/', '-').replace(':', '-')}__{args.exp_name}__{args.seed}__{int(time.time())}"
        while os.path.exists(f"runs/{run_name}"):  # two runs started in the same second: never share a folder
            run_name += "+"
        run_dir = f"runs/{run_name}"
    start_step = saved["global_step"] if saved else 0
    optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate, fused=True)  # one kernel for all tensors
    target_network = QNetwork(n_actions).to(device)
    target_network.load_state_dict(q_network.state_dict())

    frames = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)  # the env's stack of 4 84x84 grayscale frames
    rb = FrameReplayBuffer(args.buffer_size, frames, gym.spaces.Discrete(n_actions), device, n_envs)
    recent_returns = deque(maxlen=20)
    learning_starts = args.learning_starts
    if saved:  # everything but the episodes in flight, which restart; what does not fit is refused, nothing written
        try:
            load_weights(q_network, saved["tensors"]["q_network"])
            load_weights(target_network, saved["tensors"]["target_network"])
        except Exception as e:
            fail(f"the network saved in '{args.resume}' differs from QNetwork: {' '.join(str(e).split())[:300]}")
        try:
            optimizer.load_state_dict(saved["tensors"]["optimizer"])
            torch.set_rng_state(saved["tensors"]["torch_rng"])
            (version, key, gauss), numpy_state, rng.bit_generator.state = saved["rng"]
            random.setstate((version, tuple(key), gauss))
            np.random.set_state(tuple(numpy_state))
            recent_returns.extend(float(r) for r in saved["recent_returns"])
            if saved["buffer"]:
                load_buffer(rb, saved["folder"], saved["buffer"])
        except Exception as e:
            fail(f"cannot resume from '{args.resume}': {type(e).__name__}: {' '.join(str(e).split())[:300]}")
        if not saved["buffer"]:  # an empty buffer: collect experience again before learning
            learning_starts = start_step + args.learning_starts
        print(f"resumed {run_dir} at step {start_step:,}", flush=True)

    if args.track:  # the W&B run's id is the run folder's, so --resume continues it
        import wandb

        wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, sync_tensorboard=True, config=vars(args),
                   name=run_name, id=run_name.replace("+", "-"), resume="allow", save_code=True)
    writer = SummaryWriter(run_dir, purge_step=start_step + 1 if saved else None)  # hides points logged after the checkpoint
    if not saved:
        writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in vars(args).items()))

    # env setup: SAME_STEP autoreset returns the next episode's first observation at once and the
    # true last observation of the finished one in infos["final_obs"]
    envs = gym.vector.SyncVectorEnv(
        [make_env(args.env_id, args.seed + i) for i in range(args.num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )

    def checkpoint_state():  # plain values for JSON, tensors for torch.save, the buffer and its number of adds
        numpy_state = np.random.get_state()
        return ({"script": SCRIPT, "format": 1, "args": vars(args),
                 "exploration_steps": decay, "global_step": global_step, "recent_returns": [float(r) for r in recent_returns],
                 "rng": [random.getstate(), [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]], rng.bit_generator.state]},
                {"q_network": q_network.state_dict(), "target_network": target_network.state_dict(),
                 "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()},
                rb if args.checkpoint_buffer else None, global_step // n_envs)

    start_time = last_print = time.time()

    # TRY NOT TO MODIFY: start the game
    obs, _ = envs.reset(seed=args.seed + start_step)
    # All step counts below are environment steps summed over the environments: one loop iteration is
    # `n_envs` steps, and an event "every k steps" happens once per multiple of k the step count passes.
    num_iterations = -(-args.total_timesteps // n_envs)
    global_step = checkpointed = start_step
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

        # TRY NOT TO MODIFY: `terminations` include lost lives (the training episode ends, the game goes on). Where a
        # life or a game ended, next_obs is the next one's first observation and the true last one is in
        # infos["final_obs"]: a truncated game bootstraps from it. A game's score comes with the end of its last life.
        real_next_obs = next_obs
        if "final_obs" in infos:
            real_next_obs = next_obs.copy()
            for i in np.flatnonzero(infos["_final_obs"]):
                real_next_obs[i] = infos["final_obs"][i]
            games = infos["final_info"].get("_episode", ())
            for i in np.flatnonzero(games):
                writer.add_scalar("charts/episodic_return", infos["final_info"]["episode"]["r"][i], global_step)
                writer.add_scalar("charts/episodic_length", infos["final_info"]["episode"]["l"][i], global_step)
                recent_returns.append(infos["final_info"]["episode"]["r"][i])
        rb.add(obs, real_next_obs, actions, rewards, terminations, infos)

        # TRY NOT TO MODIFY: CRUCIAL step easy to overlook
        obs = next_obs

        # ALGO LOGIC: training.
        if global_step > learning_starts:
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
                td_loss, q_mean = torch.stack([loss, old_val.mean()]).tolist()  # one device sync for both
                writer.add_scalar("losses/td_loss", td_loss, global_step)
                writer.add_scalar("losses/q_values", q_mean, global_step)

            # update target network
            if crossed(global_step, n_envs, args.target_network_frequency):
                for target_param, q_param in zip(target_network.parameters(), q_network.parameters()):
                    target_param.data.copy_(args.tau * q_param.data + (1.0 - args.tau) * target_param.data)

        if crossed(global_step, n_envs, 100):
            writer.add_scalar("charts/SPS", int((global_step - start_step) / (time.time() - start_time)), global_step)
            writer.add_scalar("charts/epsilon", epsilon, global_step)
        if time.time() - last_print > 10 or iteration == num_iterations - 1:
            last_print = time.time()
            mean_return = f"{np.mean(recent_returns):.2f}" if recent_returns else "n/a"
            print(f"step {global_step:>9,}/{args.total_timesteps:,}  {int((global_step - start_step) / (last_print - start_time)):,} steps/s  "
                  f"return (last {len(recent_returns)}) {mean_return}  epsilon {epsilon:.3f}", flush=True)

        if args.checkpoint_frequency and crossed(global_step, n_envs, args.checkpoint_frequency):
            checkpointed = write_checkpoint(checkpoint_state(), run_dir) and global_step
        if stop_signal:
            break

    envs.close()
    if args.eval_episodes > 0 and not stop_signal:
        eval_returns = evaluate(q_network, args, run_name, device, rng)
        for i, score in enumerate(eval_returns):
            writer.add_scalar("eval/episodic_return", score, i)
        if eval_returns:
            print(f"eval: {np.mean(eval_returns):.2f} +- {np.std(eval_returns):.2f} over {len(eval_returns)} games (epsilon {args.end_e})")

    if args.track:  # (wandb's monitor_gym does not work with gymnasium 1.x's RecordVideo)
        for video in sorted(glob.glob(f"videos/{run_name}*/*.mp4")):
            wandb.log({f"videos/{os.path.basename(os.path.dirname(video))}": wandb.Video(video, format="mp4")})
    if args.save_model or stop_signal:
        model_path = f"{run_dir}/{args.exp_name}.pt"
        torch.save(q_network.state_dict(), model_path)
        print(f"model saved to {model_path}")
    if stop_signal:
        saved = checkpointed == global_step or write_checkpoint(checkpoint_state(), run_dir)  # once per step is enough
        writer.close()
        print(f"{SCRIPT}: stopped at step {global_step:,}; model and " + (f"checkpoint in {run_dir}: continue with --resume {run_dir}"
              if saved else f"no new checkpoint in {run_dir}"), file=sys.stderr)
        sys.exit(128 + stop_signal[0])

    writer.close()
