"""The whole model's step-by-step recurrent pass equals its parallel teacher-forced pass, for every
variant; state carries across windows; the recurrent API behaves (float64, tiny random models)."""

import math

import pytest
import torch

from lssvwm_env.models import WorldModel, WorldModelConfig, WorldModelState
from lssvwm_env.models.autoencoder import AutoencoderConfig
from lssvwm_env.models.backbone import VARIANTS, BackboneConfig
from lssvwm_env.models.local_attention import AttentionConfig, allowed_keys
from lssvwm_env.models.ssm_mixer import SSMConfig


def tiny_model(variant: str, causal_window=None, patch: int = 1, spatial_encoding: str = "none") -> WorldModel:
    torch.manual_seed(0)
    cfg = WorldModelConfig(
        autoencoder=AutoencoderConfig(channels=[8, 16], latent_channels=4),
        backbone=BackboneConfig(
            latent_channels=4, grid=(16, 16), patch=patch, d_model=32, n_layers=2, block_sizes=[(2, 2), (4, 8)],
            ssm=SSMConfig(d_state=8, head_dim=16, chunk_size=16),
            attention=AttentionConfig(n_heads=2, window=4, chunk=2, query_block_frames=3,
                                      spatial_encoding=spatial_encoding)),
        variant=variant, causal_window=causal_window, bf16=False)
    model = WorldModel(cfg).double()
    # adaLN-Zero starts every branch at zero; perturb all weights so each mechanism matters.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def random_window(batch=2, frames=11, seed=1):
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(batch, frames, 16, 16, 4, dtype=torch.float64, generator=g)
    actions = torch.randint(0, 6, (batch, frames), generator=g)
    actions[:, 0] = -1
    noise = torch.rand(batch, frames, dtype=torch.float64, generator=g)
    return latents, actions, noise


CASES = [(v, 1, "none") for v in VARIANTS] + [("ours", 2, "none"), ("ours", 1, "rope"), ("causal_attn", 2, "rope")]


@pytest.mark.parametrize("variant,patch,spatial", CASES)
def test_recurrent_equals_parallel(variant, patch, spatial):
    model = tiny_model(variant, patch=patch, spatial_encoding=spatial)
    latents, actions, noise = random_window()
    state0 = model.initial_state(2)
    pred_par, feat_par, state_par = model.step_latents(state0, latents, actions, noise)
    state, preds, feats = state0, [], []
    for t in range(latents.size(1)):
        pred, feat, state = model.step_latents(state, latents[:, t:t + 1], actions[:, t:t + 1], noise[:, t:t + 1])
        preds.append(pred)
        feats.append(feat)
    assert torch.allclose(torch.cat(preds, 1), pred_par, atol=1e-10, rtol=0)
    assert torch.allclose(torch.cat(feats, 1), feat_par, atol=1e-10, rtol=0)
    for a, b in zip(state.tensors(), state_par.tensors()):
        assert torch.allclose(a.double(), b.double(), atol=1e-10, rtol=0)
    # The output must depend on the past at all (otherwise the comparison proves nothing).
    pred_alone, _, _ = model.step_latents(state0, latents[:, -1:], actions[:, -1:], noise[:, -1:])
    assert (pred_alone - pred_par[:, -1:]).abs().max() > 1e-3


