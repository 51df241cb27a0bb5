"""Fixtures shared by the test modules (plain helpers: helpers.py)."""

from __future__ import annotations

import pytest
import torch

from helpers import save_tiny_checkpoint
from lssvwm_env.cli import main as lssvwm


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    # Two cores shared with other jobs: one thread per test process is much faster for tiny models.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """A tiny random world model with 6 actions (Memory Maze's) and a context file."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def endless_checkpoint(tmp_path_factory):
    """As `checkpoint`, with a termination head that never fires: episodes end at their step limit."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("endless"), termination_logit=-50.0)


@pytest.fixture(scope="session")
def minigrid_endless_checkpoint(tmp_path_factory):
    """7 actions, as MiniGrid; the termination head never fires."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny7"), num_actions=7, termination_logit=-50.0)


@pytest.fixture(scope="session")
def minigrid_retrace(tmp_path_factory):
    """Three real MiniGrid FourRooms `retrace` episodes of 60 steps, with poses (revisits)."""
    out = tmp_path_factory.mktemp("data") / "mg"
    assert lssvwm(["collect", "--env", "minigrid-fourrooms", "--policy", "retrace", "--episodes", "3", "--steps", "60",
                   "--out", str(out), "--seed", "3", "--quiet"]) == 0
    return out
