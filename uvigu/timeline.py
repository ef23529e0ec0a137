"""A video longer than the model's clip, captioned as a timeline: the model's clip every few seconds.

``caption_timeline`` reads the model's clip length from ``start_s``, ``start_s + every_s``, … to
the video's end and captions each: ``plan_timeline`` checks the video and places the clips before
any caption is made (the studio does that before it queues the job), ``run_timeline`` makes them.
A caption is shown from its clip's start until the next one (``Cue``). ``to_srt`` writes the cues
as SubRip subtitles. `uvigu caption --every` and the studio's *Understand* use it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .videoio import VideoInfo, check_video, probe_video, read_clip


@dataclass(frozen=True)
class Cue:
    """One caption of a timeline: shown from ``start_s`` (where its clip starts) to ``end_s``."""

    start_s: float
    end_s: float
    text: str


# The time between captions when none is given (the studio's Understand starts with it).
DEFAULT_EVERY_S = 2.0


def timeline_starts(duration_s: float, every_s: float, start_s: float = 0.0) -> list[float]:
    """Where each caption's clip starts: ``start_s``, then every ``every_s`` seconds before ``duration_s``."""
    if not every_s > 0:
        raise ValueError(f"the time between captions must be a positive number of seconds, got {every_s:g}")
    count = math.ceil((duration_s - start_s) / every_s - 1e-9)
    return [start_s + k * every_s for k in range(max(count, 0))]


@dataclass(frozen=True)
class TimelinePlan:
    """A timeline checked before any caption is made: the video, and where each caption's clip starts."""

    path: Path
    info: VideoInfo
    every_s: float
    starts: list[float]
    max_side: int | None = None


def plan_timeline(
    path: str | os.PathLike,
    every_s: float,
    *,
    start_s: float = 0.0,
    max_captions: int | None = None,
    max_duration_s: float | None = None,
    max_side: int | None = None,
) -> TimelinePlan:
    """Where the captions of ``path`` every ``every_s`` seconds from ``start_s`` to its end start,
    after checking the video (``check_video``: ``start_s`` within it, the file within
    ``max_duration_s`` and ``max_side``) and that it takes at most ``max_captions`` captions."""
    path = Path(path)
    info = probe_video(path)
    check_video(info, path.name, max_duration_s=max_duration_s, max_side=max_side, start_s=start_s)
    starts = timeline_starts(info.video_s, every_s, start_s)
    if max_captions is not None and len(starts) > max_captions:
        raise ValueError(f"{path.name} from {start_s:g} s, a caption every {every_s:g} s, takes {len(starts)} captions; "
                         f"the limit is {max_captions}. Caption less often or from later in the clip")
    return TimelinePlan(path, info, every_s, starts, max_side)


def run_timeline(
    pipe, plan: TimelinePlan, *, on_cue: Callable[[int, int, Cue], None] | None = None, **caption_options: Any,
) -> list[Cue]:
    """Caption each clip of ``plan`` — ``pipe.caption(clip, **caption_options)`` of the model's clip
    from its start, fitted to the model (``read_clip``) — calling ``on_cue(index, count, cue)`` as
    each is made."""
    cues = []
    for index, start in enumerate(plan.starts):
        clip = read_clip(plan.path, num_frames=pipe.default_num_frames, fps=pipe.fps, height=pipe.default_height,
                         width=pipe.default_width, start_s=start, info=plan.info, max_side=plan.max_side)
        text = pipe.caption(clip.frames, **caption_options).text
        cues.append(Cue(start, min(start + plan.every_s, plan.info.video_s), text))
        if on_cue is not None:
            on_cue(index, len(plan.starts), cues[-1])
    return cues


def caption_timeline(
    pipe,
    path: str | os.PathLike,
    every_s: float,
    *,
    start_s: float = 0.0,
    max_captions: int | None = None,
    on_cue: Callable[[int, int, Cue], None] | None = None,
    **caption_options: Any,
) -> list[Cue]:
    """Caption the video at ``path`` every ``every_s`` seconds from ``start_s`` to its end:
    ``run_timeline`` of ``plan_timeline`` (which refuses more than ``max_captions`` captions before
    the first is made)."""
    plan = plan_timeline(path, every_s, start_s=start_s, max_captions=max_captions)
    return run_timeline(pipe, plan, on_cue=on_cue, **caption_options)


def timestamp(seconds: float, decimal: str = ".") -> str:
    """``HH:MM:SS.mmm`` (``decimal=","`` as SubRip writes it)."""
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{decimal}{rest % 1000:03d}"


def to_srt(cues: list[Cue]) -> str:
    """The cues as SubRip subtitles: a numbered block per cue."""
    return "\n".join(f"{i}\n{timestamp(c.start_s, ',')} --> {timestamp(c.end_s, ',')}\n{c.text}\n"
                     for i, c in enumerate(cues, start=1))


__all__ = ["Cue", "TimelinePlan", "caption_timeline", "plan_timeline", "run_timeline", "timeline_starts", "timestamp",
           "to_srt"]