@pytest.mark.parametrize("variant,patch,spatial", CASES)
def test_clean_context_pass_equals_denoising_from_the_committed_past(variant, patch, spatial):
    """Clean-context training computes for every frame of a window at once what `imagine` computes for
    one: the noisy frame at its noise level, from the state that the clean frames before it left."""
    model = tiny_model(variant, patch=patch, spatial_encoding=spatial)
    latents, actions, noise = random_window(frames=14)
    noisy = torch.randn_like(latents)
    # A state with history (7 frames), so what is carried in matters too.
    _, _, state0 = model.step_latents(model.initial_state(2), latents[:, :7], actions[:, :7])
    clean, noisy, actions, noise = latents[:, 7:], noisy[:, 7:], actions[:, 7:], noise[:, 7:]
    prediction, features, clean_features, state_after = model.backbone.forward_clean_context(
        clean, noisy, noise, actions, state0)
    state = state0
    for t in range(clean.size(1)):
        pred_t, feat_t, _ = model.step_latents(state, noisy[:, t:t + 1], actions[:, t:t + 1], noise[:, t:t + 1])
        assert torch.allclose(pred_t, prediction[:, t:t + 1], atol=1e-10, rtol=0), t
        assert torch.allclose(feat_t, features[:, t:t + 1], atol=1e-10, rtol=0), t
        _, clean_t, state = model.step_latents(state, clean[:, t:t + 1], actions[:, t:t + 1])
        assert torch.allclose(clean_t, clean_features[:, t:t + 1], atol=1e-10, rtol=0), t
    for a, b in zip(state.tensors(), state_after.tensors()):
        assert torch.allclose(a, b, atol=1e-10, rtol=0)
    # The noisy frames' predictions depend on the clean past (otherwise the comparison proves little).
    alone, _, _, _ = model.backbone.forward_clean_context(clean, noisy, noise, actions, model.initial_state(2))
    assert (alone - prediction).abs().max() > 1e-3


@pytest.mark.parametrize("variant,patch,spatial", CASES)
def test_a_pass_that_only_reads_the_state_predicts_what_a_full_pass_predicts(variant, patch, spatial):
    """Denoising passes run with keep_state=False, which skips writing the SSM states (issue 36): their
    prediction and features must be those of the pass that writes them, from a state with history."""
    model = tiny_model(variant, patch=patch, spatial_encoding=spatial)
    latents, actions, noise = random_window(frames=8)
    _, _, state = model.step_latents(model.initial_state(2), latents[:, :7], actions[:, :7])
    frame, action, level = latents[:, 7:], actions[:, 7:], noise[:, 7:]
    full_prediction, full_features, written = model.step_latents(state, frame, action, level)
    prediction, features, not_written = model.step_latents(state, frame, action, level, keep_state=False)
    assert not_written is None and written is not None
    assert torch.equal(prediction, full_prediction)
    assert torch.equal(features, full_features)


def test_under_bf16_the_attention_cache_is_kept_in_bf16_and_gives_what_an_fp32_cache_gives():
    """Under bf16 autocast keys and values are computed in bf16, so a bf16 KV cache holds them exactly;
    an fp32 cache cost two casts of the whole cache per pass (issue 36). Same frames either way."""
    model = tiny_model("ours").float()
    model.config.bf16 = True
    latents, actions, _ = random_window(frames=9)
    latents = latents.float()
    state = model.initial_state(2)
    assert all(k.dtype == torch.bfloat16 for k in state.keys + state.values)
    assert all(s.dtype == torch.float32 for s in state.ssm)  # SSM states accumulate: kept in fp32
    fp32_cache = state.map(lambda t: t.float() if t.dtype == torch.bfloat16 else t)
    noise = torch.randn(latents[:, 8:].shape, generator=torch.Generator().manual_seed(3))
    frames = []
    for past in (state, fp32_cache):
        _, _, past = model.step_latents(past, latents[:, :8], actions[:, :8])
        frames.append(model.generate_latent(past, actions[:, 8], noise=noise)[0])
    assert past.keys[0].dtype == torch.float32  # an fp32 cache given in (an older saved state) stays fp32
    assert torch.equal(frames[0], frames[1])


