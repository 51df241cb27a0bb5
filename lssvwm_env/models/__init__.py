"""The LSSVWM model: autoencoder, block-wise SSM scan, local attention, diffusion forcing, heads."""

from lssvwm_env.models.state import WorldModelState
from lssvwm_env.models.world_model import WorldModel, WorldModelConfig

__all__ = ["WorldModel", "WorldModelConfig", "WorldModelState"]
