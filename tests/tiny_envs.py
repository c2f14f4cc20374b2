"""Tiny environments whose right answers are known, for testing DQN's rules.

Run the scripts on them with gymnasium's `module:EnvName-v0` syntax, e.g. `--env-id tiny_envs:Counter-v0`
(with this folder on PYTHONPATH), which is also how a user trains on an environment of their own.
"""

import os

import gymnasium as gym
import numpy as np


class CounterEnv(gym.Env):
    """Observation [episode number, step in episode]. Odd episodes terminate after 3 steps; even ones run
    until the TimeLimit truncates them (4 steps). Reward 1 per step. The observation tells which episode and
    step each stored transition came from."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(0, np.inf, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.episode = -1

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.episode, self.t = self.episode + 1, 0
        return np.array([self.episode, self.t], np.float32), {}

    def step(self, action):
        self.t += 1
        terminated = self.episode % 2 == 1 and self.t == 3
        return np.array([self.episode, self.t], np.float32), 1.0, terminated, False, {}


class ConstantEnv(gym.Env):
    """One state, reward 1 per step. With `terminate=True` every episode ends (terminated) after one step,
    so Q = 1. Otherwise the task never ends but a TimeLimit cuts episodes at 3 steps: a correct DQN
    bootstraps through the cut and learns Q = 1 / (1 - gamma); one that mistook the cut for a terminal
    state would learn less (1.5 for gamma = 0.5)."""

    def __init__(self, terminate=False):
        self.observation_space = gym.spaces.Box(-1, 1, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.terminate = terminate

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        return np.zeros(1, np.float32), 1.0, self.terminate, False, {}


class StartThenGoalEnv(gym.Env):
    """Two states: the start (observation 0, reward 0) leads to the goal (observation 1), which pays 1 per step and
    never ends; a TimeLimit cuts episodes at 3 steps. With gamma = 0.5, Q(goal) = 1 / (1 - 0.5) = 2 and Q(start) = 1.
    A DQN that bootstraps a cut episode from the next episode's first observation (the start) learns Q(goal) = 1.6;
    one that takes the cut for a terminal state learns 4/3."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(0, 1, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.state = 0.0
        return np.array([self.state], np.float32), {}

    def step(self, action):
        reward, self.state = self.state, 1.0
        return np.array([self.state], np.float32), reward, False, False, {}


class ImageEnv(ConstantEnv):
    """Image observations: not for dqn.py's MLP."""

    def __init__(self):
        super().__init__()
        self.observation_space = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)


class ContinuousImageEnv(ImageEnv):
    """Image observations and continuous actions: two problems for dqn.py."""

    def __init__(self):
        super().__init__()
        self.action_space = gym.spaces.Box(-1, 1, (2,), np.float32)


gym.register("Counter-v0", entry_point=CounterEnv, max_episode_steps=4)
gym.register("Terminating-v0", entry_point=ConstantEnv, kwargs={"terminate": True})
gym.register("Truncating-v0", entry_point=ConstantEnv, max_episode_steps=3)
gym.register("StartThenGoal-v0", entry_point=StartThenGoalEnv, max_episode_steps=3)
gym.register("Image-v0", entry_point=ImageEnv)
gym.register("ContinuousImage-v0", entry_point=ContinuousImageEnv)


class FailingEnv(CounterEnv):
    """CounterEnv that raises at its step number FAIL_AT (an environment variable), as a user's own env might."""

    steps = 0

    def step(self, action):
        self.steps += 1
        if self.steps == int(os.environ.get("FAIL_AT", 0)):
            raise RuntimeError(f"the env broke at its step {self.steps}")
        return super().step(action)


gym.register("Failing-v0", entry_point=FailingEnv, max_episode_steps=4)
