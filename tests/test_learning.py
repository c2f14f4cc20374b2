"""Both scripts learn: their own update, run in their own loop, equals a reference Adam step, and on a fixed replay
batch with a frozen target it drives the TD loss down and Q toward the targets."""

import copy
import os
import runpy
import sys

import pytest
import torch
import torch.nn.functional as F

from conftest import ROOT

RUNS = {  # short runs that learn at every step from early on, with a target network that is never updated
    "dqn.py": ["--env-id", "CartPole-v1", "--total-timesteps", 500, "--learning-starts", 200, "--buffer-size", 500],
    "dqn_atari.py": ["--total-timesteps", 300, "--learning-starts", 100, "--buffer-size", 300],
}
COMMON = ["--train-frequency", 1, "--target-network-frequency", 10**6, "--eval-episodes", 0, "--no-cuda"]


def run(monkeypatch, workdir, script, *flags, fixed_batch=False):
    """Runs the script in-process. Records each optimizer step: the parameters, gradients and optimizer state before it,
    and the parameters after it; and each update's batch and TD target. With `fixed_batch`, every sample is the first
    one, its rewards made to differ from one transition to the next (so only a network that reads its input fits it)."""
    import stable_baselines3.common.buffers as buffers

    steps, batches, targets = [], [], []

    class SpyAdam(torch.optim.Adam):
        def step(self, closure=None):
            if len(steps) >= 3:  # (the first updates are checked in full; the rest only counted)
                steps.append(None)
                return super().step(closure)
            params = self.param_groups[0]["params"]
            before = dict(
                params=[p.detach().clone() for p in params],
                grads=[p.grad.detach().clone() for p in params],
                state=copy.deepcopy(self.state_dict()),
                defaults={k: self.defaults[k] for k in ("lr", "betas", "eps", "weight_decay", "amsgrad")},
            )
            result = super().step(closure)
            steps.append({**before, "after": [p.detach().clone() for p in params], "optimizer": self})
            return result

    sample = buffers.ReplayBuffer.sample

    def spy_sample(self, batch_size, env=None):
        if fixed_batch and batches:
            return batches[0]
        data = sample(self, batch_size, env)
        if fixed_batch:
            rewards = torch.arange(batch_size, dtype=torch.float32).remainder(3).reshape(-1, 1)  # 0, 1, 2, 0, ...
            data = data._replace(rewards=rewards, dones=torch.zeros_like(data.dones))
        batches.append(data)
        return data

    mse_loss = F.mse_loss

    def spy_mse(td_target, old_val):
        targets.append(td_target.detach().clone())
        return mse_loss(td_target, old_val)

    monkeypatch.setattr(torch.optim, "Adam", SpyAdam)
    monkeypatch.setattr(buffers.ReplayBuffer, "sample", spy_sample)
    monkeypatch.setattr(F, "mse_loss", spy_mse)
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(sys, "argv", [script, *map(str, RUNS[script] + COMMON + list(flags))])
    namespace = runpy.run_path(os.path.join(ROOT, script), run_name="__main__")
    namespace["run_lock"].close()
    return namespace, steps, batches, targets


@pytest.mark.parametrize("script", ["dqn.py", "dqn_atari.py"])
def test_each_update_is_one_adam_step_on_fresh_gradients_of_the_td_loss_of_the_online_network(
    monkeypatch, workdir, script
):
    """For the first updates: the gradients are those of mean((td_target - Q(s, a))^2) at the parameters before the
    step (none carried over from an earlier update), and the step is Adam's with the script's learning rate, applied
    to the online network's parameters and to nothing else."""
    g, steps, batches, targets = run(monkeypatch, workdir, script)
    q_network, target_network = g["q_network"], g["target_network"]
    assert len(steps) == len(batches) == len(targets) > 100, "one step per update, one update per env step"
    optimizer = steps[0]["optimizer"]
    assert [id(p) for p in optimizer.param_groups[0]["params"]] == [id(p) for p in q_network.parameters()]
    assert optimizer.defaults["lr"] == g["args"].learning_rate
    for step, data, td_target in list(zip(steps, batches, targets))[:3]:  # (the steps recorded in full)
        network = copy.deepcopy(q_network)
        with torch.no_grad():
            for p, value in zip(network.parameters(), step["params"]):
                p.copy_(value)
        loss = F.mse_loss(td_target, network(data.observations).gather(1, data.actions).squeeze(1))
        grads = torch.autograd.grad(loss, list(network.parameters()))
        for got, expected in zip(step["grads"], grads):
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
        plain = [p.detach().clone().requires_grad_(True) for p in step["params"]]
        adam = type(optimizer).__bases__[0](plain, **step["defaults"])  # torch's Adam, the spy's base
        adam.load_state_dict(step["state"])  # its moments and step count before this update
        for p, grad in zip(plain, grads):
            p.grad = grad
        adam.step()
        for got, expected in zip(step["after"], plain):
            torch.testing.assert_close(got, expected.detach(), rtol=1e-4, atol=1e-6)
    with torch.no_grad():  # the target network was never stepped: it is still the initial copy of the online one
        for p, first in zip(target_network.parameters(), steps[0]["params"]):
            assert torch.equal(p, first)


@pytest.mark.parametrize("script", ["dqn.py", "dqn_atari.py"])
def test_on_a_fixed_batch_the_updates_cut_the_td_loss_and_move_q_toward_the_targets(monkeypatch, workdir, script):
    """Every update trains on the same batch, whose rewards differ from one transition to the next, against a target
    network that never changes: the TD loss on that batch falls below a quarter of what the best network that ignores
    its input could reach (the targets' variance), and Q(s, a) ends, on average, four times nearer its target."""
    flags = ["--learning-rate", 1e-3, "--batch-size", 32, "--total-timesteps", 1200 if script == "dqn.py" else 500]
    g, steps, batches, targets = run(monkeypatch, workdir, script, *flags, fixed_batch=True)
    data, td_target = batches[0], targets[0]
    assert all(torch.equal(t, td_target) for t in targets), "a fixed batch and a frozen target: a fixed TD target"
    network = copy.deepcopy(g["q_network"])
    with torch.no_grad():
        for p, value in zip(network.parameters(), steps[0]["params"]):
            p.copy_(value)
        q_first = network(data.observations).gather(1, data.actions).squeeze(1)
        q_last = g["q_network"](data.observations).gather(1, data.actions).squeeze(1)
    loss_first, loss_last = F.mse_loss(td_target, q_first).item(), F.mse_loss(td_target, q_last).item()
    spread = td_target.var(unbiased=False).item()  # the least loss of a network that ignores its input
    assert loss_last < 0.25 * spread < loss_first, (loss_first, loss_last, spread)
    distance_first, distance_last = (q_first - td_target).abs().mean(), (q_last - td_target).abs().mean()
    assert distance_last < 0.25 * distance_first, (distance_first, distance_last)
