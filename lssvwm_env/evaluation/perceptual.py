"""LPIPS (Zhang et al. 2018), the paper's third metric, used only when it can run offline.

LPIPS needs the `lpips` package (which ships its linear heads) and torchvision's pretrained AlexNet
weights in the torch hub cache. We never download them: an evaluation must not depend on the
network, and a half-downloaded backbone would silently change the numbers. When either is missing
the metric is left out and `lpips_status` says why, for metrics.json and the report.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

ALEXNET_WEIGHTS = "alexnet-owt-7be5be79.pth"  # the file torchvision's alexnet(pretrained=True) loads


def lpips_status() -> tuple[bool, str]:
    """(available, explanation)."""
    missing = [name for name in ("lpips", "torchvision") if importlib.util.find_spec(name) is None]
    if missing:
        return False, (f"LPIPS not computed: the {' and '.join(missing)} package{'s are' if len(missing) > 1 else ' is'} "
                       "not installed (pip install lpips torchvision, with AlexNet's weights in the torch hub cache)")
    weights = Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_WEIGHTS
    if not weights.exists():
        return False, (f"LPIPS not computed: AlexNet's pretrained weights are not in {weights} and this "
                       "evaluation does not download them")
    return True, "LPIPS (AlexNet, v0.1) from local weights"


class LPIPS:
    """Per-frame LPIPS on uint8 frames; construct only when `lpips_status()[0]` is True."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        import lpips
        self.net = lpips.LPIPS(net="alex", verbose=False).to(device).eval()
        self.device = device

    @torch.no_grad()
    def __call__(self, generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """generated, target: (..., H, W, 3) uint8 -> LPIPS per frame (...), lower is better."""
        lead = generated.shape[:-3]
        generated = generated.reshape(-1, *generated.shape[-3:])
        target = target.reshape(-1, *target.shape[-3:])

        def prepare(frames: torch.Tensor) -> torch.Tensor:  # LPIPS takes (N, 3, H, W) in [-1, 1]
            return frames.permute(0, 3, 1, 2).float().to(self.device) / 127.5 - 1.0

        out = [self.net(prepare(generated[i:i + 256]), prepare(target[i:i + 256])).flatten().cpu()
               for i in range(0, generated.shape[0], 256)]
        return torch.cat(out).reshape(lead)
