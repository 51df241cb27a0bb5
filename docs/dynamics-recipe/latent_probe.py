"""The probe of docs/dynamics-recipe section 5, as it was run: how fast does the backbone learn to copy
or shift the last frame, on a synthetic colour grid in latent space (8x8 latent cells of 7 colours, each
colour a fixed random 8-channel vector, a north-up view of a 32x32 map; moves stay/N/E/S/W, 10% stays)?
Trains through the trainer's own loss (training/losses.py) and scores, every `every` steps, the cells
the frame before showed, each frame predicted from its real past (WorldModel.predict_each_next) and
read back as the nearest colour; chance is 1/7.

    python docs/dynamics-recipe/latent_probe.py '{"name": "mse", "n": 200, "d": 64, "layers": 2, "T": 16,
        "objective": "clean_context", "pure": 1.0, "pred": "x0", "steps": 1}'

Options (JSON): objective, pred (velocity | x0), pure (pure_noise_prob), lc (long_context_prob), steps
(sampling steps), spatial (rope | none), lr, patch, d, layers, T (window), B (batch), variant, stay_p,
gate (initial adaLN gates), pos (position embedding init scale), qkvbias (init scale of a qkv bias).
It predates training/shift_world.py, the distilled world of the test of the obvious, and is kept
unchanged as the record of the section's probe figures."""
import sys, time, json, math
import numpy as np
import torch
from dataclasses import replace
from lssvwm_env.models import WorldModel, WorldModelConfig
from lssvwm_env.models.autoencoder import AutoencoderConfig
from lssvwm_env.models.backbone import BackboneConfig
from lssvwm_env.models.local_attention import AttentionConfig
from lssvwm_env.models.ssm_mixer import SSMConfig
from lssvwm_env.models.diffusion import DiffusionConfig
from lssvwm_env.training.losses import dynamics_loss

torch.set_num_threads(1)
G, C, K, MAP = 8, 8, 7, 24
rng = np.random.default_rng(0)
EMB = torch.from_numpy(rng.standard_normal((K, C))).float()
STAY_P = 0.1
MOVES = {0: (0, 0), 1: (0, -1), 2: (1, 0), 3: (0, 1), 4: (-1, 0)}


def episodes(n, T, seed):
    r = np.random.default_rng(seed)
    lat = np.zeros((n, T, G, G), np.int64); act = np.zeros((n, T), np.int64)
    for i in range(n):
        m = r.integers(0, K, (MAP + G, MAP + G))
        x, y = r.integers(0, MAP, 2); move = int(r.integers(1, 5))
        for t in range(T):
            lat[i, t] = m[y:y + G, x:x + G]
            a = 0 if r.random() < STAY_P else (int(r.integers(1, 5)) if r.random() < 0.2 else move)
            if a: move = a
            dx, dy = MOVES[a]
            if 0 <= x + dx < MAP and 0 <= y + dy < MAP: x, y = x + dx, y + dy
            act[i, t] = a
    # input actions: action that led to frame t
    inp = np.concatenate([np.full((n, 1), -1), act[:, :-1]], 1)
    return torch.from_numpy(lat), torch.from_numpy(inp)


