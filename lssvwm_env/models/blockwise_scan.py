"""Block-wise SSM scan (Po et al. 2025, §4.1): the token grid is split into spatial blocks and each
block is scanned through time as its own sequence, its tokens frame after frame. Tokens at the same
place in consecutive frames are then b_h·b_w steps apart instead of H·W, which keeps old frames
within the SSM's reach. Block size (H, W) is the plain Mamba scan over the whole frame (the `ssm`
ablation); (1, 1) gives every token position its own sequence (the `block1` ablation)."""

from __future__ import annotations

import torch
from torch import nn

from lssvwm_env.models.ssm_mixer import Mamba2Mixer, SSMConfig


class BlockwiseScan(nn.Module):
    def __init__(self, d_model: int, grid: tuple[int, int], block: tuple[int, int], config: SSMConfig) -> None:
        super().__init__()
        if grid[0] % block[0] or grid[1] % block[1]:
            raise ValueError(f"block size {block} must divide the latent grid {grid}")
        self.grid, self.block = grid, block
        self.n_blocks = (grid[0] // block[0]) * (grid[1] // block[1])
        self.mixer = Mamba2Mixer(d_model, config)

    def state_shape(self) -> tuple[int, ...]:
        """Per batch element: one SSM state per block."""
        return (self.n_blocks, *self.mixer.state_shape())

    def forward(self, tokens: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens: (B, T, H, W, D); state: (B, n_blocks, heads, head_dim, d_state)."""
        batch, frames, height, width, dim = tokens.shape
        (bh, bw), (nh, nw) = self.block, (height // self.block[0], width // self.block[1])
        # (B, T, nh, bh, nw, bw, D) -> (B, nh, nw, T, bh, bw, D): one sequence per block, frame-major.
        sequences = tokens.reshape(batch, frames, nh, bh, nw, bw, dim).permute(0, 2, 4, 1, 3, 5, 6)
        sequences = sequences.reshape(batch * nh * nw, frames * bh * bw, dim)
        out, new_state = self.mixer(sequences, state.reshape(batch * nh * nw, *state.shape[2:]))
        out = out.reshape(batch, nh, nw, frames, bh, bw, dim).permute(0, 3, 1, 4, 2, 5, 6)
        return out.reshape(batch, frames, height, width, dim), new_state.reshape(state.shape).to(state.dtype)
