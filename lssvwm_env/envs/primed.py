"""Primed states kept for real contexts that come back.

Most resets draw their context from a small fixed set: the 4 x 32 frames of the checkpoint's
context.npz, a dataset's episode beginnings, arrays given to reset(options=) again. Priming is a
function of the frames and actions alone (the encoder and one backbone pass over clean frames, no
noise), so a context primed once need not be primed again; for the shipped default at 128 envs a
reset cost 11.8 s, nearly all of it encoding the same 128 frames again and again (issue 36).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np

from lssvwm_env.models.world_model import ModelStep

PRIMED_CACHE_BYTES = 256 << 20  # the default size: about 200 primed states of the shipped default


def context_key(frames: np.ndarray, actions: np.ndarray) -> bytes:
    """A digest of a context's frames and actions (shapes and dtypes included)."""
    digest = hashlib.blake2b(digest_size=16)
    for array in (frames, actions):
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.digest()


class PrimedCache:
    """Primed single-env steps (ModelStep of batch 1: state, last latent, features) by context_key,
    the least recently used dropped beyond `max_bytes`. States are never written in place (every
    model pass returns new tensors), so a cached state can be handed out as it is."""

    def __init__(self, max_bytes: int = PRIMED_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.entries: OrderedDict[bytes, ModelStep] = OrderedDict()
        self.bytes = 0

    def get(self, key: bytes) -> ModelStep | None:
        step = self.entries.get(key)
        if step is not None:
            self.entries.move_to_end(key)
        return step

    def put(self, key: bytes, step: ModelStep) -> None:
        if key in self.entries:
            return
        self.entries[key] = step
        self.bytes += self.size(step)
        while self.bytes > self.max_bytes and self.entries:
            _, dropped = self.entries.popitem(last=False)
            self.bytes -= self.size(dropped)

    @staticmethod
    def size(step: ModelStep) -> int:
        return step.state.nbytes() + step.latent.nbytes + step.features.nbytes
