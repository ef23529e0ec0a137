"""Exponential moving average of model weights: ``ema ← d·ema + (1 − d)·θ`` after every step.

The EMA is kept as frozen copies of the modules, so it can sample and be saved like the models
themselves. The decay warms up as ``min(d, (1 + t) / (10 + t))`` (diffusers' ``EMAModel``), so
the average is not dominated by the random initial weights in short runs.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn


def ema_decay_at(step: int, decay: float) -> float:
    """The decay used for the update after optimizer step ``step`` (0-based)."""
    return min(decay, (1 + step) / (10 + step))


class EMA:
    """Averaged copies of ``modules`` (parameters averaged; buffers copied)."""

    def __init__(self, modules: Sequence[nn.Module], decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}.")
        self.decay = decay
        self.modules = [copy.deepcopy(m).eval().requires_grad_(False) for m in modules]

    @torch.no_grad()
    def update(self, modules: Sequence[nn.Module], step: int) -> float:
        """Move the average towards ``modules`` (same architectures); returns the decay used."""
        decay = ema_decay_at(step, self.decay)
        for averaged, current in zip(self.modules, modules, strict=True):
            avg_params = list(averaged.parameters())
            params = [p.detach() for p in current.parameters()]
            torch._foreach_lerp_(avg_params, params, 1.0 - decay)  # avg += (1 − d)(θ − avg)
            for avg_buf, buf in zip(averaged.buffers(), current.buffers(), strict=True):
                avg_buf.copy_(buf)
        return decay

    @torch.no_grad()
    def copy_to(self, modules: Sequence[nn.Module]) -> None:
        """Overwrite the weights of ``modules`` with the averaged ones."""
        for averaged, target in zip(self.modules, modules, strict=True):
            target.load_state_dict(averaged.state_dict())
