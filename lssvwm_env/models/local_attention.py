"""Dense local attention over the last few frames (Po et al. 2025, §4.1), with a KV cache.

Frames are grouped in chunks of `chunk` frames; a frame attends to every token of the frames of its
own chunk up to itself and of the previous `window // chunk - 1` chunks (paper defaults: chunk 5,
window 10). The paper lets a frame also see the later frames of its chunk; we keep the mask causal
at the frame level, because the environment produces one frame per action and the recurrent step must
give exactly what the parallel training pass gives. Tokens of one frame see each other both ways.
`window=None` is full causal attention over all past frames (the `causal_attn` baseline).

Frame indices count frames since the state was created, so chunk borders are the same whether frames
arrive one by one or in a window.

How a query knows how far back a key lies (`temporal_encoding`): "rope" rotates queries and keys by
their frame index (rotary position embedding, Su et al. 2021, applied over time), so the offset enters
the dot product and the mask stays boolean, which PyTorch's fused attention kernels take (one call of
the `cpu` preset's training shape, forward and backward, AMD EPYC with avx512_bf16: 86 ms fused
against 232 ms for the unfused softmax). "offset_bias" adds a learned
bias per head and offset; a bias that needs a gradient forces the unfused path. The first models were
trained with it, and their configs, which predate the field, load with it.

Where a query sits in the frame (`spatial_encoding`): "rope" gives a third of each head's channels to
the token's row and a third to its column (2-D rotary embedding, as ViTs and video DiTs use), the rest
to time, so a head can attend to "the same place one frame back", or one cell east of it, whatever the
tokens hold: the copy and the shift that the dynamics of a moving view are made of (issue 39). "none"
leaves the only spatial signal to the learned position embedding added at the input, which a noisy
frame's tokens swamp; models trained before the field load with it.
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
    temporal_encoding: str = "rope"  # "rope" or "offset_bias" (module docstring)
    rope_base: float = 10_000.0  # rope: the slowest rotation turns once in about 2 pi * rope_base frames
    spatial_encoding: str = "none"  # "rope" or "none" (module docstring)
    spatial_rope_base: float = 100.0  # spatial rope: rotation frequencies from 1 to 1/base radians per token
    max_offset: int = 64  # offset_bias: learned per-head bias for temporal offsets 0..max_offset-1 (clamped)
    query_block_frames: int = 8  # frames of queries per attention call: bounds memory on long input

    def __post_init__(self) -> None:
        if self.temporal_encoding not in ("rope", "offset_bias"):
            raise ValueError("attention.temporal_encoding must be 'rope' or 'offset_bias', "
                             f"got {self.temporal_encoding!r}")
        if self.spatial_encoding not in ("rope", "none"):
            raise ValueError(f"attention.spatial_encoding must be 'rope' or 'none', got {self.spatial_encoding!r}")

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


def rotate_by_frame(x: torch.Tensor, frame_index: torch.Tensor, base: float) -> torch.Tensor:
    """Rotary embedding over time. x: (B, T, N, heads, head_dim); frame_index: (B, T)."""
    return rotate(x, frame_index[:, :, None, None], base)


def rotate(x: torch.Tensor, position: torch.Tensor, base: float) -> torch.Tensor:
    """Rotary embedding: pairs of channels (i, i + d/2) of x (..., d) turn by position *
    base^(-2i/d); position broadcasts against x's leading dimensions. The angles are computed in
    float64, so relative offsets stay exact at frame 100,000 and beyond."""
    half = x.size(-1) // 2
    freqs = base ** (-torch.arange(half, device=x.device, dtype=torch.float64) / half)
    angles = position.to(torch.float64).unsqueeze(-1) * freqs
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    first, second = x[..., :half], x[..., half:2 * half]
    rotated = [first * cos - second * sin, first * sin + second * cos]
    if x.size(-1) % 2:
        rotated.append(x[..., 2 * half:])
    return torch.cat(rotated, dim=-1)


class LocalAttention(nn.Module):
    def __init__(self, d_model: int, config: AttentionConfig, tokens: tuple[int, int] | None = None) -> None:
        """tokens: the (rows, columns) of a frame's tokens, which spatial rope needs."""
        super().__init__()
        if d_model % config.n_heads:
            raise ValueError(f"attention: d_model={d_model} must be a multiple of n_heads={config.n_heads}")
        self.config = config
        self.head_dim = d_model // config.n_heads
        # Spatial rope: two even groups of channels for row and column, the rest (even) for time.
        self.spatial_dims = 2 * (self.head_dim // 6) if config.spatial_encoding == "rope" else 0
        if self.spatial_dims:
            if tokens is None:
                raise ValueError("attention.spatial_encoding 'rope' needs the token grid")
            rows, cols = torch.meshgrid(torch.arange(tokens[0]), torch.arange(tokens[1]), indexing="ij")
            self.register_buffer("token_rows", rows.reshape(-1, 1).float(), persistent=False)  # (N, 1): per head
            self.register_buffer("token_cols", cols.reshape(-1, 1).float(), persistent=False)
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)
        if config.temporal_encoding == "offset_bias":
            self.offset_bias = nn.Parameter(torch.zeros(config.n_heads, config.max_offset))

    def frames_back(self, first_query: torch.Tensor) -> int:
        """How many frames before a block's first query (frame indices (B,)) its queries can reach:
        back to the first frame of the oldest chunk in the window. Frames arrive consecutively, so
        this bounds the keys of a block; when every lane's query starts a chunk (training windows
        that are a multiple of `chunk` long), no key is computed only to be masked."""
        if self.config.window is None:
            return 1 << 62
        chunks_back = max(self.config.window // self.config.chunk, 1) - 1
        return int((first_query % self.config.chunk).max()) + chunks_back * self.config.chunk

    def project(self, tokens: torch.Tensor, frame_index: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """tokens (B, T, N, D) -> q, k, v: (B, T, N, heads, head_dim), rotated by frame with rope."""
        batch, frames, n_tokens, _ = tokens.shape
        q, k, v = self.qkv(tokens).view(batch, frames, n_tokens, 3, self.config.n_heads, self.head_dim).unbind(3)
        if self.spatial_dims:
            q, k = self.rotate_in_frame(q), self.rotate_in_frame(k)
        if self.config.temporal_encoding == "rope":  # keys enter the cache rotated by their own frame
            q, k = self.rotate_by_frame(q, frame_index), self.rotate_by_frame(k, frame_index)
        return q, k, v

    def rotate_by_frame(self, x: torch.Tensor, frame_index: torch.Tensor) -> torch.Tensor:
        """The temporal rope on the channels spatial rope leaves (all of them without it)."""
        s = self.spatial_dims
        rotated = rotate_by_frame(x[..., s:], frame_index, self.config.rope_base)
        return torch.cat([x[..., :s], rotated], dim=-1) if s else rotated

    def rotate_in_frame(self, x: torch.Tensor) -> torch.Tensor:
        """Spatial rope: x (B, T, N, heads, head_dim), its first spatial_dims / 2 channels turned by
        the token's row, the next as many by its column."""
        half, base = self.spatial_dims // 2, self.config.spatial_rope_base
        return torch.cat([rotate(x[..., :half], self.token_rows, base),
                          rotate(x[..., half:2 * half], self.token_cols, base), x[..., 2 * half:]], dim=-1)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, query_index: torch.Tensor,
               key_index: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """q: (B, tq, N, heads, head_dim); k, v: (B, tk, N, heads, head_dim); frame indices (B, tq), (B, tk);
        allowed: (B, tq, tk) bool, frame to frame. Returns (B, tq, N, D) before the output projection."""
        batch, tq, n_tokens, heads, head_dim = q.shape
        tk = k.size(1)
        mask = allowed.unsqueeze(1)  # (B, 1, tq, tk)
        if self.config.temporal_encoding == "offset_bias":
            offsets = (query_index.unsqueeze(-1) - key_index.unsqueeze(-2)).clamp(0, self.config.max_offset - 1)
            bias = self.offset_bias[:, offsets].permute(1, 0, 2, 3)  # (B, heads, tq, tk)
            mask = bias.masked_fill(~mask, float("-inf")).to(q.dtype)
        # Expand the frame-level mask to tokens: (B, 1 or heads, tq*N, tk*N).
        mask = mask.repeat_interleave(n_tokens, dim=2).repeat_interleave(n_tokens, dim=3)
        qb = q.reshape(batch, tq * n_tokens, heads, head_dim).transpose(1, 2)
        kb = k.reshape(batch, tk * n_tokens, heads, head_dim).transpose(1, 2)
        vb = v.reshape(batch, tk * n_tokens, heads, head_dim).transpose(1, 2)
        out = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=mask)
        return out.transpose(1, 2).reshape(batch, tq, n_tokens, heads * head_dim)

    def forward(
        self,
        tokens: torch.Tensor,
        frame_index: torch.Tensor,
        cache: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        noisy_tokens: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor | None]:
        """tokens: (B, T, N, D) for N tokens per frame; frame_index: (B, T) long.
        cache: (keys, values: (B, Tc, N, heads, head_dim), key_index: (B, Tc) long, -1 = empty).
        noisy_tokens: (B, T, N, D) for clean-context training (backbone.py): noisy frame t attends to
        the clean frames before it in the window and to itself, as `imagine` denoises a frame.
        Returns (out: (B, T, N, D), updated cache holding the last `window` frames, noisy out or None)."""
        frames = tokens.size(1)
        q, k, v = self.project(tokens, frame_index)
        cache_k, cache_v, cache_index = cache
        all_k = torch.cat([cache_k.to(k.dtype), k], dim=1)
        all_v = torch.cat([cache_v.to(v.dtype), v], dim=1)
        all_index = torch.cat([cache_index, frame_index], dim=1)
        n_cached = cache_index.size(1)
        if noisy_tokens is not None:
            noisy_q, noisy_k, noisy_v = self.project(noisy_tokens, frame_index)

        outputs, noisy_outputs = [], []
        step = self.config.query_block_frames
        for start in range(0, frames, step):
            stop = min(start + step, frames)
            key_stop = n_cached + stop
            key_start = max(0, n_cached + start - self.frames_back(frame_index[:, start]))
            qi, ki = frame_index[:, start:stop], all_index[:, key_start:key_stop]
            allowed = allowed_keys(qi, ki, self.config)  # (B, tq, tk)
            kb, vb = all_k[:, key_start:key_stop], all_v[:, key_start:key_stop]
            outputs.append(self.attend(q[:, start:stop], kb, vb, qi, ki, allowed))
            if noisy_tokens is not None:
                # Keys: the clean frames strictly before each query, then the block's noisy frames,
                # each seen only by its own frame's queries.
                own = torch.eye(stop - start, dtype=torch.bool, device=qi.device).expand(qi.size(0), -1, -1)
                noisy_allowed = torch.cat([allowed & (ki.unsqueeze(-2) < qi.unsqueeze(-1)), own], dim=2)
                noisy_outputs.append(self.attend(
                    noisy_q[:, start:stop], torch.cat([kb, noisy_k[:, start:stop]], 1),
                    torch.cat([vb, noisy_v[:, start:stop]], 1), qi, torch.cat([ki, qi], 1), noisy_allowed))
        out = self.out(torch.cat(outputs, dim=1))
        noisy_out = self.out(torch.cat(noisy_outputs, dim=1)) if noisy_tokens is not None else None

        keep = all_index.size(1) if self.config.window is None else self.config.window
        new_cache = (all_k[:, -keep:].to(cache_k.dtype), all_v[:, -keep:].to(cache_v.dtype), all_index[:, -keep:])
        return out, new_cache, noisy_out
