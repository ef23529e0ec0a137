"""What the pipeline's tasks return, and what their step callbacks receive (as diffusers keeps a
pipeline's output classes beside it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .flows import SamplerStep


class Cancelled(Exception):
    """Raised by a step callback to stop a run; the pipeline re-raises it and returns nothing."""


@dataclass(frozen=True)
class TrajectoryStep:
    """One denoising step as a person sees it."""

    sigma: float  # noise level the step started from
    frames: np.ndarray  # uint8 (f, h, w, 3): the current clean estimate of the clip
    text: str | None  # the current text stream (None when the text is held clean)


@dataclass(frozen=True)
class Candidate:
    """One take of a best-of-N generation: its seed, the model's caption of it, and how well that
    caption agrees with the prompt (the judge's score, 0 to 1; `uvigu.judge`)."""

    seed: int
    caption: str
    score: float


@dataclass(frozen=True)
class VideoResult:
    frames: np.ndarray  # uint8 (f, h, w, 3)
    seed: int  # the seed that makes these frames (with best_of, the chosen take's)
    caption: str | None = None  # filled by generate_with_caption, and by generate or edit with best_of > 1
    trajectory: list[TrajectoryStep] | None = None
    unknown_words: list[str] = field(default_factory=list)  # prompt words the model does not know
    input_notes: list[str] = field(default_factory=list)  # what was changed to fit an input clip
    candidates: list[Candidate] = field(default_factory=list)  # best_of > 1: every take, in seed order
    caption_trajectory: list[TrajectoryStep] | None = None  # best_of > 1: the chosen take's caption steps


@dataclass(frozen=True)
class CaptionResult:
    text: str
    seed: int
    trajectory: list[TrajectoryStep] | None = None
    input_notes: list[str] = field(default_factory=list)



class PipelineStep:
    """What a step callback receives: progress, the current text, and a preview on request.

    ``num_steps`` counts every network call of the run after which the callback comes: the
    denoising steps, then (captions) the re-read passes and the video stream's check."""

    def __init__(self, sampler_step: SamplerStep, text: str | None, preview: Callable[[], np.ndarray],
                 num_steps: int | None = None):
        self.index = sampler_step.index  # 0-based
        self.num_steps = sampler_step.num_steps if num_steps is None else num_steps
        self.sigma = sampler_step.sigma
        self.text = text
        self._preview = preview

    def preview(self) -> np.ndarray:
        """uint8 (f, h, w, 3): the current clean estimate of the clip (decoded on demand)."""
        return self._preview()


StepCallback = Callable[[PipelineStep], None]
