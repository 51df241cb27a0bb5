"""Named configurations. `tiny`: the tests (seconds). `cpu`: the default model, trained on this kind of
2-core machine from a Memory Maze 9x9 dataset. `cpu-small`: a coarser autoencoder (4x4x16 latents),
for pixel-art views such as MiniGrid's. `paper`: a GPU configuration at the paper's scale (about
200M parameters, windows of 400 then 800 frames).

Every preset trains the dynamics with the recipe of issue 39 (docs/dynamics-recipe, section 5), under
which the obvious (the last frame copied, or shifted by the move) is learnt in hundreds of steps where
the paper's diffusion forcing had not learnt it in thousands: `recipe` below."""

from __future__ import annotations

from lssvwm_env.models.autoencoder import AutoencoderConfig
from lssvwm_env.models.backbone import BackboneConfig
from lssvwm_env.models.diffusion import DiffusionConfig
from lssvwm_env.models.heads import HeadsConfig
from lssvwm_env.models.local_attention import AttentionConfig
from lssvwm_env.models.ssm_mixer import SSMConfig
from lssvwm_env.models.world_model import WorldModelConfig
from lssvwm_env.training.config import (AutoencoderTrainingConfig, CurriculumStage, DynamicsTrainingConfig,
                                        TrainConfig)


def recipe(config: TrainConfig, lr: float = 3e-3) -> TrainConfig:
    """The dynamics recipe, on any preset: every frame denoised from its clean past, as generation
    does (objective clean_context); half the noised frames at pure noise, where sampling starts and only
    the context can say what the frame holds; rows and columns in attention (spatial rope), so a head
    can find the same place a frame back; a learning rate of 3e-3 (3e-4 before). On the colour grid
    each change mattered (section 5): diffusion forcing stayed at chance on a synthetic copy world and
    copied 35% of the cells after 1,000 steps of the `cpu` model, where this recipe copied 92% after
    300 steps (600 steps' compute)."""
    config.dynamics_training.objective = "clean_context"
    config.dynamics_training.lr = lr
    config.model.diffusion.pure_noise_prob = 0.5
    config.model.backbone.attention.spatial_encoding = "rope"
    return config


def tiny() -> TrainConfig:
    model = WorldModelConfig(
        autoencoder=AutoencoderConfig(latent_channels=4, channels=[8, 16, 16]),
        backbone=BackboneConfig(latent_channels=4, d_model=32, n_layers=2, block_sizes=[(2, 2), (4, 4)],
                                ssm=SSMConfig(d_state=8, head_dim=16, chunk_size=32),
                                attention=AttentionConfig(n_heads=2, window=4, chunk=2)),
        diffusion=DiffusionConfig(sampling_steps=2),
        heads=HeadsConfig(reward_gate=True),
    )
    return recipe(TrainConfig(
        model=model, preset="tiny",
        autoencoder_training=AutoencoderTrainingConfig(iterations=20, batch_size=16, eval_frames=32),
        dynamics_training=DynamicsTrainingConfig(
            curriculum=[CurriculumStage(window=8, iterations=6, batch_size=2),
                        CurriculumStage(window=16, iterations=4, batch_size=2)],
            warmup=2, eval_every=5, eval_context=4, eval_rollout=6, eval_episodes=1, eval_one_step_frames=8),
        checkpoint_every=4, video_every=5))


