"""The recurrent state of the world model: plain tensors, batch first, so a state can be cloned,
indexed, stacked, saved and reset per batch element (state is data: an env snapshot is a copy of tensors)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Callable

import torch


@dataclass
class WorldModelState:
    """Per layer, the SSM state of every spatial block and the attention KV cache; and the count of
    frames committed so far (it places chunk borders of the local attention).

    ssm[layer]:        (B, n_blocks, heads, head_dim, d_state), or an empty (B, 0) for layers without SSM
    keys/values[layer]: (B, Tc, tokens_per_frame, heads, head_dim); Tc = attention window (constant),
                        or the whole history for full causal attention; (B, 0) without attention
    key_index:         (B, Tc) frame index of each cached frame, -1 for an empty slot
    frame_count:       (B,) frames committed since the state was created
    """

    ssm: list[torch.Tensor]
    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    key_index: torch.Tensor
    frame_count: torch.Tensor

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "WorldModelState":
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = [fn(t) for t in value] if isinstance(value, list) else fn(value)
        return WorldModelState(**out)

    def clone(self) -> "WorldModelState":
        return self.map(torch.clone)

    def detach(self) -> "WorldModelState":
        return self.map(torch.Tensor.detach)

    def to(self, device: torch.device | str) -> "WorldModelState":
        return self.map(lambda t: t.to(device))

    def __getitem__(self, index) -> "WorldModelState":
        """Select batch elements (an int keeps the batch dimension)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return self.map(lambda t: t[index])

    @property
    def batch_size(self) -> int:
        return self.frame_count.size(0)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors())

    def tensors(self) -> list[torch.Tensor]:
        out: list[torch.Tensor] = []
        for f in fields(self):
            value = getattr(self, f.name)
            out.extend(value if isinstance(value, list) else [value])
        return out

    def with_tensors(self, tensors: list[torch.Tensor]) -> "WorldModelState":
        """A state of the same structure holding `tensors` (in the order of `tensors()`): how a state
        saved as a flat list of safetensors entries is rebuilt."""
        out, i = {}, 0
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                out[f.name] = list(tensors[i:i + len(value)])
                i += len(value)
            else:
                out[f.name] = tensors[i]
                i += 1
        return WorldModelState(**out)

    @staticmethod
    def cat(states: list["WorldModelState"]) -> "WorldModelState":
        """Concatenate along the batch. States with growing caches must have equal cache lengths."""
        first = states[0]
        out = {}
        for f in fields(first):
            values = [getattr(s, f.name) for s in states]
            if isinstance(values[0], list):
                out[f.name] = [torch.cat(group, 0) for group in zip(*values)]
            else:
                out[f.name] = torch.cat(values, 0)
        return WorldModelState(**out)

    @property
    def cache_frames(self) -> int:
        return self.key_index.size(1)

    def with_cache_frames(self, frames: int) -> "WorldModelState":
        """The same state with its KV cache cut or padded to its last `frames` slots. Padding adds
        empty slots (key_index -1) in front, where attention masks them out."""
        pad = frames - self.cache_frames
        if pad == 0:
            return self

        def fit(t: torch.Tensor, fill: float) -> torch.Tensor:
            if pad < 0:
                return t[:, -pad:]
            return torch.cat([t.new_full((t.size(0), pad, *t.shape[2:]), fill), t], dim=1)

        def fit_layer(t: torch.Tensor) -> torch.Tensor:
            return t if t.dim() == 2 else fit(t, 0.0)  # (B, 0): a layer without attention

        return replace(self, keys=[fit_layer(k) for k in self.keys], values=[fit_layer(v) for v in self.values],
                       key_index=fit(self.key_index, -1))

    def where(self, mask: torch.Tensor, other: "WorldModelState") -> "WorldModelState":
        """Per batch element: `other` where mask (B,) is True, else self. Used to reset finished envs
        and training lanes. Caches that grow with the history (full causal attention) may differ in
        length: both are padded to the longer, and slots no element uses any more are dropped."""
        frames = max(self.cache_frames, other.cache_frames)
        mine_state, their_state = self.with_cache_frames(frames), other.with_cache_frames(frames)

        def pick(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            m = mask.view(-1, *([1] * (a.dim() - 1)))
            return torch.where(m, b, a)
        out = {}
        for f in fields(self):
            mine, theirs = getattr(mine_state, f.name), getattr(their_state, f.name)
            out[f.name] = [pick(a, b) for a, b in zip(mine, theirs)] if isinstance(mine, list) else pick(mine, theirs)
        picked = replace(self, **out)
        if self.cache_frames == other.cache_frames:
            return picked  # fixed-size caches (windowed attention) keep their size
        used = (picked.key_index >= 0).any(0)
        first_used = int(used.float().argmax()) if bool(used.any()) else frames
        return picked.with_cache_frames(frames - first_used)
