"""Dense local attention over the last few frames (Po et al. 2025, §4.1), with a KV cache.

Frames are grouped in chunks of `chunk` frames; a frame attends to every token of the frames of its
own chunk up to itself and of the previous `window // chunk - 1` chunks (paper defaults: chunk 5,
window 10). The paper lets a frame also see the later frames of its chunk; we keep the mask causal
at the frame level, because the environment produces one frame per action and the recurrent step must
give exactly what the parallel training pass gives. Tokens of one frame see each other both ways.
`window=None` is full causal attention over all past frames (the `causal_attn` baseline).

Frame indices count frames since the state was created, so chunk borders are the same whether frames
arrive one by one or in a window.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class AttentionConfig:
    n_heads: int = 4
    window: int | None = 10  # frames a query may reach back over, itself included; None = all
    chunk: int = 5  # frames per chunk; 1 = plain sliding window
    max_offset: int = 64  # learned per-head bias for temporal offsets 0..max_offset-1 (clamped)
    query_block_frames: int = 8  # frames of queries per attention call: bounds memory on long input

    def cache_frames(self) -> int | None:
        return self.window


def allowed_keys(query_index: torch.Tensor, key_index: torch.Tensor, config: AttentionConfig) -> torch.Tensor:
    """query_index: (B, Tq), key_index: (B, Tk) frame indices (-1 = empty cache slot).
    Returns (B, Tq, Tk) bool: may frame q attend to frame k."""
    q, k = query_index.unsqueeze(-1), key_index.unsqueeze(-2)
    allowed = (k >= 0) & (k <= q)
    if config.window is not None:
        chunks_back = max(config.window // config.chunk, 1) - 1
        allowed &= torch.div(k, config.chunk, rounding_mode="floor") >= (
            torch.div(q, config.chunk, rounding_mode="floor") - chunks_back)
    return allowed


class LocalAttention(nn.Module):
    def __init__(self, d_model: int, config: AttentionConfig) -> None:
        super().__init__()
        if d_model % config.n_heads:
            raise ValueError(f"attention: d_model={d_model} must be a multiple of n_heads={config.n_heads}")
        self.config = config
        self.head_dim = d_model // config.n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)
        self.offset_bias = nn.Parameter(torch.zeros(config.n_heads, config.max_offset))

    def forward(
        self,
        tokens: torch.Tensor,
        frame_index: torch.Tensor,
        cache: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """tokens: (B, T, N, D) for N tokens per frame; frame_index: (B, T) long.
        cache: (keys, values: (B, Tc, N, heads, head_dim), key_index: (B, Tc) long, -1 = empty).
        Returns (out: (B, T, N, D), updated cache holding the last `window` frames)."""
        batch, frames, n_tokens, dim = tokens.shape
        heads = self.config.n_heads
        q, k, v = self.qkv(tokens).view(batch, frames, n_tokens, 3, heads, self.head_dim).unbind(3)
        cache_k, cache_v, cache_index = cache
        all_k = torch.cat([cache_k.to(k.dtype), k], dim=1)
        all_v = torch.cat([cache_v.to(v.dtype), v], dim=1)
        all_index = torch.cat([cache_index, frame_index], dim=1)
        n_cached = cache_index.size(1)

        outputs = []
        step = self.config.query_block_frames
        reach = self.config.window  # frames before a query that can matter
        for start in range(0, frames, step):
            stop = min(start + step, frames)
            # Keys that any query of this block can see: at most `reach` frames before its first query.
            key_stop = n_cached + stop
            key_start = 0 if reach is None else max(0, n_cached + start - reach + 1)
            qi, ki = frame_index[:, start:stop], all_index[:, key_start:key_stop]
            allowed = allowed_keys(qi, ki, self.config)  # (B, tq, tk)
            offsets = (qi.unsqueeze(-1) - ki.unsqueeze(-2)).clamp(0, self.config.max_offset - 1)
            bias = self.offset_bias[:, offsets].permute(1, 0, 2, 3)  # (B, heads, tq, tk)
            bias = bias.masked_fill(~allowed.unsqueeze(1), float("-inf"))
            tq, tk = stop - start, key_stop - key_start
            # Expand frame-level bias to tokens: (B, heads, tq*N, tk*N).
            bias = bias.repeat_interleave(n_tokens, dim=2).repeat_interleave(n_tokens, dim=3)
            qb = q[:, start:stop].reshape(batch, tq * n_tokens, heads, self.head_dim).transpose(1, 2)
            kb = all_k[:, key_start:key_stop].reshape(batch, tk * n_tokens, heads, self.head_dim).transpose(1, 2)
            vb = all_v[:, key_start:key_stop].reshape(batch, tk * n_tokens, heads, self.head_dim).transpose(1, 2)
            out = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=bias.to(qb.dtype))
            outputs.append(out.transpose(1, 2).reshape(batch, tq, n_tokens, dim))
        out = self.out(torch.cat(outputs, dim=1))

        keep = all_index.size(1) if self.config.window is None else self.config.window
        new_cache = (all_k[:, -keep:].to(cache_k.dtype), all_v[:, -keep:].to(cache_v.dtype), all_index[:, -keep:])
        return out, new_cache
