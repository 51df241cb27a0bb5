"""The training data path: every episode's last transition reaches the latent cache (from the
dataset's final_frame); the window lanes train on short episodes (padded) and episode ends (a long
episode's last window ends at its last frame); the noise levels and loss mask a window trains under."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lssvwm_env.models.conditioning import NO_ACTION
from lssvwm_env.models.diffusion import DiffusionConfig, sample_training_noise
from lssvwm_env.models.world_model import WorldModel
from lssvwm_env.presets import preset
from lssvwm_env.training.data import LatentCache, WindowLanes, build_latent_cache
from lssvwm_env.training.losses import dynamics_loss


def _episode(length: int, final_frame: bool, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    episode = {
        "frames": rng.integers(0, 256, (length, 64, 64, 3), dtype=np.uint8),
        "actions": rng.integers(0, 3, length).astype(np.int64),
        "rewards": np.zeros(length, np.float32),
        "terminated": np.zeros(length, bool),
    }
    episode["rewards"][-1], episode["terminated"][-1] = 0.9, True  # MiniGrid: reward only at the end
    if final_frame:
        episode["final_frame"] = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return episode


def test_latent_cache_keeps_the_last_transition_when_the_final_frame_is_stored():
    model = WorldModel(preset("tiny").model).eval()
    with_final, without = _episode(5, True, 0), _episode(7, False, 1)
    cache = build_latent_cache(model, [with_final, without], desc="test")
    assert cache.episode_lengths == [6, 7]
    first = cache.window(0, 0, 6)
    # Frame 5 is the outcome of the last action: its action, reward and end are the last transition's.
    assert first["actions"].tolist() == [NO_ACTION, *with_final["actions"].tolist()]
    assert first["rewards"].tolist() == [0, 0, 0, 0, 0, np.float32(0.9)]
    assert first["terminated"].tolist() == [False] * 5 + [True]
    with torch.no_grad():
        expected = model.encode(torch.from_numpy(with_final["final_frame"])[None, None])[0, 0].float()
    torch.testing.assert_close(first["latents"][5], expected)
    # Without the final frame, the last transition has no frame: it is not in the cache.
    second = cache.window(1, 0, 7)
    assert not second["terminated"].any() and second["rewards"].sum() == 0


def _cache(lengths: list[int]) -> LatentCache:
    n = sum(lengths)
    offsets = torch.tensor(np.concatenate([[0], np.cumsum(lengths)]), dtype=torch.long)
    return LatentCache(latents=torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1) + 1,
                       actions_in=torch.zeros(n, dtype=torch.long), rewards_in=torch.zeros(n),
                       terminated_in=torch.zeros(n, dtype=torch.bool), offsets=offsets)


def test_window_past_the_episode_end_is_padded_and_marked_invalid():
    cache = _cache([3, 10])
    window = cache.window(0, 1, 4)
    assert window["latents"].flatten().tolist() == [2, 3, 0, 0]
    assert window["actions"].tolist()[2:] == [NO_ACTION, NO_ACTION]
    assert window["valid"].tolist() == [True, True, False, False]
    assert window["has_transition"].tolist() == [True, True, False, False]
    assert cache.window(1, 0, 4)["valid"].all() and cache.window(1, 0, 4)["latents"][0].item() == 4


def test_lanes_cover_short_episodes_and_every_episode_end():
    lengths = [3, 25, 5]
    lanes = WindowLanes(lengths, n=2, window=8, reset_prob=0.0)
    generator = torch.Generator().manual_seed(0)
    covered = [set() for _ in lengths]
    previous: list[tuple[int, int] | None] = [None, None]
    for _ in range(200):
        windows, reset = lanes.next(generator)
        for lane, ((episode, start), fresh) in enumerate(zip(windows, reset.tolist())):
            # reset_prob 0: the state is reset exactly when a lane starts an episode.
            continues = previous[lane] is not None and previous[lane] == (episode, start - 8)
            assert fresh == (not continues), (previous[lane], episode, start)
            previous[lane] = (episode, start)
            covered[episode].update(range(start, min(start + 8, lengths[episode])))
    # The short episodes are used whole and the long one to its last frame.
    assert covered[0] == {0, 1, 2} and covered[2] == set(range(5))
    assert lengths[1] - 1 in covered[1]


def test_lanes_end_each_long_episodes_last_window_at_its_last_frame_instead_of_padding_it():
    lengths = [1001, 1001, 1200, 400, 250]
    lanes = WindowLanes(lengths, n=3, window=400, reset_prob=0.0)
    generator = torch.Generator().manual_seed(0)
    previous: list[tuple[int, int] | None] = [None] * 3
    tails = 0
    for _ in range(300):
        windows, reset = lanes.next(generator)
        for lane, ((episode, start), fresh) in enumerate(zip(windows, reset.tolist())):
            if lengths[episode] >= 400:
                assert 0 <= start and start + 400 <= lengths[episode], (episode, start)  # no padding
            else:
                assert start == 0  # used whole, padded
            follows = previous[lane] is not None and previous[lane][0] == episode and start > previous[lane][1]
            if follows and start != previous[lane][1] + 400:
                # The tail: its window ends at the episode's end and overlaps the one before it, so the
                # state is reset rather than carried over frames it has seen.
                assert start + 400 == lengths[episode] and fresh
                tails += 1
            previous[lane] = (episode, start)
    assert tails > 0


def _prefix_lengths(min_prefix: float, frames: int = 12) -> set[int]:
    config = DiffusionConfig(long_context_min_prefix=min_prefix)
    sigma, in_loss = sample_training_noise(4000, frames, config, "cpu", torch.Generator().manual_seed(0),
                                           long_context=True)
    clean = (sigma == 0) & ~in_loss
    prefix = clean.sum(dim=1)
    assert torch.equal(clean, torch.arange(frames) < prefix[:, None]), "the clean frames form a prefix"
    return set(prefix.tolist())


def test_long_context_prefix_is_longer_than_half_the_window_by_default_and_as_short_as_one_frame_on_request():
    assert _prefix_lengths(0.5) == set(range(7, 12))  # paper: more than half of 12 frames, one noised
    assert _prefix_lengths(0.0) == set(range(1, 12))  # one clean frame: an env reset on a single frame


def test_pure_noise_share_puts_noised_frames_at_noise_level_one_and_leaves_the_clean_prefix():
    frames = 12
    base = DiffusionConfig(long_context_prob=0.5)
    sigma0, _ = sample_training_noise(2000, frames, base, "cpu", torch.Generator().manual_seed(0))
    assert (sigma0 == 1.0).float().mean() < 0.01  # logit-normal(0, 1) almost never reaches pure noise
    config = DiffusionConfig(long_context_prob=0.5, pure_noise_prob=0.4)
    sigma, in_loss = sample_training_noise(2000, frames, config, "cpu", torch.Generator().manual_seed(0))
    pure = (sigma == 1.0)[in_loss].float().mean().item()
    assert abs(pure - 0.4) < 0.02
    assert ((sigma == 0) == ~in_loss).all()  # the clean prefixes are untouched and stay out of the loss
    with pytest.raises(ValueError, match="pure_noise_prob"):
        DiffusionConfig(pure_noise_prob=1.5)


def test_given_noise_levels_and_loss_mask_are_the_ones_the_loss_is_taken_under():
    torch.manual_seed(0)
    model = WorldModel(preset("tiny").model)
    with torch.no_grad():  # adaLN-Zero starts the output at zero, whatever the noise level: perturb it
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    cache = build_latent_cache(model, [_episode(6, False, 0)], desc="test")
    batch = {k: v.unsqueeze(0) for k, v in cache.window(0, 0, 6).items()}

    def loss(sigma: float, frames: list[int]) -> float:
        levels = torch.full((1, 6), sigma)
        in_loss = torch.zeros(1, 6, dtype=torch.bool)
        in_loss[0, frames] = True
        with torch.no_grad():
            return dynamics_loss(model, batch, model.initial_state(1), "diffusion_forcing", 0.0, False,
                                 generator=torch.Generator().manual_seed(0),
                                 noise_levels=(levels, in_loss)).diffusion.item()

    # The loss over frames 1-4 is the mean of each one's own: the mask picks the frames.
    whole = loss(0.5, [1, 2, 3, 4])
    assert whole == pytest.approx(sum(loss(0.5, [f]) for f in range(1, 5)) / 4, rel=1e-5)
    assert loss(0.5, [1]) != pytest.approx(loss(0.5, [4]), rel=1e-3)
    assert loss(1.0, [1, 2, 3, 4]) != pytest.approx(whole, rel=1e-3)  # the levels are the ones given
