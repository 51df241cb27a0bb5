"""The `mamba-ssm` kernel against the PyTorch reference, where a CUDA GPU and the package are present
(`pip install -e .[cuda]`). Elsewhere these are skipped with that reason: the reference itself is
tested on every machine (test_ssd.py, test_model_recurrence.py)."""

import pytest
import torch

from lssvwm_env.models.ssd import _mamba_ssm_kernel, ssd_chunked, ssd_scan

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available() or _mamba_ssm_kernel() is None,
    reason="needs a CUDA GPU and mamba-ssm (pip install -e .[cuda]); the CPU reference is tested everywhere")


def inputs(length: int, seed: int = 0, batch: int = 3, heads: int = 4, head_dim: int = 16, d_state: int = 32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, heads, head_dim, generator=g)
    dt = torch.rand(batch, length, heads, generator=g) * 0.2 + 0.01
    A = -torch.rand(heads, generator=g) * 4 - 0.5
    B = torch.randn(batch, length, d_state, generator=g)
    C = torch.randn(batch, length, d_state, generator=g)
    state = torch.randn(batch, heads, head_dim, d_state, generator=g)
    return x, dt, A, B, C, state


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@pytest.mark.parametrize("length", [64, 200])
def test_kernel_equals_the_reference_with_state_in_and_out(length):
    x, dt, A, B, C, state = inputs(length)
    y_ref, final_ref = ssd_chunked(x.double(), dt.double(), A.double(), B.double(), C.double(), 64, state.double())
    y, final = ssd_scan(*(t.cuda() for t in (x, dt, A, B, C)), 64, state.cuda())  # the kernel path on CUDA
    assert rel_err(y.cpu(), y_ref) < 1e-3 and rel_err(final.cpu(), final_ref) < 1e-3
    # The state carried out of one window into the next gives the same as one long window.
    half = length // 2
    y1, carried = ssd_scan(*(t[:, :half].cuda() for t in (x, dt)), A.cuda(), *(t[:, :half].cuda() for t in (B, C)), 64,
                           state.cuda())
    y2, _ = ssd_scan(*(t[:, half:].cuda() for t in (x, dt)), A.cuda(), *(t[:, half:].cuda() for t in (B, C)), 64, carried)
    assert rel_err(torch.cat([y1, y2], 1).cpu(), y_ref) < 1e-3


def test_an_imagined_step_on_the_gpu_equals_the_cpu_reference():
    from lssvwm_env.models import WorldModel
    from lssvwm_env.presets import tiny
    torch.manual_seed(0)
    config = tiny().model
    config.bf16 = False
    model = WorldModel(config).eval()
    with torch.no_grad():
        for p in model.parameters():  # adaLN-Zero starts every branch at zero: make them all matter
            p.add_(torch.randn_like(p) * 0.05)
    gpu = WorldModel(config).eval()
    gpu.load_state_dict(model.state_dict())
    gpu = gpu.cuda()
    frames = torch.randint(0, 256, (2, 40, 64, 64, 3), dtype=torch.uint8)
    actions = torch.randint(0, 6, (2, 40))
    noise = torch.randn(2, 1, *config.autoencoder.grid, config.autoencoder.latent_channels)
    action = torch.tensor([1, 4])
    latent_cpu, _ = model.generate_latent(model.observe(model.initial_state(2), frames, actions), action, noise=noise)
    latent_gpu, _ = gpu.generate_latent(gpu.observe(gpu.initial_state(2), frames.cuda(), actions.cuda()),
                                        action.cuda(), noise=noise.cuda())
    assert rel_err(latent_gpu.cpu(), latent_cpu) < 1e-3
