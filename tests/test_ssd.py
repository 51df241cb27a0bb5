"""The chunked SSD scan and the single-step update against a naive recurrence written here."""

import pytest
import torch

from lssvwm_env.models.ssd import ssd_chunked, ssd_scan, ssd_step


def naive_recurrence(x, dt, A, B, C, state):
    """state_t = exp(dt_t A) state_{t-1} + dt_t x_t B_t^T ; y_t = state_t C_t, one step at a time."""
    ys = []
    for t in range(x.size(1)):
        decay = torch.exp(dt[:, t] * A)[:, :, None, None]
        state = decay * state + dt[:, t, :, None, None] * x[:, t, :, :, None] * B[:, t, None, None, :]
        ys.append(torch.einsum("bhpn,bn->bhp", state, C[:, t]))
    return torch.stack(ys, 1), state


def random_inputs(length, seed=0, batch=2, heads=3, head_dim=4, d_state=5):
    g = torch.Generator().manual_seed(seed)
    kw = dict(dtype=torch.float64, generator=g)
    x = torch.randn(batch, length, heads, head_dim, **kw)
    dt = torch.rand(batch, length, heads, **kw) * 0.5
    A = -torch.rand(heads, **kw) * 3
    B = torch.randn(batch, length, d_state, **kw)
    C = torch.randn(batch, length, d_state, **kw)
    state0 = torch.randn(batch, heads, head_dim, d_state, **kw)
    return x, dt, A, B, C, state0


def rel_err(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("chunk_size", [1, 3, 8, 16, 64])
@pytest.mark.parametrize("with_initial_state", [False, True])
def test_chunked_equals_naive(chunk_size, with_initial_state):
    x, dt, A, B, C, state0 = random_inputs(length=37)
    if not with_initial_state:
        state0 = torch.zeros_like(state0)
    y_ref, state_ref = naive_recurrence(x, dt, A, B, C, state0)
    y, state = ssd_chunked(x, dt, A, B, C, chunk_size, state0 if with_initial_state else None)
    assert rel_err(y, y_ref) <= 1e-5
    assert rel_err(state, state_ref) <= 1e-5


def test_step_equals_naive():
    x, dt, A, B, C, state = random_inputs(length=9, seed=1)
    y_ref, state_ref = naive_recurrence(x, dt, A, B, C, state)
    ys = []
    for t in range(9):
        y, state = ssd_step(x[:, t], dt[:, t], A, B[:, t], C[:, t], state)
        ys.append(y)
    assert rel_err(torch.stack(ys, 1), y_ref) <= 1e-5
    assert rel_err(state, state_ref) <= 1e-5


def test_state_carries_across_windows():
    x, dt, A, B, C, state0 = random_inputs(length=40, seed=2)
    y_full, state_full = ssd_scan(x, dt, A, B, C, 8, state0)
    y1, s1 = ssd_scan(x[:, :13], dt[:, :13], A, B[:, :13], C[:, :13], 8, state0)
    y2, s2 = ssd_scan(x[:, 13:], dt[:, 13:], A, B[:, 13:], C[:, 13:], 8, s1)
    assert rel_err(torch.cat([y1, y2], 1), y_full) <= 1e-10
    assert rel_err(s2, state_full) <= 1e-10


def test_strong_decay_stays_finite():
    """Large dt*A (fast forgetting) must not produce inf/nan in the chunked form."""
    x, dt, A, B, C, state0 = random_inputs(length=64, seed=3)
    y, state = ssd_chunked(x, dt * 200, A, B, C, 32, state0)
    y_ref, state_ref = naive_recurrence(x, dt * 200, A, B, C, state0)
    assert torch.isfinite(y).all()
    assert rel_err(y, y_ref) <= 1e-5


@pytest.mark.parametrize("chunk_size,every", [(8, 4), (6, 4), (16, 1), (64, 16)])
def test_states_every_k_steps_equal_naive(chunk_size, every):
    """The state after every k-th step (the state each frame leaves, for clean-context training)."""
    x, dt, A, B, C, state0 = random_inputs(length=48, seed=4)
    y, final, states = ssd_chunked(x, dt, A, B, C, chunk_size, state0, states_every=every)
    expected = [naive_recurrence(x[:, :end], dt[:, :end], A, B[:, :end], C[:, :end], state0)[1]
                for end in range(every, 49, every)]
    assert states.shape == (2, 48 // every, 3, 4, 5)
    assert rel_err(states, torch.stack(expected, 1)) <= 1e-10
    assert rel_err(states[:, -1], final) <= 1e-10
    assert rel_err(y, naive_recurrence(x, dt, A, B, C, state0)[0]) <= 1e-10
