"""Our PSNR and SSIM against scikit-image's on the same frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lssvwm_env.evaluation.metrics import psnr, sharpness, ssim



def _frame_pairs(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs from identical-but-noisy to unrelated: smooth images, a noisy copy, and pure noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:64, 0:64]
    targets, generated = [], []
    for i in range(n):
        base = 127 + 100 * np.sin(xx / (3 + i) + i)[..., None] * np.cos(yy / (5 + 2 * i))[..., None] * np.array([1.0, 0.6, -0.8])
        target = np.clip(base, 0, 255).astype(np.uint8)
        if i % 3 == 0:
            gen = rng.integers(0, 256, target.shape)
        else:
            gen = target.astype(np.int64) + rng.normal(0, 1 + 8 * (i - 1), target.shape).round().astype(np.int64)
        targets.append(target)
        generated.append(np.clip(gen, 0, 255).astype(np.uint8))
    return np.stack(generated), np.stack(targets)


@pytest.mark.parametrize("seed", [0, 1])
def test_psnr_and_ssim_match_scikit_image(seed):
    generated, target = _frame_pairs(seed, 6)
    ours_psnr = psnr(torch.from_numpy(generated), torch.from_numpy(target)).numpy()
    ours_ssim = ssim(torch.from_numpy(generated), torch.from_numpy(target)).numpy()
    for i in range(len(target)):
        ref_psnr = peak_signal_noise_ratio(target[i], generated[i], data_range=255)
        ref_ssim = structural_similarity(generated[i], target[i], channel_axis=-1, data_range=255)
        assert abs(ours_psnr[i] - ref_psnr) < 1e-6, (i, ours_psnr[i], ref_psnr)
        assert abs(ours_ssim[i] - ref_ssim) < 1e-6, (i, ours_ssim[i], ref_ssim)
    # The pairs span the range, so the comparison is not between near-constant values.
    assert ours_ssim.min() < 0.1 < 0.9 < ours_ssim.max() and ours_psnr.max() - ours_psnr.min() > 10


def test_metrics_keep_leading_dimensions():
    generated, target = _frame_pairs(2, 6)
    g = torch.from_numpy(generated).reshape(2, 3, 64, 64, 3)
    t = torch.from_numpy(target).reshape(2, 3, 64, 64, 3)
    assert psnr(g, t).shape == (2, 3) and ssim(g, t).shape == (2, 3)
    flat = ssim(torch.from_numpy(generated), torch.from_numpy(target))
    assert torch.allclose(ssim(g, t).flatten(), flat)


def test_sharpness_counts_edges_and_blur_lowers_it():
    rng = np.random.default_rng(0)
    frames = torch.from_numpy(rng.integers(0, 256, (2, 3, 64, 64, 3), dtype=np.uint8))
    flat = torch.full((64, 64, 3), 128, dtype=torch.uint8)
    assert sharpness(flat).item() == 0.0
    stripes = torch.zeros(64, 64, 3, dtype=torch.uint8)
    stripes[:, ::2] = 255  # every horizontal neighbour differs by 255, no vertical one
    assert sharpness(stripes).item() == pytest.approx(255 / 2)
    blurred = torch.nn.functional.avg_pool2d(frames.flatten(0, 1).permute(0, 3, 1, 2).float(), 3, 1, 1)
    blurred = blurred.permute(0, 2, 3, 1).reshape(frames.shape).round().to(torch.uint8)
    assert sharpness(frames).shape == (2, 3)
    assert (sharpness(blurred) < 0.5 * sharpness(frames)).all()
