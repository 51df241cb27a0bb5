"""The figures Po et al. 2025 report for Memory Maze (arXiv 2505.20171; docs/design.md), which the
report puts beside ours. Higher SSIM and PSNR are better, lower LPIPS."""

from __future__ import annotations

from dataclasses import dataclass

CITATION = "Po et al. 2025, \"Long-Context State-Space Video World Models\" (ICCV 2025, arXiv 2505.20171)"


@dataclass(frozen=True)
class PaperResult:
    task: str  # retrieval | reasoning
    model: str
    context: int
    generate: int
    ssim: float
    lpips: float
    psnr: float


PAPER_RESULTS = (
    PaperResult("retrieval", "Ours (block-wise SSM + local attention)", 400, 400, 0.898, 0.069, 30.8),
    PaperResult("retrieval", "Causal attention, 192-frame window", 400, 400, 0.829, 0.147, 26.4),
    PaperResult("retrieval", "Mamba2 alone", 400, 400, 0.747, 0.313, 20.4),
    PaperResult("reasoning", "Ours (block-wise SSM + local attention)", 576, 224, 0.855, 0.099, 28.2),
)
