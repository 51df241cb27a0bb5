"""The obvious, in latent space: a world whose next frame is the last one shifted by the move (or
unchanged), for measuring how fast a dynamics recipe learns it without an autoencoder in the way.

Each of `colours` colours is a fixed latent vector; a frame is a north-up `grid` x `grid` view of them,
cut from a random map; the actions are stay, north, east, south, west (as the colour grid's). A perfect
copy scores 100% on the cells the frame before showed; a model that ignores its past scores chance.
The test of the obvious (tests/test_dynamics_learns_the_obvious.py) and the probe of
docs/dynamics-recipe (section 5) train on it with the trainer's own loss and schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

MOVES = ((0, 0), (0, -1), (1, 0), (0, 1), (-1, 0))  # stay, north, east, south, west: (dx, dy), y down


@dataclass(frozen=True)
class ShiftWorld:
    grid: int = 4  # latent cells per side of a frame
    channels: int = 4
    colours: int = 5
    map_size: int = 20  # positions the view's corner can take per side
    stay: float = 0.2  # probability of `stay` at a step
    turn: float = 0.3  # probability of a new random move at a step (else the last one again)

    def colour_latents(self) -> torch.Tensor:
        """(colours, channels): the latent vector of each colour, fixed by the world."""
        return torch.from_numpy(np.random.default_rng(0).standard_normal((self.colours, self.channels))).float()

    def walks(self, episodes: int, frames: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Colour indices of every view cell (E, T, grid, grid) and the action that led to each frame
        (E, T; -1 before the first): walks with momentum that turn away from the map's edge after
        bumping into it (the view stays for that step)."""
        rng = np.random.default_rng(seed)
        g = self.grid
        cells = np.zeros((episodes, frames, g, g), np.int64)
        actions = np.full((episodes, frames), -1, np.int64)
        for e in range(episodes):
            colours = rng.integers(0, self.colours, (self.map_size + g, self.map_size + g))
            x, y = rng.integers(0, self.map_size, 2)
            move = 1
            for t in range(frames):
                cells[e, t] = colours[y:y + g, x:x + g]
                action = 0 if rng.random() < self.stay else int(rng.integers(1, 5)) if rng.random() < self.turn else move
                move = action or move
                dx, dy = MOVES[action]
                if 0 <= x + dx < self.map_size and 0 <= y + dy < self.map_size:
                    x, y = x + dx, y + dy
                else:
                    move = int(rng.integers(1, 5))
                if t + 1 < frames:
                    actions[e, t + 1] = action
        return torch.from_numpy(cells), torch.from_numpy(actions)

    def seen_a_frame_before(self, actions: torch.Tensor) -> torch.Tensor:
        """(E, T, grid, grid) bool: the cells of each frame that the frame before showed (a bump into the
        map's edge counts as its move, conservatively: one row or column fewer)."""
        g = self.grid
        mask = torch.zeros(*actions.shape, g, g, dtype=torch.bool)
        for action, (dx, dy) in enumerate(MOVES):
            seen = torch.zeros(g, g, dtype=torch.bool)
            seen[max(0, -dy):g - max(0, dy), max(0, -dx):g - max(0, dx)] = True
            mask[actions == action] = seen
        return mask

    def batch(self, cells: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """A training window per walk, as LatentCache.window stacks them (training/data.py)."""
        ones = torch.ones(cells.shape[:2], dtype=torch.bool)
        return {"latents": self.colour_latents()[cells], "actions": actions, "valid": ones, "has_transition": ones,
                "rewards": torch.zeros(cells.shape[:2]), "terminated": ~ones}

    @torch.no_grad()
    def copy_accuracy(self, model, cells: torch.Tensor, actions: torch.Tensor, past: torch.Tensor | None = None) -> float:
        """Accuracy, on the cells seen a frame before, of every frame predicted from the frames before it
        (WorldModel.predict_each_next) of `past` (default: the walks' own; another walk's tells what the
        model draws without its context), read back as the nearest colour."""
        latents = self.colour_latents()
        past = cells if past is None else past
        predicted = model.predict_each_next(model.initial_state(len(past)), latents[past], actions,
                                            generator=torch.Generator().manual_seed(0))
        read = ((predicted[..., None, :] - latents) ** 2).sum(-1).argmin(-1)
        seen = self.seen_a_frame_before(actions)[:, 1:]
        return (read[:, 1:] == cells[:, 1:])[seen].float().mean().item()

    def repeat_accuracy(self, cells: torch.Tensor, actions: torch.Tensor) -> float:
        """The yardstick: the frame before, unshifted, on the same cells."""
        seen = self.seen_a_frame_before(actions)[:, 1:]
        return (cells[:, :-1] == cells[:, 1:])[seen].float().mean().item()


def train_on_shift_world(model, world: ShiftWorld, training, steps: int, episodes: int = 8, frames: int = 12,
                         seed: int = 0, on_step=None) -> None:
    """`steps` steps of the trainer's dynamics loss (training.objective) on fresh walks: AdamW, the
    trainer's learning-rate schedule (warm-up, then cosine over `steps`) and gradient clipping, from
    the DynamicsTrainingConfig `training`. on_step(step) is called after each step."""
    from lssvwm_env.training.losses import dynamics_loss
    from lssvwm_env.training.train import cosine_lr

    optimizer = torch.optim.AdamW(model.backbone.parameters(), lr=training.lr, weight_decay=training.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    for step in range(steps):
        cells, actions = world.walks(episodes, frames, seed=seed * 1_000_003 + step)
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, steps, training.warmup, training.lr)
        loss = dynamics_loss(model, world.batch(cells, actions), model.initial_state(episodes), training.objective,
                             0.0, False, generator)
        optimizer.zero_grad()
        loss.total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), training.grad_clip)
        optimizer.step()
        if on_step is not None:
            on_step(step + 1)
