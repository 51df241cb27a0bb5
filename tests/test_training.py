"""`lssvwm train` on tiny real data: end to end, resume after a kill (same result as an uninterrupted
run), config mismatch on resume, NaN loss, bad data, and two data-parallel processes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lssvwm_env.checkpoint import load_world_model

REPO = Path(__file__).resolve().parents[1]
LSSVWM = [sys.executable, "-m", "lssvwm_env.cli"]


def lssvwm(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([*LSSVWM, *args], cwd=REPO, capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"lssvwm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "minigrid"
    lssvwm("collect", "--env", "minigrid-memory", "--policy", "random", "--episodes", "4", "--steps", "40",
           "--workers", "1", "--out", str(out), "--seed", "0")
    return out


def train(dataset: Path, out: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    return lssvwm("train", "--data", str(dataset), "--out", str(out), "--preset", "tiny", "--threads", "1",
                  *extra, check=check)


@pytest.fixture(scope="module")
def finished_run(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "full"
    train(dataset, out)
    return out


def test_train_end_to_end(dataset, finished_run):
    state = json.loads((finished_run / "checkpoint" / "training_state.json").read_text())
    assert state["progress"]["stage"] == "done"
    assert state["progress"]["dynamics_step"] == 10  # tiny curriculum: 6 + 4 steps
    stages = [m["stage"] for m in state["progress"]["metrics"]]
    assert stages[0] == "autoencoder" and "dynamics" in stages
    model = load_world_model(finished_run)
    assert torch.all(model.latent_std > 0) and not torch.allclose(model.latent_std, torch.ones_like(model.latent_std))
    for name in ("model_card.md", "metrics.csv", "latents_train.safetensors"):
        assert (finished_run / name).exists(), name
    assert list((finished_run / "samples").glob("*.mp4"))
    assert list((finished_run / "tensorboard").iterdir())
    card = (finished_run / "model_card.md").read_text()
    assert "rollout_psnr" in card and "tiny" in card
    # The training data's reward range, recorded and applied to the loaded model (MiniGrid pays in [0, 1)).
    record = json.loads((finished_run / "checkpoint" / "config.json").read_text())["training_data"]
    assert 0.0 == record["reward_range"][0] <= record["reward_range"][1] < 1.0 and record["transitions"] > 0
    assert model.heads.reward_range.tolist() == pytest.approx(record["reward_range"])
    assert "imagined rewards are kept in that range" in card
    # How it was trained, as data: training.json, which the card renders and the evaluations read.
    from lssvwm_env.evaluation.memory import checkpoint_info
    from lssvwm_env.training.train import render_model_card
    trained = json.loads((finished_run / "checkpoint" / "training.json").read_text())
    assert trained["dynamics_steps"] == 10 and trained["stage"] == "done" and trained["data"] == str(dataset)
    assert trained["env"] == "minigrid-memory"  # the real env it imagines, from the manifest
    assert render_model_card(trained) == (finished_run / "checkpoint" / "model_card.md").read_text()
    info = checkpoint_info(finished_run, model)
    assert info["training"]["dynamics_steps"] == 10 and info["training_data"]["path"] == str(dataset)


def test_training_trains(dataset, finished_run):
    """The run changed the weights it was given at step 0, and its held-out dynamics loss went down:
    an optimizer that never steps fails here (the other tests would pass)."""
    from lssvwm_env.models.world_model import WorldModel, WorldModelConfig
    from lssvwm_env.training.data import LatentCache, build_latent_cache, load_split
    from lssvwm_env.training.losses import dynamics_loss

    config = json.loads((finished_run / "checkpoint" / "config.json").read_text())
    torch.manual_seed(config["seed"])  # as the trainer builds its model
    initial = WorldModel(WorldModelConfig.from_dict(config["model"]))
    state = load_file(str(finished_run / "checkpoint" / "training_state.safetensors"))
    trained = WorldModel(WorldModelConfig.from_dict(config["model"]))
    trained.load_state_dict({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
    for part in ("autoencoder", "backbone"):
        before, after = getattr(initial, part).state_dict(), getattr(trained, part).state_dict()
        changed = [name for name in before if not torch.equal(before[name], after[name])]
        assert len(changed) > len(before) // 2, (part, len(changed), len(before))

    def held_out_loss(model) -> float:  # the same latents (the trained autoencoder's), noise and windows
        model.autoencoder.load_state_dict(trained.autoencoder.state_dict())
        model.latent_mean.copy_(trained.latent_mean), model.latent_std.copy_(trained.latent_std)
        cache: LatentCache = build_latent_cache(model, load_split(dataset, "eval"), desc="eval")
        windows = [cache.window(e, 0, 16) for e in range(len(cache.episode_lengths))]
        batch = {k: torch.stack([w[k] for w in windows]) for k in windows[0]}
        with torch.no_grad():
            return dynamics_loss(model, batch, model.initial_state(len(windows)), "diffusion_forcing", 0.0, False,
                                 generator=torch.Generator().manual_seed(0)).diffusion.item()

    assert held_out_loss(trained) < 0.99 * held_out_loss(initial)  # 1.90 against 1.93 after 10 steps


def test_resume_after_kill_matches_uninterrupted(dataset, finished_run, tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen([*LSSVWM, "train", "--data", str(dataset), "--out", str(out), "--preset", "tiny",
                             "--threads", "1"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    state_file = out / "checkpoint" / "training_state.json"
    deadline = time.time() + 300
    try:
        while time.time() < deadline:  # kill once a dynamics checkpoint exists
            if state_file.exists():
                try:
                    if json.loads(state_file.read_text())["progress"]["dynamics_step"] >= 4:
                        break
                except (json.JSONDecodeError, KeyError, FileNotFoundError):
                    pass
            if proc.poll() is not None:
                pytest.fail("training finished before it could be killed")
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    killed_at = json.loads(state_file.read_text())["progress"]["dynamics_step"]
    assert 4 <= killed_at < 10
    result = train(dataset, out, "--resume")
    assert f"dynamics step {killed_at}" in result.stdout + result.stderr
    resumed = load_file(str(out / "checkpoint" / "model.safetensors"))
    uninterrupted = load_file(str(finished_run / "checkpoint" / "model.safetensors"))
    assert resumed.keys() == uninterrupted.keys()
    for name in resumed:
        assert torch.allclose(resumed[name], uninterrupted[name], atol=1e-6), name


def test_resume_with_other_config_names_fields(dataset, finished_run, tmp_path):
    import shutil
    out = tmp_path / "copy"
    shutil.copytree(finished_run, out)
    result = train(dataset, out, "--resume", "--set", "dynamics_training.lr=0.5", "--set", "seed=3", check=False)
    assert result.returncode == 1
    assert "dynamics_training.lr" in result.stderr and "seed" in result.stderr


def test_existing_run_without_resume_is_refused(dataset, finished_run):
    result = train(dataset, finished_run, check=False)
    assert result.returncode == 1 and "--resume" in result.stderr


def test_nan_loss_stops_with_step_and_checkpoint(dataset, tmp_path):
    out = tmp_path / "nan"
    result = train(dataset, out, "--set", "autoencoder_training.lr=1e30", check=False)
    assert result.returncode == 1
    assert "loss is" in result.stderr and "at step" in result.stderr
    assert (out / "checkpoint" / "model.safetensors").exists()


def test_bad_data_directory(tmp_path):
    result = train(tmp_path / "missing", tmp_path / "run", check=False)
    assert result.returncode == 1
    assert str(tmp_path / "missing") in result.stderr


def test_two_processes_keep_parameters_identical(dataset, tmp_path):
    """torchrun with 2 CPU processes (gloo): each rank saves its own parameters at the end; they match,
    and differ from the initial ones."""
    out = tmp_path / "ddp"
    env = dict(os.environ, LSSVWM_SAVE_RANK_WEIGHTS="1", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
         "-m", "lssvwm_env.training.train", "--data", str(dataset), "--out", str(out), "--preset", "tiny",
         "--threads", "1", "--set", "dynamics_training.curriculum=[{\"window\": 8, \"iterations\": 3, \"batch_size\": 1}]",
         "--set", "autoencoder_training.iterations=4"],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = load_file(str(out / "rank0_weights.safetensors"))
    rank1 = load_file(str(out / "rank1_weights.safetensors"))
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    card = (out / "model_card.md").read_text()
    assert "processes: 2" in card


def test_short_held_out_episodes_shorten_the_evaluation_up_front(dataset, tmp_path):
    """A held-out evaluation longer than any held-out episode is shortened, and said so, at the start:
    it used to end the run at its first evaluation."""
    result = train(dataset, tmp_path / "short", "--set", "dynamics_training.eval_rollout=100")
    assert "note: eval_context + eval_rollout: no episode has 104 frames (context 4 + generate 100)" in (
        result.stdout + result.stderr)
    state = json.loads((tmp_path / "short" / "checkpoint" / "training_state.json").read_text())
    assert state["progress"]["stage"] == "done"


def test_init_autoencoder_shares_stage_0(dataset, finished_run, tmp_path):
    out = tmp_path / "shared"
    train(dataset, out, "--init-autoencoder", str(finished_run), "--set", "seed=1")
    donor, model = load_world_model(finished_run), load_world_model(out)
    for name, tensor in donor.autoencoder.state_dict().items():
        assert torch.equal(tensor, model.autoencoder.state_dict()[name]), name
    assert torch.equal(donor.latent_std, model.latent_std) and torch.equal(donor.latent_mean, model.latent_mean)
    state = json.loads((out / "checkpoint" / "training_state.json").read_text())
    assert state["progress"]["stage"] == "done" and state["progress"]["dynamics_step"] == 10
    # A donor whose autoencoder differs is refused before anything is written.
    refused = train(dataset, tmp_path / "refused", "--init-autoencoder", str(finished_run),
                    "--set", "model.autoencoder.channels=[8,16,32]", check=False)
    assert refused.returncode == 1
    assert "--init-autoencoder" in refused.stderr and "autoencoder.channels" in refused.stderr
    assert not (tmp_path / "refused").exists()


def test_init_model_fine_tunes_from_all_of_the_donors_weights(dataset, finished_run, tmp_path):
    """--init-model starts the dynamics from the donor's backbone and heads (and takes its autoencoder):
    with a learning rate of 0 the fine-tuned model is the donor, weight for weight; --init-autoencoder
    alone (the control) starts the backbone afresh."""
    frozen = ("--set", "dynamics_training.lr=0", "--set", "seed=1")
    train(dataset, tmp_path / "tuned", "--init-model", str(finished_run), *frozen)
    train(dataset, tmp_path / "control", "--init-autoencoder", str(finished_run), *frozen)
    donor, tuned, control = (load_world_model(p) for p in (finished_run, tmp_path / "tuned", tmp_path / "control"))
    tuned_weights, control_weights = tuned.state_dict(), control.state_dict()
    for name, tensor in donor.state_dict().items():
        assert torch.equal(tensor, tuned_weights[name]), name
    assert not all(torch.equal(t, control_weights[f"backbone.{n}"]) for n, t in donor.backbone.state_dict().items())
    # A donor of another model config is refused before anything is written.
    refused = train(dataset, tmp_path / "refused", "--init-model", str(finished_run),
                    "--set", "model.backbone.n_layers=3", check=False)
    assert refused.returncode == 1
    assert "--init-model" in refused.stderr and "backbone.n_layers" in refused.stderr
    assert not (tmp_path / "refused").exists()
