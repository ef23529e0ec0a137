"""Writing clips: MP4 (H.264, yuv420p, BT.709, ``+faststart``), GIF, a PNG strip of frames, and a
picture of a run's denoising steps. Every writer is atomic: it encodes into a temporary file
beside the target and moves it into place with ``os.replace``, so a crash never leaves a
half-written file behind."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import imageio.v2 as imageio_v2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .frames import check_frames

logger = logging.getLogger(__name__)

# x264 constant-rate factor: 18 is visually lossless for the small flat-coloured clips the
# model makes; imageio's default (quality 5 → crf 25) visibly smears 64 px shapes.
_MP4_CRF = 18
# What the MP4s we write hold, said in the file: RGB to BT.709's YUV (limited range), tagged so, as
# web video is. Untagged, players guess, and they differ (ffmpeg reads BT.601, which tints reds
# towards orange when the numbers were BT.709's).
_MP4_COLOURS = ["-vf", "scale=out_color_matrix=bt709:out_range=tv,"
                "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv",
                "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv"]
# A trajectory's picture (write_trajectory_png): Pillow's own font, so no system font is needed.
_SHEET_FONT_PX = 14
_SHEET_PAD = 6
_SHEET_LABEL_PX = 90  # the step's number, σ and stage
_SHEET_TEXT_PX = 420  # the step's text, wrapped
_SHEET_BACKGROUND, _SHEET_INK = (255, 255, 255), (32, 32, 32)
_SHEET_MAX_PIXELS = 60_000_000  # 180 MB as RGB in memory: 100 steps of six 256 px frames


def write_mp4(frames: np.ndarray, path: str | os.PathLike, fps: int, scale: int = 1) -> Path:
    """Write ``frames`` uint8 (f, h, w, 3) as an H.264 / yuv420p MP4 at ``fps``; return the path.

    ``scale`` > 1 enlarges each pixel to a ``scale``×``scale`` block (nearest neighbour, so small
    model clips stay crisp). Odd sizes are padded by one edge-replicated row / column, because
    yuv420p needs even dimensions.
    """
    if not isinstance(fps, (int, np.integer)) or isinstance(fps, bool) or fps <= 0:
        raise ValueError(f"fps must be a positive integer, got {fps!r}")
    frames = _pad_to_even(_enlarge(check_frames(frames), scale))
    path = Path(path)
    with _atomic_target(path) as tmp:
        writer = imageio_v2.get_writer(
            tmp,
            format="FFMPEG",
            mode="I",
            fps=int(fps),
            codec="libx264",
            pixelformat="yuv420p",
            macro_block_size=2,  # sizes are already even: never let imageio rescale
            quality=None,  # the CRF below decides quality
            ffmpeg_log_level="error",
            output_params=["-crf", str(_MP4_CRF), *_MP4_COLOURS, "-movflags", "+faststart", "-f", "mp4"],
        )
        try:
            for frame in frames:
                writer.append_data(frame)
        finally:
            writer.close()
    logger.debug("wrote %s: %s frames at %d fps", path, frames.shape, fps)
    return path


def write_gif(
    frames: np.ndarray, path: str | os.PathLike, fps: float, *, scale: int = 1
) -> Path:
    """Write ``frames`` uint8 (f, h, w, 3) as a looping GIF at ``fps``; return the path.

    GIF stores delays in 1/100 s, so the played rate is only approximately ``fps``; Pillow
    merges identical consecutive frames into one longer frame (the timing is kept).
    """
    frames = _enlarge(check_frames(frames), scale)
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    images = [Image.fromarray(frame) for frame in frames]
    path = Path(path)
    with _atomic_target(path) as tmp:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=round(1000 / fps),
            loop=0,
        )
    return path


def write_strip_png(
    frames: np.ndarray, path: str | os.PathLike, num: int = 8, *, scale: int = 1
) -> Path:
    """Write ``num`` evenly spaced frames of ``frames`` (f, h, w, 3) side by side as one PNG.

    The strip is uint8 (h, min(num, f)·w, 3) (times ``scale``); the first and last frames are
    always included. Returns the path.
    """
    frames = check_frames(frames)
    if num < 1:
        raise ValueError(f"num must be at least 1, got {num}")
    count = min(num, frames.shape[0])
    indices = np.linspace(0, frames.shape[0] - 1, count).round().astype(int)
    strip = np.concatenate(list(_enlarge(frames[indices], scale)), axis=1)  # (h, count·w, 3)
    path = Path(path)
    with _atomic_target(path) as tmp:
        Image.fromarray(strip).save(tmp, format="PNG")
    return path


def write_trajectory_png(
    steps: Sequence[Any], path: str | os.PathLike, num: int = 4, *, side: int | None = None, title: str = "",
) -> Path:
    """Write a denoising trajectory as one picture: a row per step, top to bottom — the step's
    number and noise level σ (written "noise"), ``num`` evenly spaced frames of its clean-clip
    estimate (the first and last among them; resized, keeping their shape, so that their shorter
    side is ``side`` pixels, unless None) and, when any step has one, its text (masked words as
    ``_``), wrapped — under an optional ``title``. Each step is an object with ``sigma``,
    ``frames`` (uint8 (f, h, w, 3)), ``text`` (str or None) and, optionally, ``stage`` (said in
    the row's label where it changes): the pipeline's ``TrajectoryStep`` or the studio's steps.
    Returns the path."""
    if not steps:
        raise ValueError("the trajectory has no steps")
    if num < 1:
        raise ValueError(f"num must be at least 1, got {num}")
    clips = [check_frames(step.frames) for step in steps]
    height, width = clips[0].shape[1:3]
    if any(clip.shape[1:3] != (height, width) for clip in clips):
        raise ValueError("every step of a trajectory must have frames of one size")
    factor = 1.0
    if side is not None:
        if side < 1:
            raise ValueError(f"side must be at least 1, got {side}")
        factor = side / min(height, width)
        height, width = max(1, round(height * factor)), max(1, round(width * factor))
    count = min(num, min(clip.shape[0] for clip in clips))
    font = ImageFont.load_default(size=_SHEET_FONT_PX)
    line_px = _SHEET_FONT_PX + 4
    text_px = _SHEET_TEXT_PX if any(step.text is not None for step in steps) else 0
    sheet_w = _SHEET_PAD + _SHEET_LABEL_PX + count * (width + _SHEET_PAD) + text_px
    rows, stage = [], None  # (label lines, text lines, height) a step
    for index, step in enumerate(steps):
        label = [f"step {index}", f"noise {float(step.sigma):.3f}"]  # σ: Pillow's font has no Greek
        if getattr(step, "stage", None) and step.stage != stage:
            stage = step.stage
            label.insert(0, str(stage))
        lines = _wrap(step.text or "", font, text_px - _SHEET_PAD) if text_px else []
        rows.append((label, lines, max(height, len(label) * line_px, len(lines) * line_px)))
    title_lines = _wrap(title, font, sheet_w - 2 * _SHEET_PAD)
    top = _SHEET_PAD + len(title_lines) * line_px + (_SHEET_PAD if title_lines else 0)
    sheet_h = top + sum(row_px + _SHEET_PAD for _, _, row_px in rows)
    if sheet_h * sheet_w > _SHEET_MAX_PIXELS:
        raise ValueError(f"a picture of {len(steps)} steps at this size would be {sheet_w}×{sheet_h} pixels; "
                         "use fewer frames per step or a smaller side")
    sheet = Image.new("RGB", (sheet_w, sheet_h), _SHEET_BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for i, line in enumerate(title_lines):
        draw.text((_SHEET_PAD, _SHEET_PAD + i * line_px), line, fill=_SHEET_INK, font=font)
    y = top
    for clip, (label, lines, row_px) in zip(clips, rows):
        for i, line in enumerate(label):
            draw.text((_SHEET_PAD, y + i * line_px), line, fill=_SHEET_INK, font=font)
        x = _SHEET_PAD + _SHEET_LABEL_PX
        for frame in clip[np.linspace(0, clip.shape[0] - 1, count).round().astype(int)]:
            if frame.shape[:2] != (height, width):  # pixels kept sharp when enlarged, averaged when shrunk
                frame = cv2.resize(frame, (width, height),
                                   interpolation=cv2.INTER_NEAREST if factor > 1 else cv2.INTER_AREA)
            sheet.paste(Image.fromarray(frame), (x, y))
            x += width + _SHEET_PAD
        for i, line in enumerate(lines):
            draw.text((x, y + i * line_px), line, fill=_SHEET_INK, font=font)
        y += row_px + _SHEET_PAD
    path = Path(path)
    with _atomic_target(path) as tmp:
        sheet.save(tmp, format="PNG")
    return path


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """``text``'s words in lines no wider than ``width`` pixels in ``font`` (a longer word alone on its line)."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def _enlarge(frames: np.ndarray, scale: int) -> np.ndarray:
    if not isinstance(scale, (int, np.integer)) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    if scale == 1:
        return frames
    return frames.repeat(scale, axis=1).repeat(scale, axis=2)  # (f, h·s, w·s, 3)


def _pad_to_even(frames: np.ndarray) -> np.ndarray:
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return np.ascontiguousarray(frames)


@contextlib.contextmanager
def _atomic_target(path: Path) -> Iterator[str]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only if the body succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:  # a new name; made as open() makes a file (mkstemp's would be private to its owner)
        tmp = str(path.parent / f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
        except OSError as error:  # said of the file asked for, not of a temporary name never seen
            raise type(error)(error.errno, error.strerror, str(path)) from error
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
