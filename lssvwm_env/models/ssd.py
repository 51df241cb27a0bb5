"""Mamba-2's state-space duality (SSD) scan in pure PyTorch: the reference that runs everywhere.

The selective SSM with a scalar decay per head (Mamba-2, Dao & Gu 2024, §3) is the recurrence

    state_t = exp(dt_t * A) * state_{t-1} + dt_t * x_t ⊗ B_t        state: (heads, head_dim, d_state)
    y_t     = state_t · C_t

`ssd_chunked` computes it for training and for priming on long context: parallel (matmuls) inside
chunks of `chunk_size` steps, recurrent across chunks. `ssd_step` is the single-step update, for a
sequence of one token (at inference, a frame of a 1x1 block); a frame's tokens of a larger block go
through `ssd_chunked` as one chunk. Both take an initial state and return the final state, so state
carries across windows.
When CUDA and `mamba-ssm` are present, `ssd_scan` uses its fused kernel instead. The reference is
tested against a naive step-by-step recurrence everywhere (tests/test_ssd.py); the kernel against the
reference only where a GPU and the package are (tests/test_ssd_cuda.py), which no machine of this
project has had yet.

Shapes (single B/C group, as in the paper's model):
    x:  (batch, length, heads, head_dim)     dt: (batch, length, heads), positive
    A:  (heads,), negative                   B, C: (batch, length, d_state)
    state: (batch, heads, head_dim, d_state)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def segment_sums(log_decay: torch.Tensor) -> torch.Tensor:
    """(..., T) -> (..., T, T) with out[..., i, j] = sum_{j < k <= i} log_decay[k] for j <= i and
    -inf above the diagonal, as a difference of cumulative sums (as mamba-ssm's kernels compute it).
    mamba's `ssd_minimal` builds it with a masked cumulative sum over a (T, T) copy instead, exact to
    the last bit when decays are large, but that cost 40% of a training step here (cumsum, flip and
    copies of (..., 64, 64) tensors); the difference loses about eps * |sum| (1e-4 relative at a
    summed log-decay of -1000 in float32), on terms whose decay has made them negligible."""
    cumulative = torch.cumsum(log_decay, dim=-1)
    sums = cumulative.unsqueeze(-1) - cumulative.unsqueeze(-2)
    length = log_decay.size(-1)
    lower = torch.tril(torch.ones(length, length, dtype=torch.bool, device=log_decay.device), 0)
    return sums.masked_fill(~lower, float("-inf"))


def ssd_chunked(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    chunk_size: int,
    initial_state: torch.Tensor | None = None,
    states_every: int = 0,
    keep_state: bool = True,
) -> tuple[torch.Tensor, ...]:
    """Chunked SSD scan. Returns (y: (batch, length, heads, head_dim), final_state), and with
    `states_every` = k > 0 also the state after every k steps: (batch, length // k, heads, head_dim,
    d_state) (the model takes k = tokens per frame of a block: the state after each frame).
    keep_state=False: the state is only read (a denoising pass at inference), and None stands for
    the final state; a one-chunk scan then skips writing it, the costliest part of its step."""
    batch, length, heads, head_dim = x.shape
    d_state = B.size(-1)
    if initial_state is None:
        initial_state = x.new_zeros(batch, heads, head_dim, d_state)
    if states_every:  # one chunk per group of k steps: the states entering chunks are the ones asked for
        chunk_size = states_every
    # Pad to whole chunks with dt = 0: a padded step neither decays the state nor writes to it,
    # so the final state is exact.
    pad = (-length) % chunk_size
    if pad:
        x, dt = F.pad(x, (0, 0, 0, 0, 0, pad)), F.pad(dt, (0, 0, 0, pad))
        B, C = F.pad(B, (0, 0, 0, pad)), F.pad(C, (0, 0, 0, pad))
    n_chunks = (length + pad) // chunk_size
    xdt = (x * dt.unsqueeze(-1)).view(batch, n_chunks, chunk_size, heads, head_dim)
    B = B.view(batch, n_chunks, chunk_size, d_state)
    C = C.view(batch, n_chunks, chunk_size, d_state)
    log_decay = (dt * A).view(batch, n_chunks, chunk_size, heads).permute(0, 3, 1, 2)  # (b, h, c, l)
    log_decay_cum = torch.cumsum(log_decay, dim=-1)

    # 1. Inside each chunk: the quadratic (attention-like) form, y_l = sum_{s<=l} C_l.B_s decay(s->l) xdt_s.
    decay_within = torch.exp(segment_sums(log_decay)).transpose(1, 2)  # (b, c, h, l, s)
    scores = torch.matmul(C, B.transpose(-1, -2)).unsqueeze(2) * decay_within  # (b, c, h, l, s)
    y_within = torch.matmul(scores, xdt.transpose(2, 3)).transpose(2, 3)  # (b, c, l, h, p)

    # 2. The state each chunk writes by its own end, from its inputs decayed to the chunk's last step.
    decay_to_end = torch.exp(log_decay_cum[..., -1:] - log_decay_cum)  # (b, h, c, s)

    # 3. Across chunks: the recurrence over chunk boundaries, the initial state as chunk "-1".
    if n_chunks == 1:
        # One chunk: a frame of a block at inference, the noisy frames of clean-context training.
        # The state is the largest tensor here (at inference 20 MB for 128 envs' 2x2 blocks), so the
        # writes are added into the decayed state in place by the matmul that makes them
        # (baddbmm), not as a third tensor of the state's size.
        entering_states = initial_state.unsqueeze(1)
        final_state = None
        if keep_state or states_every:
            final_state = (torch.exp(log_decay_cum[..., 0, -1])[..., None, None] * initial_state).contiguous()
            weighted = (xdt[:, 0] * decay_to_end[:, :, 0].transpose(1, 2).unsqueeze(-1))  # (b, s, h, p)
            weighted = weighted.permute(0, 2, 3, 1).reshape(batch, heads * head_dim, chunk_size)
            final_state.view(batch, heads * head_dim, d_state).baddbmm_(weighted, B[:, 0])
    else:
        chunk_writes = torch.einsum("bcsn,bhcs,bcshp->bchpn", B, decay_to_end, xdt)
        writes = torch.cat([initial_state.unsqueeze(1), chunk_writes], dim=1)  # (b, c+1, h, p, n)
        chunk_log_decay = F.pad(log_decay_cum[..., -1], (1, 0))  # (b, h, c+1)
        decay_across = torch.exp(segment_sums(chunk_log_decay))  # (b, h, c+1, c+1)
        states = torch.einsum("bhzc,bchpn->bzhpn", decay_across, writes)
        entering_states, final_state = states[:, :-1], states[:, -1]

    # 4. What the state entering a chunk contributes to each of its outputs.
    decay_from_start = torch.exp(log_decay_cum)  # (b, h, c, l)
    y_from_state = torch.einsum("bcln,bchpn,bhcl->bclhp", C, entering_states, decay_from_start)

    y = (y_within + y_from_state).reshape(batch, n_chunks * chunk_size, heads, head_dim)
    if not states_every:
        return y[:, :length], final_state if keep_state else None

    after_chunks = torch.cat([entering_states[:, 1:], final_state.unsqueeze(1)], dim=1)
    return y[:, :length], final_state, after_chunks[:, :length // states_every]


def ssd_step(
    x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, state: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One recurrent step. x: (batch, heads, head_dim), dt: (batch, heads), B, C: (batch, d_state).
    Returns (y: (batch, heads, head_dim), new_state)."""
    decay = torch.exp(dt * A)[..., None, None]
    state = decay * state + (x * dt.unsqueeze(-1)).unsqueeze(-1) * B[:, None, None, :]
    y = torch.einsum("bhpn,bn->bhp", state, C)
    return y, state


def _mamba_ssm_kernel():
    """The fused Triton kernel of `mamba-ssm` (extra `[cuda]`), or None. On a CPU machine the package
    cannot even be imported (it loads `selective_scan_cuda`), so any failure means 'not available'."""
    if not torch.cuda.is_available():
        return None
    try:
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
    except Exception:  # noqa: BLE001 - ImportError, OSError from missing CUDA libraries, ...
        return None
    return mamba_chunk_scan_combined


def ssd_scan(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    chunk_size: int,
    initial_state: torch.Tensor | None = None,
    states_every: int = 0,
    keep_state: bool = True,
) -> tuple[torch.Tensor, ...]:
    """The scan the model calls: one step when length is 1, the `mamba-ssm` kernel on CUDA when
    installed, the chunked PyTorch reference otherwise (always when `states_every` asks for the
    intermediate states, which the kernel does not return). Runs in float32 at least: cumulative
    log-decays lose too much in bf16. Returns as `ssd_chunked`."""
    compute_dtype = torch.promote_types(x.dtype, torch.float32)
    x, dt, B, C = (t.to(compute_dtype) for t in (x, dt, B, C))
    A = A.to(compute_dtype)
    if initial_state is not None:
        initial_state = initial_state.to(compute_dtype)
    if x.size(1) == 1:
        state = initial_state if initial_state is not None else x.new_zeros(
            x.size(0), x.size(2), x.size(3), B.size(-1))
        y, state = ssd_step(x[:, 0], dt[:, 0], A, B[:, 0], C[:, 0], state)
        return (y.unsqueeze(1), state if keep_state else None) + ((state.unsqueeze(1),) if states_every else ())
    kernel = _mamba_ssm_kernel() if x.is_cuda and not states_every else None
    if kernel is not None:
        y, final_state = kernel(
            x.contiguous(), dt.contiguous(), A, B.unsqueeze(2).contiguous(), C.unsqueeze(2).contiguous(),
            chunk_size=chunk_size, initial_states=initial_state, return_final_states=True)
        return y, final_state if keep_state else None
    with torch.autocast(device_type=x.device.type, enabled=False):
        # A sequence shorter than a chunk (one frame of a small block at inference) is one chunk.
        return ssd_chunked(x, dt, A, B, C, min(chunk_size, x.size(1)), initial_state, states_every, keep_state)