def model_for(opts):
    attn = AttentionConfig(n_heads=4, window=opts.get("window", 6), chunk=opts.get("chunk", 3), query_block_frames=6,
                           spatial_encoding=opts.get("spatial", "none"))
    bb = BackboneConfig(latent_channels=C, grid=(G, G), patch=opts.get("patch", 2), d_model=opts.get("d", 96), n_layers=opts.get("layers", 4),
                        block_sizes=[(2, 2), (4, 4)] if opts.get("patch", 2) == 2 else [(2, 2), (8, 8)],
                        ssm=SSMConfig(d_state=32, head_dim=32, chunk_size=64), attention=attn)
    bb.action.n = 5
    diff = DiffusionConfig(prediction=opts.get("pred", "velocity"), sampling_steps=opts.get("steps", 4),
                           pure_noise_prob=opts.get("pure", 0.0), long_context_prob=opts.get("lc", 0.5),
                           logit_normal_mean=opts.get("lnm", 0.0))
    cfg = WorldModelConfig(autoencoder=AutoencoderConfig(latent_channels=C, channels=[8, 8, 8]), backbone=bb, diffusion=diff,
                           variant=opts.get("variant", "ours"))
    torch.manual_seed(opts.get("seed", 0))
    m = WorldModel(cfg)
    if opts.get("gate", 0):
        from lssvwm_env.models.conditioning import AdaptiveNorm
        for mod in m.backbone.modules():
            if isinstance(mod, AdaptiveNorm):
                d = mod.modulation[1].bias.numel() // 3
                with torch.no_grad(): mod.modulation[1].bias[2 * d:] = opts["gate"]
    if opts.get("qkvbias"):
        from lssvwm_env.models.local_attention import LocalAttention
        for mod in m.backbone.modules():
            if isinstance(mod, LocalAttention):
                old = mod.qkv
                mod.qkv = torch.nn.Linear(old.in_features, old.out_features, bias=True)
                with torch.no_grad(): mod.qkv.weight.copy_(old.weight); mod.qkv.bias.normal_(0, opts["qkvbias"])
    if opts.get("pos", 0):
        with torch.no_grad(): m.backbone.position.normal_(0, opts["pos"])
    return m


def evaluate(model, lat, act):
    x = EMB[lat]  # (n,T,G,G,C)
    model.eval()
    with torch.no_grad():
        pred = model.predict_each_next(model.initial_state(len(x)), x, act, generator=torch.Generator().manual_seed(0))
    model.train()
    d = ((pred[..., None, :] - EMB) ** 2).sum(-1).argmin(-1)  # classes
    # cells visible in the previous frame: for move (dx,dy), cell (r,c) at t came from (r+dy, c+dx) at t-1 if in range
    ok, tot = 0, 0
    correct = (d == lat)
    acc_prev = []
    for a, (dx, dy) in MOVES.items():
        mask = torch.zeros(G, G, dtype=torch.bool)
        r0, r1 = max(0, -dy), G - max(0, dy); c0, c1 = max(0, -dx), G - max(0, dx)
        mask[r0:r1, c0:c1] = True
        sel = act[:, 1:] == a
        cc = correct[:, 1:][sel][:, mask]
        ok += cc.sum().item(); tot += cc.numel()
    mse = ((pred[:, 1:] - x[:, 1:]) ** 2).mean().item()
    return ok / max(tot, 1), mse


def run(opts, steps=300, every=50):
    model = model_for(opts)
    opt = torch.optim.AdamW(model.backbone.parameters(), lr=opts.get("lr", 3e-4), weight_decay=0.01)
    elat, eact = episodes(4, 40, 999)
    T, B = opts.get("T", 30), opts.get("B", 4)
    out = []
    start = time.time()
    gen = torch.Generator().manual_seed(1)
    for step in range(1, steps + 1):
        lat, act = episodes(B, T, step + 10_000 * opts.get("seed", 0))
        x = EMB[lat]
        batch = {"latents": x, "actions": act, "valid": torch.ones(B, T, dtype=torch.bool),
                 "rewards": torch.zeros(B, T), "terminated": torch.zeros(B, T, dtype=torch.bool),
                 "has_transition": torch.ones(B, T, dtype=torch.bool)}
        warm = min(1.0, step / 50)
        for g in opt.param_groups: g["lr"] = opts.get("lr", 3e-4) * warm
        loss = dynamics_loss(model, batch, model.initial_state(B), opts.get("objective", "diffusion_forcing"), 0.0, False, gen)
        opt.zero_grad(); loss.total.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step()
        if step % every == 0:
            acc, mse = evaluate(model, elat, eact)
            out.append((step, round(acc, 3), round(mse, 3), round(loss.diffusion.item(), 3)))
            print(opts.get("name"), step, f"{time.time()-start:.0f}s", out[-1], flush=True)
    return out


if __name__ == "__main__":
    opts = json.loads(sys.argv[1])
    STAY_P = opts.get("stay_p", 0.1)
    run(opts, steps=opts.get("n", 300), every=opts.get("every", 50))
