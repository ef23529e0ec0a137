"""A stand-in for UniViGUPipeline with the same interface: deterministic frames, no model."""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from uvigu.judge import words_judge

VOCAB = set(
    "a an the and on of to from near while large small red green blue yellow purple orange "
    "black white gray circle square triangle diamond moving moves stays staying still left "
    "right up down slowly quickly top bottom center background clip".split()
)


@dataclass
class FakeStep:
    index: int
    num_steps: int
    sigma: float
    text: str | None
    frames: np.ndarray

    def preview(self) -> np.ndarray:
        return self.frames


@dataclass
class FakeTrajectoryStep:
    sigma: float
    frames: np.ndarray | None
    text: str | None


@dataclass
class FakeCandidate:
    seed: int
    caption: str
    score: float


@dataclass
class FakeVideoResult:
    frames: np.ndarray
    caption: str | None
    seed: int
    trajectory: list[FakeTrajectoryStep] | None = None
    candidates: list[FakeCandidate] = field(default_factory=list)
    caption_trajectory: list[FakeTrajectoryStep] | None = None


@dataclass
class FakeCaptionResult:
    text: str
    seed: int
    trajectory: list[FakeTrajectoryStep] | None = None


class FakePipeline:
    """Frames are a pure function of (text, seed); captions a pure function of the frames.

    ``step_delay`` slows every step; ``on_step(kind, index)`` is called at each step (tests
    block or fail there); ``max_active`` records the most calls ever running at once.
    ``judge(prompt, caption)`` scores the tries of a best-of-N generation (default: the words judge).
    """

    fps = 8
    default_num_frames = 4
    default_height = 8
    default_width = 8
    max_text_tokens = 32
    default_steps = 3
    default_edit_strength = 0.6
    default_flow_edit_strength = 0.9
    high_noise_expert = None  # a test gives it one: (anything, boundary)

    def __init__(self, step_delay: float = 0.0,
                 on_step: Callable[[str, int], None] | None = None) -> None:
        self.step_delay = step_delay
        self.on_step = on_step
        self.calls: list[tuple[str, str]] = []
        self.source_prompts: list[str | None] = []  # each edit's text before the change
        self.expert_flags: list[bool] = []  # each clip's high_noise_expert argument
        self.motion_noises: list[float | None] = []  # each generated clip's motion_noise argument
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    # -- test hooks ------------------------------------------------------------------------

    def unknown_words(self, text: str) -> list[str]:
        words = [w.strip(".,").lower() for w in text.split()]
        return [w for w in dict.fromkeys(words) if w and w not in VOCAB]

    def known_words(self) -> list[str]:
        return sorted(VOCAB)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def _check_prompt(self, prompt: str) -> None:
        if not prompt or not prompt.strip():
            raise ValueError("The prompt is empty.")
        if len(prompt.split()) > self.max_text_tokens:
            raise ValueError(f"The prompt has more than {self.max_text_tokens} tokens.")

    def _drawn(self, text: str, expert: bool) -> str:
        """What a clip's frames are drawn from: another text when an attached expert is left out."""
        self.expert_flags.append(expert)
        return text if expert or self.high_noise_expert is None else text + " (the model alone)"

    @staticmethod
    def frames_for(text: str, seed: int) -> np.ndarray:
        rng = np.random.default_rng([zlib.crc32(text.encode()), seed])
        return rng.integers(0, 256, size=(4, 8, 8, 3), dtype=np.uint8)

    @staticmethod
    def caption_for(frames: np.ndarray) -> str:
        return f"a red circle moves slowly to the right number {int(frames.mean())}"

    def _run(self, kind: str, text: str, seed: int | None, steps: int | None,
             callback, trajectory: bool, frames: np.ndarray, caption: str | None):
        seed = 0 if seed is None else int(seed)
        steps = steps or self.default_steps
        with self._lock:
            self.calls.append((kind, text))
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            history = []
            for i in range(steps):
                if self.step_delay:
                    time.sleep(self.step_delay)
                if self.on_step:
                    self.on_step(kind, i)
                sigma = 1.0 - (i + 1) / steps
                words = [] if caption is None else caption.split()
                text_i = None if caption is None else " ".join(
                    words[: -(-len(words) * (i + 1) // steps)])
                if callback is not None:
                    callback(FakeStep(i, steps, sigma, text_i, frames))
                history.append(FakeTrajectoryStep(sigma, frames if kind != "caption" else None,
                                                  text_i))
            return seed, (history if trajectory else None)
        finally:
            with self._lock:
                self.active -= 1

    # -- the pipeline interface ------------------------------------------------------------

    judge = staticmethod(words_judge)

    def _best_of(self, prompt, seed, best_of, callback, return_trajectory, make):
        """As the pipeline: tries from seeds one apart, each captioned, the best-judged one kept."""
        tries = []
        for k in range(best_of):
            out = make((seed or 0) + k)
            cap = self.caption(out.frames, seed=out.seed, callback=callback, return_trajectory=return_trajectory)
            tries.append((self.judge(prompt, cap.text), -k, out, cap))
        _, _, out, cap = max(tries, key=lambda t: t[:2])
        return FakeVideoResult(out.frames, cap.text, out.seed, out.trajectory,
                               [FakeCandidate(o.seed, c.text, score) for score, _, o, c in tries], cap.trajectory)

    def generate(self, prompt, *, seed=None, num_inference_steps=None, guidance_scale=None,
                 num_frames=None, height=None, width=None, best_of=1, high_noise_expert=True, motion_noise=None,
                 callback=None, return_trajectory=False):
        self._check_prompt(prompt)
        if best_of > 1:
            return self._best_of(prompt, seed, best_of, callback, return_trajectory, lambda s: self.generate(
                prompt, seed=s, num_inference_steps=num_inference_steps, high_noise_expert=high_noise_expert,
                motion_noise=motion_noise, callback=callback, return_trajectory=return_trajectory))
        self.motion_noises.append(motion_noise)
        frames = self.frames_for(self._drawn(prompt, high_noise_expert), seed or 0)
        seed, traj = self._run("generate", prompt, seed, num_inference_steps, callback,
                               return_trajectory, frames, None)
        return FakeVideoResult(frames, None, seed, traj)

    def generate_with_caption(self, prompt, *, seed=None, num_inference_steps=None,
                              guidance_scale=None, num_frames=None, height=None, width=None,
                              high_noise_expert=True, motion_noise=None, callback=None, return_trajectory=False):
        self._check_prompt(prompt)
        self.motion_noises.append(motion_noise)
        frames = self.frames_for(self._drawn(prompt, high_noise_expert), seed or 0)
        caption = self.caption_for(frames)
        seed, traj = self._run("joint", prompt, seed, num_inference_steps, callback,
                               return_trajectory, frames, caption)
        return FakeVideoResult(frames, caption, seed, traj)

    def caption(self, video, *, seed=None, num_inference_steps=None, callback=None,
                return_trajectory=False):
        if not isinstance(video, np.ndarray) or video.dtype != np.uint8 or video.ndim != 4:
            raise ValueError("The video must be uint8 frames (T, H, W, 3).")
        caption = self.caption_for(video)
        seed, traj = self._run("caption", "", seed, num_inference_steps, callback,
                               return_trajectory, video, caption)
        return FakeCaptionResult(caption, seed, traj)

    def edit(self, video, prompt, *, strength=0.6, source_prompt=None, seed=None,
             num_inference_steps=None, guidance_scale=None, best_of=1, high_noise_expert=True, callback=None,
             return_trajectory=False):
        self._check_prompt(prompt)
        if best_of > 1:
            return self._best_of(prompt, seed, best_of, callback, return_trajectory, lambda s: self.edit(
                video, prompt, strength=strength, source_prompt=source_prompt, seed=s,
                num_inference_steps=num_inference_steps, high_noise_expert=high_noise_expert, callback=callback,
                return_trajectory=return_trajectory))
        if source_prompt is not None:
            self._check_prompt(source_prompt)
        self.source_prompts.append(source_prompt)
        target = self.frames_for(self._drawn(prompt, high_noise_expert), seed or 0)
        frames = ((1 - strength) * video.astype(np.float32) + strength * target).astype(np.uint8)
        seed, traj = self._run("edit", prompt, seed, num_inference_steps, callback,
                               return_trajectory, frames, None)
        return FakeVideoResult(frames, None, seed, traj)
