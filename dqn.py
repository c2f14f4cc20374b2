# DQN (Mnih et al. 2015) for classic control, one file. Docs: README.md and docs/
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

import gymnasium as gym
import numpy as np
import psutil
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from stable_baselines3.common.buffers import ReplayBuffer
from torch.utils.tensorboard import SummaryWriter


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
    torch_threads: int = 1
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
    env_id: str = "CartPole-v1"
    """the id of the environment (or `my_module:MyEnv-v0`)"""
    total_timesteps: int = 500000
    """total timesteps of the experiments (summed over all environments)"""
    learning_rate: float = 2.5e-4
    """the learning rate of the optimizer"""
    num_envs: int = 1
    """the number of parallel game environments"""
    buffer_size: int = 10000
    """the replay memory buffer size"""
    gamma: float = 0.99
    """the discount factor gamma"""
    tau: float = 1.0
    """the target network update rate"""
    target_network_frequency: int = 500
    """the timesteps it takes to update the target network"""
    batch_size: int = 128
    """the batch size of sample from the reply memory"""
    start_e: float = 1.0
    """the starting epsilon for exploration"""
    end_e: float = 0.05
    """the ending epsilon for exploration (and evaluation)"""
    exploration_fraction: float = 0.5
    """the fraction of `total-timesteps` it takes from start-e to go end-e"""
    learning_starts: int = 10000
    """timestep to start learning"""
    train_frequency: int = 10
    """the frequency of training"""
    eval_episodes: int = 10
    """the number of evaluation episodes after training"""
    checkpoint_frequency: int = 0
    """the timesteps between checkpoints (0: only on Ctrl-C or SIGTERM)"""
    resume: str | None = None
    """continue this run (folder or checkpoint) with its flags; --total-timesteps may grow"""
    eval_checkpoint: str | None = None
    """only evaluate this model, checkpoint or run folder"""


def make_env(env_id, seed, idx, capture_video, run_name):
    def thunk():
        if capture_video and idx == 0:
            env = gym.wrappers.RecordVideo(gym.make(env_id, render_mode="rgb_array"), f"videos/{run_name}")
        else:
            env = gym.make(env_id)
        env = gym.wrappers.RecordEpisodeStatistics(env)
        env.action_space.seed(seed)
        return env

    return thunk


class QNetwork(nn.Module):
    def __init__(self, obs_dim, n_actions):
        super().__init__()
        self.network = nn.Sequential(
            nn.Linear(obs_dim, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, n_actions),
        )

    def forward(self, x):
        return self.network(x)


def linear_schedule(start_e: float, end_e: float, duration: float, t: int):
    slope = (end_e - start_e) / duration
    return max(slope * t + start_e, end_e)


def crossed(step, n_steps, every):
    return step // every > (step - n_steps) // every


# ---- Robustness: bad input, signals, checkpoints ----
SCRIPT = os.path.basename(__file__)
stop_signal = []


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
        env = gym.make(a.env_id)
    except Exception as e:
        hint = " (use dqn_atari.py)" * ("ALE/" in a.env_id or "NoFrameskip" in a.env_id)
        return problems + [f"--env-id {a.env_id}: {type(e).__name__}: {e}{hint}"]
    space, actions = env.observation_space, env.action_space
    if not isinstance(actions, gym.spaces.Discrete):
        problems.append(f"--env-id {a.env_id}: {actions} actions, not Discrete ones")
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        return problems + [f"--env-id {a.env_id}: {space} observations, not a flat Box"]
    if (need := a.buffer_size * (8 * space.shape[0] + 20)) > psutil.virtual_memory().available:  # SB3's bytes
        problems.append(f"--buffer-size needs {need / 2**30:.1f} GiB, more than is free")
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
    if isinstance(fresh, dict):
        return isinstance(saved, dict) and saved.keys() == fresh.keys() and all(fits(saved[k], fresh[k]) for k in fresh)
    if torch.is_tensor(fresh):
        return torch.is_tensor(saved) and (saved.shape, saved.dtype) == (fresh.shape, fresh.dtype)
    return type(saved) is type(fresh) or (type(fresh), type(saved)) in ((float, int), (type(None), str))


def write_checkpoint(state, run_dir):
    path = os.path.join(run_dir, "checkpoint", "checkpoint.pt")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "wb") as f:
            torch.save(state, f)
            os.fsync(f.fileno())
        os.replace(path + ".tmp", path)
        return True
    except Exception as e:
        print(f"{SCRIPT}: warning: checkpoint of step {state['global_step']:,} not written: {e}", file=sys.stderr)
        with contextlib.suppress(OSError):
            os.remove(path + ".tmp")


