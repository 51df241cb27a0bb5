"""`lssvwm bench train`: the figures it prints, for the preset and for a config changed with --set."""

import json

import torch

from lssvwm_env.cli import main


def bench(capsys, *extra: str) -> dict:
    assert main(["bench", "train", "--preset", "tiny", "--steps", "1", "--threads", "1", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_bench_train_measures_the_config_that_set_describes(capsys):
    plain = bench(capsys)
    assert plain["overrides"] == "-" and plain["batch"] == 2 and plain["window"] == 8 and plain["frames_per_s"] > 0
    # A wider model costs more compute per step: the override reaches the model that is timed.
    wide = bench(capsys, "--set", "model.backbone.d_model=64")
    assert wide["overrides"] == "model.backbone.d_model=64"
    assert wide["gflop_per_step"] > 1.5 * plain["gflop_per_step"]


def test_bench_names_an_unknown_field_and_a_device_it_cannot_use(capsys):
    assert main(["bench", "train", "--preset", "tiny", "--set", "model.backbone.no_such_field=1"]) == 1
    assert "lssvwm bench: error: unknown config field 'model.backbone.no_such_field'" in capsys.readouterr().err
    if not torch.cuda.is_available():  # what a CPU-only machine says; a GPU machine runs it
        assert main(["bench", "horizon", "--preset", "tiny", "--frames", "10", "--device", "cuda"]) == 1
        assert "device='cuda'" in capsys.readouterr().err


def test_bench_train_counts_the_fused_attention_and_the_objective(capsys):
    """The FLOPs include the fused CPU attention kernel (PyTorch's counter gives it 0), and the
    clean-context objective costs about twice a diffusion-forcing step."""
    df = ("--set", "dynamics_training.objective=diffusion_forcing")  # the presets train clean-context
    with_attention = bench(capsys, *df)
    without = bench(capsys, *df, "--set", "model.backbone.use_attention=false")
    window, tokens, d_model = 8, 64, 32  # tiny: 8 frames of 8 x 8 tokens, attention over up to 4 frames
    assert with_attention["gflop_per_step"] - without["gflop_per_step"] > 2 * 2 * window * tokens * 2 * tokens * d_model / 1e9
    clean = bench(capsys, "--set", "dynamics_training.objective=clean_context")
    assert clean["objective"] == "clean_context"
    ratio = clean["gflop_per_step"] / with_attention["gflop_per_step"]
    assert ratio > 1.6 and ratio < 3.0


def test_bench_horizon_state_is_constant_for_ours_and_grows_for_causal_attention(capsys):
    """The tool behind the constant-cost claim, from a real run: `ours` carries the same state at
    frame 10 and frame 40, full causal attention's KV cache grows with the frames it keeps."""
    assert main(["bench", "horizon", "--preset", "tiny", "--frames", "10,40", "--variants", "ours,causal_attn",
                 "--repeats", "1", "--block", "10", "--threads", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    ours, causal = result["ours"]["state_mb"], result["causal_attn"]["state_mb"]
    assert ours["10"] == ours["40"] > 0
    assert result["causal_attn"]["history"] == {"10": "real", "40": "real"}
    assert 3.5 < causal["40"] / causal["10"] <= 4.0
