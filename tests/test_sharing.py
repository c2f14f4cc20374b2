"""Both scripts: --upload-model builds a Hub folder whose card the Hub's own parser reads with the run's figures, a
failed push keeps everything and says how to push later, the folder plays with --eval-checkpoint, and every flag of
CleanRL's dqn.py and dqn_atari.py is accepted with its meaning. Offline: the Hub endpoint is unreachable."""

import glob
import json
import os

import pytest

from conftest import run_dirs, run_script

OFFLINE_HUB = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": "hf_test", "HF_HUB_DISABLE_TELEMETRY": "1"}
SHORT = {
    "dqn.py": ["--total-timesteps", 1500, "--learning-starts", 500],
    "dqn_atari.py": ["--total-timesteps", 800, "--learning-starts", 300, "--buffer-size", 2000],
}


@pytest.mark.parametrize("script", ["dqn.py", "dqn_atari.py"])
def test_upload_model_builds_a_hub_folder_keeps_it_when_the_push_fails_and_the_folder_plays(workdir, script):
    from huggingface_hub import ModelCard

    flags = [*SHORT[script], "--eval-episodes", 2, "--end-e", 0.0, "--checkpoint-frequency", 500, "--no-cuda"]
    result = run_script(script, *flags, "--upload-model", "--hf-entity", "someone", cwd=workdir, env=OFFLINE_HUB)
    [run_dir] = run_dirs(workdir)
    run = os.path.relpath(run_dir, workdir)
    name = f"someone/{'CartPole-v1' if script == 'dqn.py' else 'BreakoutNoFrameskip-v4'}-{script[:-3]}-seed1"
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{script}: the push to the Hub failed (") and "Connect" in last, last
    assert last.endswith(f"all is saved; push it later with: hf upload {name} {run}/hub ."), last
    assert os.path.exists(os.path.join(run_dir, "checkpoint", "checkpoint.pt")) and glob.glob(f"{run_dir}/events.*")

    hub = os.path.join(run_dir, "hub")
    exp = script[:-3]
    expected = {"README.md", f"{exp}.cleanrl_model", script, "hyperparameters.json", "eval_returns.json"}
    assert expected <= set(os.listdir(hub)) and glob.glob(f"{hub}/events.*"), os.listdir(hub)
    returns = json.load(open(os.path.join(hub, "eval_returns.json")))
    flags_saved = json.load(open(os.path.join(hub, "hyperparameters.json")))
    assert len(returns) == 2 and flags_saved["total_timesteps"] == SHORT[script][1]
    card = ModelCard.load(os.path.join(hub, "README.md"))  # the Hub's own parser
    [score] = card.data.eval_results
    import numpy as np

    assert score.metric_value == f"{np.mean(returns):.2f} +/- {np.std(returns):.2f}"
    assert score.dataset_name == flags_saved["env_id"] and score.metric_type == "mean_reward"
    assert card.data.library_name == "cleanrl" and flags_saved["env_id"] in card.data.tags
    assert f"--total-timesteps {SHORT[script][1]}" in card.text

    trained = [line for line in result.stdout.splitlines() if line.startswith("eval:")]
    play = ["--eval-checkpoint", hub, "--eval-episodes", 2, "--end-e", 0.0, "--no-cuda"]
    played = run_script(script, *play, *SHORT[script][4:], cwd=workdir)
    assert played.returncode == 0, played.stderr
    assert [line for line in played.stdout.splitlines() if line.startswith("eval:")] == trained, "the same agent"


@pytest.mark.parametrize(
    "flags,named",
    [
        (["--hf-entity", "someone"], "--hf-entity goes with --upload-model"),
        (["--upload-model", "--eval-episodes", 0], "--upload-model needs --eval-episodes of 1 or more"),
        (
            ["--upload-model", "--exp-name", "my..run"],
            "the Hub refuses the repository name 'CartPole-v1-my..run-seed1'",
        ),
    ],
)
def test_a_hub_flag_that_cannot_succeed_is_refused_before_training(workdir, flags, named):
    result = run_script("dqn.py", *flags, "--no-cuda", cwd=workdir, env=OFFLINE_HUB)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and named in lines[0], result.stderr
    assert not os.listdir(workdir), "nothing written"


CLEANRL_FLAGS = [  # every flag of CleanRL's dqn.py and dqn_atari.py (its Args), with a value of CleanRL's meaning
    ("--exp-name", "sweep_a", "exp_name", "sweep_a"),
    ("--seed", "3", "seed", 3),
    ("--torch-deterministic", None, "torch_deterministic", True),
    ("--cuda", None, "cuda", True),
    ("--track", None, "track", True),
    ("--wandb-project-name", "proj", "wandb_project_name", "proj"),
    ("--wandb-entity", "team", "wandb_entity", "team"),
    ("--capture-video", None, "capture_video", True),
    ("--save-model", None, "save_model", True),
    ("--upload-model", None, "upload_model", True),
    ("--hf-entity", "someone", "hf_entity", "someone"),
    ("--total-timesteps", "20000", "total_timesteps", 20000),
    ("--learning-rate", "0.0003", "learning_rate", 0.0003),
    ("--num-envs", "2", "num_envs", 2),
    ("--buffer-size", "5000", "buffer_size", 5000),
    ("--gamma", "0.98", "gamma", 0.98),
    ("--tau", "0.5", "tau", 0.5),
    ("--target-network-frequency", "250", "target_network_frequency", 250),
    ("--batch-size", "64", "batch_size", 64),
    ("--start-e", "0.9", "start_e", 0.9),
    ("--end-e", "0.02", "end_e", 0.02),
    ("--exploration-fraction", "0.2", "exploration_fraction", 0.2),
    ("--learning-starts", "1000", "learning_starts", 1000),
    ("--train-frequency", "5", "train_frequency", 5),
]


@pytest.mark.parametrize("script", ["dqn.py", "dqn_atari.py"])
@pytest.mark.parametrize("negated", [False, True])
def test_every_cleanrl_flag_is_accepted_with_cleanrls_meaning(script, negated, tmp_path, monkeypatch):
    import dqn
    import dqn_atari

    monkeypatch.chdir(tmp_path)
    words, expected = [], {}
    for flag, value, field, meaning in CLEANRL_FLAGS:
        if negated and flag in ("--torch-deterministic", "--cuda"):  # CleanRL's switches that default to on
            flag, meaning = "--no-" + flag[2:], False
        words += [flag] if value is None else [flag, value]
        expected[field] = meaning
    if script == "dqn_atari.py":
        words += ["--env-id", "PongNoFrameskip-v4"]
    args, _ = {"dqn.py": dqn, "dqn_atari.py": dqn_atari}[script].parse_args(words)
    assert {k: getattr(args, k) for k in expected} == expected
