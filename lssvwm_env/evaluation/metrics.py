"""Per-frame image metrics on uint8 RGB frames. SSIM follows scikit-image's `structural_similarity`
defaults (7x7 uniform window, sample covariance, data range 255, mean over channels and the valid
interior), so our figures can be checked against it (tests/test_eval_metrics.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def psnr(generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """generated, target: (..., H, W, 3) uint8 -> PSNR in dB per frame (...). Identical frames give inf."""
    err = (generated.double() - target.double()).pow(2).flatten(-3).mean(-1)
    return 10 * torch.log10(255.0**2 / err)


def ssim(generated: torch.Tensor, target: torch.Tensor, window: int = 7) -> torch.Tensor:
    """generated, target: (..., H, W, 3) uint8 -> SSIM per frame (...)."""
    lead = generated.shape[:-3]
    x = generated.reshape(-1, *generated.shape[-3:]).permute(0, 3, 1, 2).double()
    y = target.reshape(-1, *target.shape[-3:]).permute(0, 3, 1, 2).double()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    n = window * window
    cov_norm = n / (n - 1)  # sample covariance, as scikit-image's default

    def mean(t: torch.Tensor) -> torch.Tensor:  # valid-region box filter = skimage's filter then crop
        return F.avg_pool2d(t, window, stride=1)

    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3)).reshape(lead)


def sharpness(frames: torch.Tensor) -> torch.Tensor:
    """frames: (..., H, W, 3) uint8 -> mean absolute difference between neighbouring pixels per frame
    (...): the edges a frame draws. PSNR rewards a blurred mean of the futures a model cannot tell
    apart; the ratio of generated to real sharpness says how much of that blur a figure hides."""
    x = frames.double()
    across = (x[..., :, 1:, :] - x[..., :, :-1, :]).abs().flatten(-3).mean(-1)
    down = (x[..., 1:, :, :] - x[..., :-1, :, :]).abs().flatten(-3).mean(-1)
    return (across + down) / 2