@torch.no_grad()
def evaluate(q_network, args, run_name, device, rng):
    env = make_env(args.env_id, args.seed + 10_000, 0, args.capture_video, f"{run_name}-eval")()
    obs, _ = env.reset(seed=args.seed + 10_000)
    returns = []
    while len(returns) < args.eval_episodes and not stop_signal:
        q_values = q_network(torch.Tensor(obs[None]).to(device))
        action = rng.integers(env.action_space.n) if rng.random() < args.end_e else q_values.argmax().item()
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            returns.append(float(info["episode"]["r"]))
            obs, _ = env.reset()
    env.close()
    print(f"eval: {np.mean(returns):.2f} +- {np.std(returns):.2f} over {len(returns)} episodes")
    return returns


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
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    rng = np.random.default_rng(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    probe = gym.make(args.env_id)
    obs_dim, n_actions = probe.observation_space.shape[0], probe.action_space.n
    q_network = QNetwork(obs_dim, n_actions).to(device)
    if path := args.eval_checkpoint:
        saved = load_tensors((glob.glob(f"{glob.escape(path)}/*.pt") or [path])[0])[0]
        try:
            q_network.load_state_dict(saved.get("q_network", saved))
        except Exception:
            fail(f"the network in '{path}' differs from QNetwork for this env")
        evaluate(q_network, args, os.path.basename(os.path.normpath(path)), device, rng)
        sys.exit(128 + stop_signal[0] if stop_signal else 0)
    optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate, fused=True)
    target_network = QNetwork(obs_dim, n_actions).to(device)
    target_network.load_state_dict(q_network.state_dict())
    obs_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
    rb = ReplayBuffer(
        args.buffer_size, obs_space, probe.action_space, device, n_envs=args.num_envs, handle_timeout_termination=False
    )
    recent_returns = deque(maxlen=20)
    global_step = start_step = saved["global_step"] if saved else 0
    trained = dict(q_network=q_network, target_network=target_network, optimizer=optimizer)

    def checkpoint():
        _, key, *numpy_state = np.random.get_state()
        buffer = {k: torch.from_numpy(v) for k, v in vars(rb).items() if isinstance(v, np.ndarray)}
        return dict(
            args=vars(args),
            global_step=global_step,
            exploration_steps=decay,
            **{k: v.state_dict() for k, v in trained.items()},
            rng=[torch.get_rng_state(), key.tolist(), numpy_state, rng.bit_generator.state],
            buffer={**buffer, "pos": rb.pos, "full": rb.full},
        )

    if saved:
        wrong = [k for k, v in checkpoint().items() if k not in ("args", "optimizer") and not fits(saved.get(k), v)]
        if wrong:
            fail(f"the {', '.join(wrong)} saved in '{saved['path']}' differ from this script's")
        try:
            for k, v in trained.items():
                v.load_state_dict(saved[k])
            torch_state, key, numpy_state, rng.bit_generator.state = saved["rng"]
            torch.set_rng_state(torch_state)
            np.random.set_state(("MT19937", np.array(key, np.uint32), *numpy_state))
            for k, v in saved["buffer"].items():
                setattr(rb, k, v.numpy().copy() if torch.is_tensor(v) else v)
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
        [make_env(args.env_id, args.seed + i, i, args.capture_video, run_name) for i in range(args.num_envs)],
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
                q_values = q_network(torch.as_tensor(obs, device=device).float())
            actions = np.where(explore, actions, q_values.argmax(dim=1).cpu().numpy())

        # TRY NOT TO MODIFY: execute the game and log data.
        next_obs, rewards, terminations, truncations, infos = envs.step(actions)
        global_step += n_envs

        # TRY NOT TO MODIFY: a truncated episode bootstraps from its true last observation
        real_next_obs = next_obs.copy() if "final_obs" in infos else next_obs
        for i in np.flatnonzero(infos.get("_final_obs", [])):
            real_next_obs[i] = infos["final_obs"][i]
            episode = infos["final_info"]["episode"]
            writer.add_scalar("charts/episodic_return", episode["r"][i], global_step)
            writer.add_scalar("charts/episodic_length", episode["l"][i], global_step)
            recent_returns.append(episode["r"][i])
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