def test_one_step_predictions_at_once_equal_generating_after_observing():
    model = tiny_model("ours")
    latents, actions, _ = random_window(frames=9)
    noise = torch.randn(latents.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    all_at_once = model.predict_each_next(model.initial_state(2), latents, actions, sampling_steps=3, noise=noise)
    for t in range(latents.size(1)):
        state = model.initial_state(2)
        if t:
            _, _, state = model.step_latents(state, latents[:, :t], actions[:, :t])
        one, _ = model.generate_latent(state, actions[:, t], sampling_steps=3, noise=noise[:, t:t + 1])
        assert torch.allclose(one, all_at_once[:, t:t + 1], atol=1e-10, rtol=0), t


@pytest.mark.parametrize("variant", ["ours", "causal_attn"])
def test_state_carries_across_windows(variant):
    model = tiny_model(variant)
    latents, actions, noise = random_window(frames=13)
    state0 = model.initial_state(2)
    pred_full, _, _ = model.step_latents(state0, latents, actions, noise)
    _, _, state1 = model.step_latents(state0, latents[:, :6], actions[:, :6], noise[:, :6])
    pred_second, _, _ = model.step_latents(state1, latents[:, 6:], actions[:, 6:], noise[:, 6:])
    assert torch.allclose(pred_second, pred_full[:, 6:], atol=1e-10, rtol=0)


def test_ssm_reaches_beyond_attention_window():
    """With the SSM, frame 0 still changes frame 12's output (attention window: 4 frames); with local
    attention alone, it cannot."""
    latents, actions, noise = random_window(frames=13)
    changed = latents.clone()
    changed[:, 0] += 1.0
    for variant, expect_effect in [("ours", True), ("local_attn", False)]:
        model = tiny_model(variant)
        a, _, _ = model.step_latents(model.initial_state(2), latents, actions, noise)
        b, _, _ = model.step_latents(model.initial_state(2), changed, actions, noise)
        effect = (a[:, 12] - b[:, 12]).abs().max().item()
        assert (effect > 1e-6) == expect_effect, (variant, effect)


@pytest.mark.parametrize("block", [(2, 2), (4, 8)])
def test_ssm_half_lives_at_init_are_counted_in_frames(block):
    """With `half_life_frames`, a block-wise scan's heads halve their state in the given numbers of
    frames, whatever the tokens per block: the state left after frames of zero tokens (no writes)."""
    from lssvwm_env.models.blockwise_scan import BlockwiseScan
    torch.manual_seed(0)
    scan = BlockwiseScan(32, (16, 16), block, SSMConfig(d_state=8, head_dim=16, chunk_size=16,
                                                        half_life_frames=(2.0, 64.0))).double()
    heads = scan.mixer.n_heads
    state = torch.ones(1, scan.n_blocks, heads, 16, 8, dtype=torch.float64)
    frames = 8
    _, after = scan(torch.zeros(1, frames, 16, 16, 32, dtype=torch.float64), state)
    expected = 0.5 ** (frames / torch.exp(torch.linspace(math.log(2.0), math.log(64.0), heads, dtype=torch.float64)))
    assert torch.allclose(after[0, 0, :, 0, 0], expected, rtol=1e-6)


def test_ssm_half_life_floor_holds_after_training_speeds_the_decay():
    from lssvwm_env.models.blockwise_scan import BlockwiseScan
    for floor in (False, True):
        torch.manual_seed(0)
        scan = BlockwiseScan(32, (16, 16), (2, 2), SSMConfig(d_state=8, head_dim=16, chunk_size=16,
                                                             half_life_frames=(2.0, 64.0), half_life_floor=floor))
        scan = scan.double()
        with torch.no_grad():
            scan.mixer.dt_bias.add_(3.0)  # as if training had made every head forget faster
        heads = scan.mixer.n_heads
        _, after = scan(torch.zeros(1, 8, 16, 16, 32, dtype=torch.float64),
                        torch.ones(1, scan.n_blocks, heads, 16, 8, dtype=torch.float64))
        floors = 0.5 ** (8 / torch.exp(torch.linspace(math.log(2.0), math.log(64.0), heads, dtype=torch.float64)))
        if floor:
            assert torch.allclose(after[0, 0, :, 0, 0], floors, rtol=1e-6)
        else:
            assert (after[0, 0, :, 0, 0] < floors * 0.99).all()
    with pytest.raises(ValueError, match="half_life_floor needs ssm.half_life_frames"):
        SSMConfig(half_life_floor=True)


def test_attention_mask_chunks():
    cfg = AttentionConfig(window=10, chunk=5)
    q = torch.tensor([[0, 4, 5, 9, 10, 14]])
    k = torch.arange(15).unsqueeze(0)
    allowed = allowed_keys(q, k, cfg)[0]
    assert allowed[0].nonzero().flatten().tolist() == [0]
    assert allowed[1].nonzero().flatten().tolist() == [0, 1, 2, 3, 4]
    assert allowed[3].nonzero().flatten().tolist() == list(range(10))  # previous chunk + own chunk
    assert allowed[4].nonzero().flatten().tolist() == list(range(5, 11))
    assert allowed[5].nonzero().flatten().tolist() == list(range(5, 15))


def test_imagine_then_observe_agree_and_state_is_data():
    model = tiny_model("ours")
    state = model.initial_state(3)
    frames = torch.randint(0, 256, (3, 4, 64, 64, 3), dtype=torch.uint8)
    actions = torch.tensor([[-1, 1, 2, 3]] * 3)
    state = model.observe(state, frames, actions)
    assert state.frame_count.tolist() == [4, 4, 4]
    size_before = state.nbytes()
    g = torch.Generator().manual_seed(0)
    frame, reward, done, after = model.imagine(state.clone(), torch.tensor([1, 4, 5]), generator=g)
    assert frame.shape == (3, 64, 64, 3) and frame.dtype == torch.uint8
    assert reward.shape == (3,) and done.dtype == torch.bool
    assert after.nbytes() == size_before  # constant-size state: the KV cache is a fixed window
    # imagine commits the latent it sampled: the same state as stepping that latent at noise level 0.
    latent, _ = model.generate_latent(state, torch.tensor([1, 4, 5]), generator=torch.Generator().manual_seed(0))
    _, _, stepped = model.step_latents(state, latent, torch.tensor([[1], [4], [5]]))
    for a, b in zip(after.tensors(), stepped.tensors()):
        assert torch.allclose(a.double(), b.double(), atol=1e-10, rtol=0)
    assert not torch.allclose(after.ssm[0], state.ssm[0])  # and the commit moved the state
    # Indexing and concatenating along the batch give back the same state.
    rebuilt = WorldModelState.cat([after[0], after[1:]])
    for a, b in zip(rebuilt.tensors(), after.tensors()):
        assert torch.equal(a, b)
    # Reset of one element only.
    fresh = model.initial_state(3)
    mixed = after.where(torch.tensor([True, False, False]), fresh)
    assert mixed.frame_count.tolist() == [0, 5, 5]


def test_reset_of_some_lanes_under_full_causal_attention_whose_cache_grows():
    """Full causal attention's cache grows with the history, so a fresh state's is shorter: resetting
    some lanes (finished envs, training lanes) pads it; each lane then continues as if alone."""
    model = tiny_model("causal_attn")
    latents, actions, noise = random_window(batch=3, frames=7)
    _, _, after = model.step_latents(model.initial_state(3), latents[:, :5], actions[:, :5])
    assert after.cache_frames == 5
    mixed = after.where(torch.tensor([True, False, False]), model.initial_state(3))
    assert mixed.cache_frames == 5 and mixed.key_index[0].tolist() == [-1] * 5
    prediction, _, _ = model.step_latents(mixed, latents[:, 5:], actions[:, 5:], noise[:, 5:])
    alone, _, _ = model.step_latents(model.initial_state(1), latents[:1, 5:], actions[:1, 5:], noise[:1, 5:])
    kept, _, _ = model.step_latents(after[1:], latents[1:, 5:], actions[1:, 5:], noise[1:, 5:])
    assert torch.allclose(prediction[:1], alone, atol=1e-10, rtol=0)
    assert torch.allclose(prediction[1:], kept, atol=1e-10, rtol=0)
    # Slots no lane uses any more are dropped: the cache does not grow across resets.
    assert after.where(torch.ones(3, dtype=torch.bool), model.initial_state(3)).cache_frames == 0


def test_prior_heads_read_the_first_denoising_pass_as_the_parallel_pass_does():
    """heads.predict_from "prior": the imagined reward is the heads' reading of the new frame at pure
    noise after the clean past, the same number the parallel pass over past + noise gives."""
    model = tiny_model("ours")
    latents, actions, _ = random_window(batch=2, frames=5)
    state = model.step_latents(model.initial_state(2), latents, actions)[2]
    action = torch.tensor([2, 5])
    noise = torch.randn((2, 1, 16, 16, 4), generator=torch.Generator().manual_seed(7)).double()  # the first draw
    levels = torch.cat([torch.zeros(2, 5), torch.ones(2, 1)], dim=1).double()
    _, features, _ = model.step_latents(model.initial_state(2), torch.cat([latents, noise], dim=1),
                                        torch.cat([actions, action.view(2, 1)], dim=1), levels)
    expected_reward, expected_logit = model.heads(features[:, -1])

    model.config.heads.predict_from = "prior"
    _, reward, done, _ = model.imagine(state.clone(), action, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(reward, expected_reward, rtol=1e-9, atol=1e-9)
    assert torch.equal(done, expected_logit > 0)
    model.config.heads.predict_from = "committed"  # reads the sampled frame instead: another number
    _, committed, _, _ = model.imagine(state.clone(), action, generator=torch.Generator().manual_seed(7))
    assert not torch.allclose(committed, expected_reward, atol=1e-6)


def test_patches_hold_the_latent_grid_in_order():
    """backbone.patch 2: a token is a 2x2 patch of latent cells, and the prediction comes back on the
    latent grid cell for cell."""
    backbone = tiny_model("ours", patch=2).backbone
    latents = torch.arange(2 * 3 * 16 * 16 * 4, dtype=torch.float64).reshape(2, 3, 16, 16, 4)
    patches = backbone.to_patches(latents)
    assert patches.shape == (2, 3, 8, 8, 16)
    assert torch.equal(patches[0, 0, 1, 2].reshape(2, 2, 4), latents[0, 0, 2:4, 4:6])
    assert torch.equal(backbone.from_patches(patches), latents)
    assert backbone.initial_state(1).keys[0].shape[2] == 64  # 8 x 8 tokens in the KV cache


def test_commit_noise_changes_what_the_state_remembers_not_the_frame():
    """diffusion.commit_noise: the generated latent is the same; the state commits it re-noised to that
    level (told so by its noise-level input), so what follows differs."""
    from lssvwm_env.models import WorldModel
    from lssvwm_env.models.diffusion import DiffusionConfig
    from lssvwm_env.presets import tiny

    torch.manual_seed(0)
    model = WorldModel(tiny().model).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    action = torch.tensor([1, 2])
    steps = {}
    for sigma in (0.0, 0.3):
        model.config.diffusion.commit_noise = sigma
        generator = torch.Generator().manual_seed(5)
        first = model.imagine_step(model.initial_state(2), action, generator)
        steps[sigma] = (first, model.imagine_step(first.state, action, torch.Generator().manual_seed(6)))
    assert torch.equal(steps[0.0][0].latent, steps[0.3][0].latent)
    assert not torch.allclose(steps[0.0][1].latent, steps[0.3][1].latent)
    with pytest.raises(ValueError, match=r"commit_noise must be in \[0, 1\)"):
        DiffusionConfig(commit_noise=1.0)


def test_context_noise_trains_each_frame_from_a_noised_past_at_a_level_the_model_is_told():
    """diffusion.context_noise: clean-context training denoises every frame from its past noised at a
    level in [0, context_noise], given to the model as that frame's noise level; off (0), the past is
    clean, and the loss is what it was."""
    from lssvwm_env.models.diffusion import DiffusionConfig
    from lssvwm_env.presets import tiny
    from lssvwm_env.training.losses import dynamics_loss

    torch.manual_seed(0)
    model = WorldModel(tiny().model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    latents = torch.randn(2, 6, *model.config.autoencoder.grid, model.config.autoencoder.latent_channels)
    batch = {"latents": latents, "actions": torch.randint(0, 6, (2, 6)), "rewards": torch.zeros(2, 6),
             "terminated": torch.zeros(2, 6, dtype=torch.bool), "has_transition": torch.ones(2, 6, dtype=torch.bool),
             "valid": torch.ones(2, 6, dtype=torch.bool)}
    seen = []
    forward = model.backbone.forward_clean_context

    def spy(context, noisy, sigma, actions, state, context_level=None):
        seen.append((context, context_level))
        return forward(context, noisy, sigma, actions, state, context_level)

    model.backbone.forward_clean_context = spy
    losses = {}
    for level in (0.0, 0.2):
        model.config.diffusion.context_noise = level
        losses[level] = dynamics_loss(model, batch, model.initial_state(2), "clean_context", 1.0, False,
                                      generator=torch.Generator().manual_seed(3)).diffusion.item()
    (clean, clean_level), (noised, noised_level) = seen
    assert clean is latents and clean_level is None
    assert 0 < noised_level.min() and noised_level.max() <= 0.2 and not torch.equal(noised, latents)
    # Each past frame is the clean one noised at the level the model is told: what is left after taking
    # (1 - level) of the clean frame away is level times unit noise.
    level = noised_level.view(2, 6, 1, 1, 1)
    residual = (noised - (1 - level) * latents) / level
    assert residual.flatten(2).std(dim=2).sub(1).abs().max() < 0.2
    assert losses[0.0] != losses[0.2]
    with pytest.raises(ValueError, match=r"context_noise must be in \[0, 1\)"):
        DiffusionConfig(context_noise=1.0)


def test_spatial_rope_makes_attention_scores_depend_on_relative_place():
    """With spatial rope, a query and key made of the same vector score by their offset in the frame
    alone: the same at every place for the same offset (what lets a head copy, or shift, a whole frame),
    and not the same for different offsets. Without it, place does not enter the score at all."""
    from lssvwm_env.models.local_attention import LocalAttention

    torch.manual_seed(0)
    grid = (4, 4)

    def scores(spatial: str) -> torch.Tensor:
        attention = LocalAttention(24, AttentionConfig(n_heads=1, window=2, chunk=1, spatial_encoding=spatial), grid).double()
        with torch.no_grad():
            attention.qkv.weight.copy_(torch.randn(72, 24, dtype=torch.float64))
        tokens = torch.randn(24, dtype=torch.float64).expand(1, 1, 16, 24)  # every token the same
        q, k, _ = attention.project(tokens, torch.zeros(1, 1, dtype=torch.long))
        return torch.einsum("qd,kd->qk", q[0, 0, :, 0], k[0, 0, :, 0]).reshape(4, 4, 4, 4)

    rope = scores("rope")
    # Offset (0, +1): query at (r, c), key at (r, c + 1), the same score wherever the pair lies.
    east = torch.stack([rope[r, c, r, c + 1] for r in range(4) for c in range(3)])
    assert torch.allclose(east, east[0].expand_as(east), atol=1e-9)
    same = torch.stack([rope[r, c, r, c] for r in range(4) for c in range(4)])
    assert torch.allclose(same, same[0].expand_as(same), atol=1e-9)
    assert (same[0] - east[0]).abs() > 1e-3
    flat = scores("none")
    assert torch.allclose(flat, flat[0, 0, 0, 0].expand_as(flat), atol=1e-9)
