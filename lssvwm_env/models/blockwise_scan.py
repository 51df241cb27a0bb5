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
        self.mixer = Mamba2Mixer(d_model, config, steps_per_frame=block[0] * block[1])

    def state_shape(self) -> tuple[int, ...]:
        """Per batch element: one SSM state per block."""
        return (self.n_blocks, *self.mixer.state_shape())

    def to_sequences(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T, H, W, D) -> (B * blocks, T * bh * bw, D): one sequence per block, frame-major."""
        batch, frames, height, width, dim = tokens.shape
        (bh, bw), (nh, nw) = self.block, (height // self.block[0], width // self.block[1])
        sequences = tokens.reshape(batch, frames, nh, bh, nw, bw, dim).permute(0, 2, 4, 1, 3, 5, 6)
        return sequences.reshape(batch * nh * nw, frames * bh * bw, dim)

    def from_sequences(self, sequences: torch.Tensor, batch: int, frames: int) -> torch.Tensor:
        """The inverse of `to_sequences`."""
        (bh, bw), (nh, nw) = self.block, (self.grid[0] // self.block[0], self.grid[1] // self.block[1])
        out = sequences.reshape(batch, nh, nw, frames, bh, bw, -1).permute(0, 3, 1, 4, 2, 5, 6)
        return out.reshape(batch, frames, *self.grid, -1)

    def forward(self, tokens: torch.Tensor, state: torch.Tensor,
                keep_state: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """tokens: (B, T, H, W, D); state: (B, n_blocks, heads, head_dim, d_state). Returns (out, the
        state after the tokens, or None with keep_state=False: the state only read)."""
        batch, frames = tokens.shape[:2]
        out, new_state = self.mixer(self.to_sequences(tokens), state.reshape(-1, *state.shape[2:]),
                                    keep_state=keep_state)
        if new_state is not None:
            new_state = new_state.reshape(state.shape).to(state.dtype)
        return self.from_sequences(out, batch, frames), new_state

    def forward_clean_context(self, tokens: torch.Tensor, noisy_tokens: torch.Tensor, state: torch.Tensor
                              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Clean-context training (backbone.py): the clean frames (B, T, H, W, D) scanned as in `forward`,
        and each noisy frame scanned alone from the state the clean frames before it left, as
        `imagine` denoises a frame from the committed past. Returns (clean out, final state, noisy out)."""
        batch, frames = tokens.shape[:2]
        per_frame = self.block[0] * self.block[1]
        flat_state = state.reshape(-1, *state.shape[2:])
        out, new_state, after = self.mixer(self.to_sequences(tokens), flat_state, states_every=per_frame)
        entering = torch.cat([flat_state.unsqueeze(1).to(after.dtype), after[:, :-1]], dim=1)  # (B*blocks, T, ...)
        noisy = self.to_sequences(noisy_tokens).reshape(-1, per_frame, noisy_tokens.size(-1))
        noisy_out, _ = self.mixer(noisy, entering.reshape(-1, *entering.shape[2:]), keep_state=False)
        noisy_out = self.from_sequences(noisy_out.reshape(-1, frames * per_frame, noisy_out.size(-1)), batch, frames)
        return self.from_sequences(out, batch, frames), new_state.reshape(state.shape).to(state.dtype), noisy_out
