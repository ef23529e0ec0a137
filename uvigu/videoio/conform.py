"""Clips brought to the model's format: its size (a centred crop to its aspect, then resized), frame
rate and length, with a note of each change."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import cv2
import numpy as np

from .frames import check_frames
from .reading import VideoInfo, probe_video, read_video


@dataclass(frozen=True)
class ConformedVideo:
    """A clip brought to the model's size, frame rate and length; ``notes`` says what changed."""

    frames: np.ndarray  # uint8 (num_frames, height, width, 3)
    notes: list[str] = field(default_factory=list)


def read_clip(
    path: str | os.PathLike,
    *,
    num_frames: int,
    fps: float,
    height: int,
    width: int,
    start_s: float = 0.0,
    info: VideoInfo | None = None,
    max_duration_s: float | None = None,
    max_side: int | None = None,
) -> ConformedVideo:
    """The clip of ``path`` a model of ``num_frames`` at ``fps``, ``height``×``width`` takes, from
    ``start_s`` on: ``conform_video`` of only the seconds it needs, decoded at the smallest size
    that covers the model's (a minute of 4K is read as its first seconds at about the model's
    size, not decoded whole at 4K into memory), with notes that describe the file. ``info``,
    ``max_duration_s`` and ``max_side`` as ``read_video``'s.
    """
    info = info if info is not None else probe_video(path)
    # One target frame and one source frame more than the clip needs, so that the nearest-frame
    # resampling never runs past what was decoded, and can tell the file goes on.
    decoded = read_video(path, max_duration_s=max_duration_s, max_side=max_side,
                         first_s=(num_frames + 1) / fps + 1 / info.fps, start_s=start_s,
                         cover=(height, width), info=info)
    conformed = conform_video(decoded.frames, decoded.fps, num_frames=num_frames, target_fps=fps, height=height,
                              width=width, source=info, source_start_s=start_s)
    return ConformedVideo(frames=conformed.frames, notes=[*decoded.notes, *conformed.notes])


def conform_video(
    frames: np.ndarray,
    fps: float,
    *,
    num_frames: int,
    target_fps: float,
    height: int,
    width: int,
    source: VideoInfo | None = None,
    source_start_s: float = 0.0,
) -> ConformedVideo:
    """Bring ``frames`` uint8 (f, h, w, 3) at ``fps`` to (num_frames, height, width, 3).

    Time: frames are sampled at ``target_fps`` from the start (nearest source frame); a longer
    clip keeps its first ``num_frames / target_fps`` seconds, a shorter one repeats its last
    frame. Space: center-crop to the target aspect, then resize (area interpolation). ``notes``
    lists every change in plain words; it is empty when the clip already fits. When ``frames``
    are only part of a file, decoded smaller (``read_clip``), ``source`` is the file's
    ``probe_video`` and ``source_start_s`` where the frames start in it: the notes then say what
    changed from the file.
    """
    frames = check_frames(frames)
    if not fps > 0 or not target_fps > 0:
        raise ValueError(f"frame rates must be positive, got fps={fps!r}, "
                         f"target_fps={target_fps!r}")
    if num_frames < 1 or height < 1 or width < 1:
        raise ValueError(f"num_frames, height and width must be at least 1, got "
                         f"{num_frames}, {height}, {width}")
    notes: list[str] = []
    src_count = frames.shape[0]
    # The file's frames from where these start: whether the clip leaves some of it unused.
    file_count = src_count if source is None else source.num_frames - math.floor(source_start_s * source.fps + 1e-9)

    # Time. Target frame i shows the source at t = i / target_fps.
    ratio = fps / target_fps
    if source is not None and source.variable_rate:
        notes.append(f"resampled a variable frame rate ({_fmt_fps(fps)} fps on average) → "
                     f"{_fmt_fps(target_fps)} fps, by the frames' times")
    elif abs(fps - target_fps) > 1e-3:
        notes.append(f"resampled {_fmt_fps(fps)} fps → {_fmt_fps(target_fps)} fps")
    positions = np.floor(np.arange(num_frames) * ratio + 0.5 + 1e-9).astype(int)
    available = int(np.count_nonzero(positions < src_count))
    # A source frame exists beyond the last one used: the clip is longer than needed.
    next_position = math.floor(num_frames * ratio + 0.5 + 1e-9)
    if available == num_frames and next_position < max(src_count, file_count):
        where = "the first " if source_start_s == 0 else ""
        since = f" from {_fmt_s(source_start_s)} s" if source_start_s else ""
        notes.append(f"used {where}{_fmt_s(num_frames / target_fps)} s{since} ({num_frames} frames)")
    elif available < num_frames:
        which = f"the {available} frames from {_fmt_s(source_start_s)} s" if source_start_s else f"{available}"
        notes.append(f"padded {which} → {num_frames} frames by repeating the last frame")
    frames = frames[np.minimum(positions, src_count - 1)]  # (num_frames, h, w, 3)

    # Space.
    src_h, src_w = frames.shape[1:3]
    crop_h, crop_w = _crop_size(src_h, src_w, height, width)
    cropped = (crop_h, crop_w) != (src_h, src_w)
    if cropped:
        top, left = (src_h - crop_h) // 2, (src_w - crop_w) // 2
        frames = frames[:, top:top + crop_h, left:left + crop_w]
    resized = (crop_h, crop_w) != (height, width)
    if resized:
        frames = np.stack([cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
                           for frame in frames])
    if source is not None:  # the notes tell of the file, not of the smaller frames decoded from it
        src_h, src_w = source.height, source.width
        crop_h, crop_w = _crop_size(src_h, src_w, height, width)
        cropped, resized = (crop_h, crop_w) != (src_h, src_w), (crop_h, crop_w) != (height, width)
    if resized:
        crop_note = f" (center-cropped to {_fmt_aspect(width, height)})" if cropped else ""
        notes.append(f"resized {src_w}×{src_h} → {width}×{height}{crop_note}")
    elif cropped:
        notes.append(f"center-cropped {src_w}×{src_h} → {width}×{height}")
    return ConformedVideo(frames=np.ascontiguousarray(frames), notes=notes)


def _crop_size(src_h: int, src_w: int, height: int, width: int) -> tuple[int, int]:
    """The centered crop of a ``src_h``×``src_w`` frame with the aspect of ``height``×``width``."""
    if src_w * height > width * src_h:  # too wide: crop the sides
        return src_h, max(1, round(src_h * width / height))
    return max(1, round(src_w * height / width)), src_w  # too tall: crop top and bottom


def _fmt_fps(fps: float) -> str:
    return f"{fps:.4g}"


def _fmt_s(seconds: float) -> str:
    text = f"{seconds:.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _fmt_aspect(width: int, height: int) -> str:
    if width == height:
        return "square"
    divisor = math.gcd(width, height)
    return f"{width // divisor}:{height // divisor}"
