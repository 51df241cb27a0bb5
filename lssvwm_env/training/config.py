"""Training configuration: one dataclass per stage, composed with the model config into one run
config that is saved as JSON beside every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from lssvwm_env.config_io import dataclass_from_dict
from lssvwm_env.models.world_model import WorldModelConfig


@dataclass
class CurriculumStage:
    """Train on windows of `window` frames for `iterations` steps, `batch_size` lanes per process."""
    window: int
    iterations: int
    batch_size: int


@dataclass
class AutoencoderTrainingConfig:
    iterations: int = 2000
    batch_size: int = 64
    lr: float = 1e-3
    eval_frames: int = 512  # held-out frames for reconstruction PSNR/SSIM


@dataclass
class DynamicsTrainingConfig:
    # Curriculum over sequence length (Po et al. 2025 §4.2: 400 then 800 frames at paper scale).
    curriculum: list[CurriculumStage] = field(default_factory=lambda: [
        CurriculumStage(window=32, iterations=1000, batch_size=8)])
    # "diffusion_forcing" (the paper's) or "clean_context" (each frame denoised from its clean past, as
    # imagination does; twice the FLOPs per window, and less learnt per FLOP): losses.py.
    objective: str = "diffusion_forcing"
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup: int = 100
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    # State resetting: the carried state is always reset at episode starts, and with this probability
    # at any window boundary, so the model does not come to rely on an endless history.
    state_reset_prob: float = 0.1
    # Carry the state of a clean (noise level 0) pass into the next window, as inference does; the
    # noised training pass would hand on a state the model never sees at inference. Costs one
    # forward pass without gradients per step.
    carry_clean_state: bool = True
    reward_loss_weight: float = 1.0
    eval_every: int = 250
    eval_context: int = 32  # frames of real context before generating
    eval_rollout: int = 100  # frames generated from actions alone for the rollout PSNR
    eval_episodes: int = 4
    eval_one_step_frames: int = 200  # next-frame PSNR at every one of an episode's first frames (evaluate.py)

    def __post_init__(self) -> None:
        from lssvwm_env.training.losses import OBJECTIVES
        if self.objective not in OBJECTIVES:
            raise ValueError(f"dynamics_training.objective must be one of {list(OBJECTIVES)}, got {self.objective!r}")

    @property
    def total_iterations(self) -> int:
        return sum(stage.iterations for stage in self.curriculum)

    def stage_at(self, step: int) -> tuple[int, CurriculumStage]:
        """(index, stage) that training step `step` (0-based) belongs to."""
        for index, stage in enumerate(self.curriculum):
            if step < stage.iterations:
                return index, stage
            step -= stage.iterations
        return len(self.curriculum) - 1, self.curriculum[-1]


@dataclass
class TrainConfig:
    model: WorldModelConfig = field(default_factory=WorldModelConfig)
    autoencoder_training: AutoencoderTrainingConfig = field(default_factory=AutoencoderTrainingConfig)
    dynamics_training: DynamicsTrainingConfig = field(default_factory=DynamicsTrainingConfig)
    preset: str = "custom"
    seed: int = 0
    checkpoint_every: int = 100  # steps between checkpoints (both stages)
    video_every: int = 500  # steps between TensorBoard sample videos
    threads: int = 0  # torch threads per process; 0: leave PyTorch's default

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict) -> "TrainConfig":
        return dataclass_from_dict(TrainConfig, data)
