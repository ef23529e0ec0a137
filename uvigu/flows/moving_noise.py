"""Starting noise that already moves the way the prompt asks.

A video model trained on noise drawn independently for every frame still reads motion from the
noise it starts from: which way a Shapes object goes is settled by the seed far more than by the
motion word (docs/EVAL.md, *Does generation follow the motion words?*). So the starting noise can
carry the asked motion: part of every frame is one noise frame moved by ``t · step`` cells in
frame t (rolled round the frame), the rest stays independent — FreeTraj shifts the starting noise
along a trajectory, and Go-with-the-Flow warps it along an optical flow, to the same end. Each
value is still a standard normal; only the correlation across frames follows the motion. A still
scene is the same noise frame in every frame (``step`` (0, 0)).

When a prompt's objects go different ways, no one motion fits the whole frame: `path_noise` moves
the noise only along each object's path — a disc where a draft of the clip put the object, moved
the way the prompt moves it — and leaves the rest of the noise as it was.

Tensor vocabulary as `flows.video`: ``noise`` (b, c, f, h, w).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..inputs import number_in_range, whole_in_range

# Directions (dy, dx) in cells per frame, for a step of one cell: rows grow downwards.
DIRECTIONS: dict[str, tuple[int, int]] = {
    "left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0), "still": (0, 0),
}


def check_share(share: float, name: str = "motion_noise") -> float:
    """The moving share of the noise's variance, from 0 (off) to 1 (``name``: the setting, for the message)."""
    return number_in_range(share, name, 0.0, 1.0, "a share of the noise")


def check_speed(speed: float) -> float:
    """How far the moving noise goes: latent cells a latent frame, more than 0."""
    speed = float(speed)
    if not 0.0 < speed <= 64.0:
        raise ValueError(f"motion_noise_speed must be more than 0 and at most 64 (latent cells a frame), got {speed:g}.")
    return speed


def check_draft(steps: int) -> int:
    """The steps of the draft that places moving noise along each object's path: a whole number from 1."""
    return whole_in_range(steps, "motion_noise_draft", 1, None, "a whole number of steps")


def moving_noise(noise: torch.Tensor, step: tuple[float, float], share: float,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """``noise`` (b, c, f, h, w), independent across frames, with ``share`` of its variance given
    to one frame of noise drawn from ``generator`` and moved ``step`` = (dy, dx) cells a frame
    (frame t by ``round(t · dy), round(t · dx)``, rolled round). ``share`` 0 returns ``noise``."""
    share = check_share(share)
    if share == 0.0:
        return noise
    b, c, f, h, w = noise.shape
    base = torch.randn((b, c, 1, h, w), generator=generator).to(noise)
    moved = torch.cat([torch.roll(base, (round(step[0] * t), round(step[1] * t)), dims=(3, 4)) for t in range(f)],
                      dim=2)
    return math.sqrt(1.0 - share) * noise + math.sqrt(share) * moved


@dataclass(frozen=True)
class NoisePath:
    """Where one object's moving noise goes, in latent cells: a disc of ``radius`` centred on
    ``center`` (y, x) at the clip's middle frame, moved ``step`` (dy, dx) cells a frame."""

    center: tuple[float, float]
    step: tuple[float, float]
    radius: float

    def turned(self, step: tuple[float, float], radius: float, frames: int) -> NoisePath:
        """The path of ``radius`` from where this one is at the first of ``frames``, moved ``step`` a frame."""
        half = (frames - 1) / 2
        return NoisePath((self.center[0] + (step[0] - self.step[0]) * half,
                          self.center[1] + (step[1] - self.step[1]) * half), step, radius)


def path_discs(paths: Sequence[NoisePath], frames: int, height: int, width: int) -> torch.Tensor:
    """Where each path's disc lies, frame by frame: bool (len(paths), frames, height, width)."""
    rows, cols = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                                indexing="ij")
    lag = torch.arange(frames, dtype=torch.float32)[:, None, None] - (frames - 1) / 2  # frames from the middle one
    discs = [(rows - (path.center[0] + lag * path.step[0])) ** 2 + (cols - (path.center[1] + lag * path.step[1])) ** 2
             <= path.radius ** 2 for path in paths]
    return torch.stack(discs) if discs else torch.zeros((0, frames, height, width), dtype=torch.bool)


def path_noise(noise: torch.Tensor, paths: Sequence[NoisePath], share: float,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """``noise`` (b, c, f, h, w) with each path's disc, frame by frame, given ``share`` of its variance
    from one noise frame of its own (drawn from ``generator``, in the order of ``paths``) moved
    ``step`` cells a frame; outside every disc, and with ``share`` 0, the noise is as it was. Where
    discs overlap, the later path's wins. Each value is still a standard normal."""
    share = check_share(share, "motion_noise_paths")
    if share == 0.0 or not paths:
        return noise
    b, c, f, h, w = noise.shape
    out = noise.clone()
    for path, discs in zip(paths, path_discs(paths, f, h, w).to(noise.device)):
        base = torch.randn((b, c, h, w), generator=generator).to(noise)
        (dy, dx) = path.step
        moved = torch.stack([torch.roll(base, (round(dy * t), round(dx * t)), dims=(2, 3)) for t in range(f)], dim=2)
        mixed = math.sqrt(1.0 - share) * noise + math.sqrt(share) * moved
        out = torch.where(discs, mixed, out)
    return out
