"""A pygame window that shows frames and reports the keyboard: render_mode="human" and `lssvwm play`."""

from __future__ import annotations

import os
import sys

import numpy as np


class NoDisplayError(RuntimeError):
    pass


def has_display() -> bool:
    """A window can be opened (SDL_VIDEODRIVER=dummy counts: pygame then draws off-screen)."""
    if os.environ.get("SDL_VIDEODRIVER"):
        return True
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class Viewer:
    """Shows (H, W, 3) uint8 frames scaled up by `scale`."""

    def __init__(self, title: str, scale: int = 6) -> None:
        if not has_display():
            raise NoDisplayError("no display to open a window on (DISPLAY is unset); use render_mode='rgb_array', "
                                 "or `lssvwm play --video out.mp4` to write a video instead")
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        self.pygame = pygame
        pygame.display.init()
        pygame.display.set_caption(title)
        self.scale = scale
        self.screen = None
        self.closed = False

    def show(self, frame: np.ndarray, caption: str | None = None) -> None:
        pg = self.pygame
        h, w = frame.shape[:2]
        if self.screen is None:
            self.screen = pg.display.set_mode((w * self.scale, h * self.scale))
        surface = pg.surfarray.make_surface(np.ascontiguousarray(frame.transpose(1, 0, 2)))
        self.screen.blit(pg.transform.scale(surface, self.screen.get_size()), (0, 0))
        if caption is not None:
            pg.display.set_caption(caption)
        pg.display.flip()
        self.poll()

    def poll(self) -> list[str]:
        """Names of the keys pressed since the last poll ("up", "a", "escape", ...); marks the viewer
        closed when the window is closed."""
        pg = self.pygame
        pressed = []
        for event in pg.event.get():
            if event.type == pg.QUIT:
                self.closed = True
            elif event.type == pg.KEYDOWN:
                pressed.append(pg.key.name(event.key))
        return pressed

    def held(self, names: list[str]) -> set[str]:
        """Which of the keys `names` ("up", "left", ...) are held down now."""
        state = self.pygame.key.get_pressed()
        return {name for name in names if state[self.pygame.key.key_code(name)]}

    def close(self) -> None:
        self.pygame.display.quit()
        self.closed = True