def cpu() -> TrainConfig:
    """Sized for about an hour on 2 CPU cores (AMD EPYC with avx512_bf16, bf16 autocast): the 8x8x8
    latent grid in 2x2 patches, 16 tokens per frame for the backbone. At equal training compute on
    Memory Maze 9x9 the patches learnt the next frame 2.1 dB better than one token per latent cell
    (docs/dynamics-recipe), at 4.4x the training frames per second. Windows are multiples of the
    attention chunk (5), so that no key is computed only to be masked (local_attention.py)."""
    model = WorldModelConfig(
        autoencoder=AutoencoderConfig(latent_channels=8, channels=[32, 64, 128]),
        backbone=BackboneConfig(latent_channels=8, patch=2, d_model=96, n_layers=4, block_sizes=[(2, 2), (4, 4)],
                                ssm=SSMConfig(d_state=32, head_dim=32, chunk_size=64),
                                attention=AttentionConfig(n_heads=4, window=10, chunk=5, query_block_frames=5)),
        diffusion=DiffusionConfig(sampling_steps=4),
        heads=HeadsConfig(reward_gate=True),
    )
    return recipe(TrainConfig(
        model=model, preset="cpu",
        autoencoder_training=AutoencoderTrainingConfig(iterations=1000, batch_size=32),
        dynamics_training=DynamicsTrainingConfig(
            # Half the steps of the diffusion-forcing curriculum it replaced (6000, 1500, 500): a
            # clean-context step costs two passes, so the compute is the same.
            curriculum=[CurriculumStage(window=30, iterations=3000, batch_size=4),
                        CurriculumStage(window=100, iterations=750, batch_size=2),
                        CurriculumStage(window=200, iterations=250, batch_size=1)],
            # Clean-context training hands on the clean frames' state already (losses.py).
            carry_clean_state=False,
            warmup=50, eval_every=250),
        checkpoint_every=100, video_every=1000))


def cpu_small() -> TrainConfig:
    """`cpu` with a 4x4x16 latent grid (a fourth stride-2 stage in the autoencoder), one token per latent
    cell: 16 tokens per frame, as `cpu`'s patches give, from a coarser autoencoder. Enough for
    MiniGrid's pixel-art view (33.3 dB autoencoder PSNR on MiniGrid-MemoryS7 after 800 steps), not for
    Memory Maze (25.3 dB against 30.2 for `cpu`'s 8x8x8, docs/dynamics-recipe). Short windows and a clean prefix down to one
    frame (`long_context_min_prefix` 0) suit envs whose episodes are short and are served from their
    first frame."""
    config = cpu()
    model = config.model
    model.autoencoder.channels = [32, 64, 128, 128]
    model.autoencoder.latent_channels = model.backbone.latent_channels = 16
    model.backbone.grid = model.autoencoder.grid
    model.backbone.patch = 1
    model.bf16 = True
    model.diffusion.long_context_min_prefix = 0.0
    config.preset = "cpu-small"
    config.autoencoder_training.iterations = 800
    dynamics = config.dynamics_training  # the rest (no clean-state pass, warm-up) as in `cpu`
    dynamics.curriculum = [CurriculumStage(window=16, iterations=3000, batch_size=16),  # halved, as `cpu`'s
                           CurriculumStage(window=32, iterations=1250, batch_size=8),
                           CurriculumStage(window=24, iterations=1250, batch_size=12)]
    dynamics.eval_every, dynamics.eval_context, dynamics.eval_rollout = 1000, 4, 12
    config.checkpoint_every, config.video_every = 200, 2000
    return config


def paper() -> TrainConfig:
    """About 200M parameters; for GPUs (torchrun, bf16). Not trainable on a CPU in reasonable time."""
    model = WorldModelConfig(
        autoencoder=AutoencoderConfig(latent_channels=16, channels=[64, 128, 256]),
        backbone=BackboneConfig(latent_channels=16, d_model=768, n_layers=12, block_sizes=[(2, 2), (4, 4)],
                                ssm=SSMConfig(d_state=128, head_dim=64, chunk_size=256),
                                attention=AttentionConfig(n_heads=12, window=10, chunk=5)),
        diffusion=DiffusionConfig(sampling_steps=8),
        heads=HeadsConfig(reward_gate=True),
        bf16=True,
    )
    return recipe(TrainConfig(
        model=model, preset="paper",
        autoencoder_training=AutoencoderTrainingConfig(iterations=50_000, batch_size=256, lr=4e-4),
        dynamics_training=DynamicsTrainingConfig(
            curriculum=[CurriculumStage(window=400, iterations=100_000, batch_size=4),
                        CurriculumStage(window=800, iterations=50_000, batch_size=2)],
            warmup=2000, ema_decay=0.9999, eval_every=5000),
        checkpoint_every=1000, video_every=5000), lr=1e-4)


PRESETS = {"tiny": tiny, "cpu": cpu, "cpu-small": cpu_small, "paper": paper}


def preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]()
