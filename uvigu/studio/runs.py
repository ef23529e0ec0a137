"""Model runs: what the studio needs from a pipeline, and what each of its queued jobs does with it.

A run takes input the :class:`~uvigu.studio.manager.Studio` has already checked, calls the pipeline
in the job's thread (relaying each step as progress, so a cancelled job stops between two steps),
and returns what it made: a new take (not yet stored) with its frames and the run's denoising
trajectory, or a timeline's cues with their subtitles.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from uvigu.studio.jobs import Job, ProgressEvent
from uvigu.studio.store import Take, new_take_id
from uvigu.studio.trajectories import TrajectoryFrame, trajectory_frames
from uvigu.timeline import Cue, TimelinePlan, run_timeline, to_srt

# A run's new take (``seq`` 0 until it is stored), its frames uint8 (f, h, w, 3), and its trajectory.
NewTake = tuple[Take, np.ndarray, list[TrajectoryFrame]]


class Pipeline(Protocol):
    """What the studio needs from a pipeline (``uvigu.UniViGUPipeline`` provides it)."""

    fps: int
    default_num_frames: int
    default_height: int
    default_width: int
    max_text_tokens: int

    def generate(self, prompt: str, **kwargs: Any) -> Any: ...
    def generate_with_caption(self, prompt: str, **kwargs: Any) -> Any: ...
    def caption(self, video: Any, **kwargs: Any) -> Any: ...
    def edit(self, video: Any, prompt: str, **kwargs: Any) -> Any: ...
    def unknown_words(self, text: str) -> list[str]: ...
    def count_tokens(self, text: str) -> int: ...


@dataclass(frozen=True)
class ModelDefaults:
    """What the model uses when a setting is left out, and the clip format it makes."""

    num_inference_steps: int
    guidance_scale: float
    num_frames: int
    height: int
    width: int
    fps: int
    edit_strength: float  # a plain edit's start level
    keep_rest_strength: float  # an edit's that keeps the rest (compared with the take's caption)
    max_text_tokens: int  # the longest prompt or caption the model reads
    runs_on: str = ""  # where and in what precision, e.g. "the CPU, in bfloat16" ("" when the pipeline does not say)
    # the model has a high-noise expert, which makes the first denoising step (pipe.use_high_noise_expert)
    high_noise_expert: bool = False
    # the share of a generated clip's starting noise that moves as the prompt asks (pipe.generate's motion_noise)
    motion_noise: float = 0.0
    # ... and, for objects going different ways, the share moving along each one's path (motion_noise_paths)
    motion_noise_paths: float = 0.0
    # ... and the share of guidance along each one's path from its own prompt (object_guidance)
    object_guidance: float = 0.0

    @classmethod
    def from_pipeline(cls, pipe: Pipeline) -> ModelDefaults:
        """The defaults ``pipe`` runs with (its config's, where it has one)."""
        config = getattr(pipe, "config", None)
        return cls(
            num_inference_steps=int(getattr(config, "num_inference_steps", 20)),
            guidance_scale=float(getattr(config, "guidance_scale", 3.0)),
            num_frames=int(pipe.default_num_frames),
            height=int(pipe.default_height),
            width=int(pipe.default_width),
            fps=int(pipe.fps),
            edit_strength=float(pipe.default_edit_strength),
            keep_rest_strength=float(pipe.default_flow_edit_strength),
            max_text_tokens=int(pipe.max_text_tokens),
            runs_on=_runs_on(pipe),
            high_noise_expert=getattr(pipe, "high_noise_expert", None) is not None,
            motion_noise=float(getattr(config, "motion_noise", 0.0)),
            motion_noise_paths=float(getattr(config, "motion_noise_paths", 0.0)),
            object_guidance=float(getattr(config, "object_guidance", 0.0)),
        )


@dataclass(frozen=True)
class Timeline:
    """An upload captioned every few seconds: the cues, and the same as SubRip subtitles."""

    cues: list[Cue]
    srt_path: Path


def unknown_words(pipe: Pipeline, text: str) -> list[str]:
    """The words of ``text`` the model does not know (none for blank text)."""
    return list(pipe.unknown_words(text)) if text.strip() else []


def off_option(name: str, on: bool, option: str, off: Any) -> dict[str, Any]:
    """The pipeline option (and take setting) ``option=off`` for a run with switch ``name`` off;
    none with it on, the default, so a pipeline without the feature, or takes made before the
    switch existed, read the same."""
    if not isinstance(on, bool):
        raise ValueError(f"{name} is True or False, not {on!r}.")
    return {} if on else {option: off}


def generate_take(
    pipe: Pipeline,
    job: Job[Take],
    prompt: str,
    *,
    mode: str,
    seed: int | None,
    best_of: int,
    options: dict[str, Any],
) -> NewTake:
    """Text → clip, then clip → caption (``mode="generate"``; ``best_of`` > 1 keeps the try whose
    caption agrees best with the prompt) or both in one pass (``mode="joint"``)."""
    unknown = unknown_words(pipe, prompt)
    trajectory: list[TrajectoryFrame] = []
    t0 = time.monotonic()
    if mode == "joint":
        out = pipe.generate_with_caption(
            prompt, seed=seed, callback=_relay(job, "Generating video and caption"),
            return_trajectory=True, **_given(options),
        )
        caption, timings = out.caption or "", {"generate": time.monotonic() - t0}
        trajectory += trajectory_frames("joint", out.trajectory)
    elif best_of > 1:
        out = pipe.generate(
            prompt, seed=seed, best_of=best_of, callback=_relay(job, f"Trying {best_of} clips"),
            return_trajectory=True, **_given(options),
        )
        caption = out.caption or ""
        timings = {"generate": time.monotonic() - t0}  # the tries' clips and captions together
        trajectory += trajectory_frames("generate", out.trajectory)
        trajectory += trajectory_frames("caption", out.caption_trajectory, still=out.frames)
    else:
        out = pipe.generate(
            prompt, seed=seed, callback=_relay(job, "Generating video"),
            return_trajectory=True, **_given(options),
        )
        t1 = time.monotonic()
        cap = pipe.caption(
            out.frames, seed=out.seed, callback=_relay(job, "Captioning"),
            return_trajectory=True,
        )
        caption = cap.text
        timings = {"generate": t1 - t0, "caption": time.monotonic() - t1}
        trajectory += trajectory_frames("generate", out.trajectory)
        trajectory += trajectory_frames("caption", cap.trajectory, still=out.frames)
    take = Take(
        id=new_take_id(), seq=0, parent_id=None, mode=mode, prompt=prompt,
        caption=caption, critique="", seed=int(out.seed),
        settings={**_given(options), **_tries(best_of, out)},
        unknown_words=tuple(unknown), timings={"queued": job.waited_s, **timings},
        created=time.time(),
    )
    return take, out.frames, trajectory


def edit_take(
    pipe: Pipeline,
    job: Job[Take],
    source: np.ndarray,
    prompt: str,
    *,
    parent_id: str | None,
    notes: tuple[str, ...],
    strength: float,
    source_prompt: str | None,
    seed: int | None,
    best_of: int,
    options: dict[str, Any],
) -> NewTake:
    """Regenerate ``source`` uint8 (f, h, w, 3) from ``strength`` conditioned on ``prompt`` (keeping
    what ``source_prompt`` shares with it, when given), then caption the result; ``best_of`` > 1
    keeps the try whose caption agrees best with ``prompt``."""
    unknown = unknown_words(pipe, prompt)
    t0 = time.monotonic()
    if best_of > 1:
        out = pipe.edit(
            source, prompt, strength=strength, source_prompt=source_prompt, seed=seed, best_of=best_of,
            callback=_relay(job, f"Trying {best_of} edits"), return_trajectory=True, **_given(options),
        )
        caption, caption_steps = out.caption or "", out.caption_trajectory
        timings = {"generate": time.monotonic() - t0}  # the tries' clips and captions together
    else:
        out = pipe.edit(
            source, prompt, strength=strength, source_prompt=source_prompt, seed=seed,
            callback=_relay(job, "Regenerating"), return_trajectory=True, **_given(options),
        )
        t1 = time.monotonic()
        cap = pipe.caption(
            out.frames, seed=out.seed, callback=_relay(job, "Captioning"),
            return_trajectory=True,
        )
        caption, caption_steps = cap.text, cap.trajectory
        timings = {"generate": t1 - t0, "caption": time.monotonic() - t1}
    take = Take(
        id=new_take_id(), seq=0, parent_id=parent_id, mode="edit", prompt=prompt,
        caption=caption, critique="", seed=int(out.seed),
        settings={**_given(options), "strength": strength,
                  **({"keep_rest": True} if source_prompt is not None else {}), **_tries(best_of, out)},
        unknown_words=tuple(unknown), notes=notes,
        timings={"queued": job.waited_s, **timings},
        created=time.time(),
    )
    trajectory = trajectory_frames("edit", out.trajectory)
    trajectory += trajectory_frames("caption", caption_steps, still=out.frames)
    return take, out.frames, trajectory


def caption_take(
    pipe: Pipeline,
    job: Job[Take],
    frames: np.ndarray,
    *,
    notes: tuple[str, ...],
    seed: int | None,
    options: dict[str, Any],
) -> NewTake:
    """Caption ``frames`` uint8 (f, h, w, 3), an upload fitted to the model (``notes`` say how)."""
    t0 = time.monotonic()
    cap = pipe.caption(
        frames, seed=seed, callback=_relay(job, "Captioning"), return_trajectory=True,
        **_given(options),
    )
    take = Take(
        id=new_take_id(), seq=0, parent_id=None, mode="caption", prompt="",
        caption=cap.text, critique="", seed=int(cap.seed), settings=_given(options),
        notes=notes,
        timings={"queued": job.waited_s, "caption": time.monotonic() - t0},
        created=time.time(),
    )
    trajectory = trajectory_frames("caption", cap.trajectory, still=frames)
    return take, frames, trajectory


def caption_timeline(
    pipe: Pipeline, job: Job[Timeline], plan: TimelinePlan, *, seed: int | None, out_dir: Path
) -> Timeline:
    """Caption every clip of ``plan`` (`uvigu.timeline.run_timeline`), reporting which caption is
    being made, and write the cues as SubRip subtitles in ``out_dir`` (emptied first: the latest
    timeline's only)."""
    made = [0]  # captions finished, for the progress label

    def on_step(step: Any) -> None:
        _relay(job, f"Caption {made[0] + 1} of {len(plan.starts)}")(step)

    def on_cue(index: int, total: int, cue: Cue) -> None:
        made[0] = index + 1

    cues = run_timeline(pipe, plan, on_cue=on_cue, seed=seed, callback=on_step)
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    srt = out_dir / f"{plan.path.stem}.srt"
    srt.write_text(to_srt(cues), encoding="utf-8")
    return Timeline(cues, srt)


def _runs_on(pipe: Pipeline) -> str:
    """Where the denoiser runs and in what precision, in words; "" for a pipeline that does not say."""
    device = getattr(pipe, "device", None)
    dtype = getattr(getattr(pipe, "transformer", None), "dtype", None)
    if getattr(device, "type", None) is None or dtype is None:
        return ""
    where = "the CPU" if device.type == "cpu" else f"the GPU ({device})"
    return f"{where}, in {str(dtype).removeprefix('torch.')}"


def _given(options: dict[str, Any]) -> dict[str, Any]:
    """Only the options the user set; the rest fall back to the pipeline's defaults."""
    return {key: value for key, value in options.items() if value is not None}


def _tries(best_of: int, out: Any) -> dict[str, Any]:
    """A take's record of its tries (none for a single try): how many, and each one's seed, score and caption."""
    if best_of <= 1:
        return {}
    return {"best_of": best_of, "tries": [{"seed": int(c.seed), "score": round(float(c.score), 4), "caption": c.caption}
                                          for c in out.candidates]}


def _relay(job: Job, stage: str) -> Callable[[Any], None]:
    """A pipeline step callback that reports progress and stops the run when cancelled."""

    def callback(step: Any) -> None:
        job.report(ProgressEvent(stage, int(step.index), int(step.num_steps), step.text))

    return callback
