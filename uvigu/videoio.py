"""Video files in and out: MP4 / GIF / PNG writers (strips, trajectories), probing, decoding, conforming.

Frames are ``uint8`` arrays of shape ``(f, h, w, 3)`` (RGB) everywhere in this module.

Every writer is atomic: it encodes into a temporary file beside the target and moves it into
place with ``os.replace``, so a crash never leaves a half-written file behind. MP4s are H.264
(libx264) / yuv420p with even dimensions and ``+faststart`` (DESIGN.md §6: plays in every
browser), in BT.709 colours that the file names. Reading goes through the ffmpeg binary that
``imageio-ffmpeg`` ships (no system ffmpeg needed); every problem with an input file is a
``ValueError`` a user can act on.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import re
import secrets
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import imageio.v2 as imageio_v2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

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
_PROBE_TIMEOUT_S = 60.0
_DECODE_TIMEOUT_S = 600.0
# Only ffmpeg log lines tagged with these levels (by `-loglevel level+…`) count as problems.
_ERROR_LINE = re.compile(r"^(?:\[[^\]]* @ 0x[0-9a-f]+\] )?\[(?:error|fatal|panic)\]")
# High-dynamic-range transfers, by their ffmpeg names.
_HDR_TRANSFERS = {"arib-std-b67": "HLG", "smpte2084": "PQ"}
# Standard-range transfers BT.2020 video uses (BT.709's curve), "" where a file does not say.
_SDR_TRANSFERS = ("", "bt709", "bt2020-10", "bt2020-12")
# YUV pixel formats whose matrix a file may leave unsaid (not yuvj*: JPEG's, which is BT.601).
_YUV_FORMAT = re.compile(r"yuv(?!j)|yuyv|uyvy|nv\d|p\d{3}")
# HDR reference white, in cd/m² (ITU-R BT.2408: where both HLG and PQ put the white of a standard-
# range picture, HLG at 75 % of its signal): linearized with it, standard-range colours come out
# in 0..1 and only highlights above it need tone mapping.
_HDR_REFERENCE_WHITE = 203.0
# HLG's nominal display peak, 1000 cd/m² (BT.2100), above the reference white: the highlights' range.
_HDR_PEAK = 1000.0 / _HDR_REFERENCE_WHITE
# Tone mapping (ffmpeg's tonemap, on the largest channel, so hues keep): linear light up to this
# fraction of the reference white is kept as it is, above it compressed smoothly (Möbius) into 1.
_TONEMAP_KNEE = 0.8
# A trajectory's picture (write_trajectory_png): Pillow's own font, so no system font is needed.
_SHEET_FONT_PX = 14
_SHEET_PAD = 6
_SHEET_LABEL_PX = 90  # the step's number, σ and stage
_SHEET_TEXT_PX = 420  # the step's text, wrapped
_SHEET_BACKGROUND, _SHEET_INK = (255, 255, 255), (32, 32, 32)
_SHEET_MAX_PIXELS = 60_000_000  # 180 MB as RGB in memory: 100 steps of six 256 px frames


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe_video`` finds in a file's first video stream (display size, after rotation)."""

    codec: str  # ffmpeg codec name, e.g. "h264"
    pix_fmt: str  # e.g. "yuv420p"
    width: int
    height: int
    fps: float
    num_frames: int
    duration_s: float
    # The frames are not evenly spaced in time (phone and screen recordings, browser WebM, GIFs
    # with mixed delays): ``fps`` is then their average rate, and decoding places them by time.
    variable_rate: bool = False
    # The stream's colour tags as ffmpeg names them ("" where the file does not say): the transfer
    # tells HDR ("arib-std-b67": HLG, "smpte2084": PQ) from standard range, and BT.2020 primaries
    # wide-gamut standard range from BT.709's.
    transfer: str = ""
    primaries: str = ""
    matrix: str = ""
    # (width, height) of the frames as stored, when their pixels are not square (DV, DVD, HDV, some
    # broadcast): ``width``×``height`` is then the size shown, which decoding stretches them to.
    stored_size: tuple[int, int] | None = None

    @property
    def hdr(self) -> str | None:
        """``"HLG"`` or ``"PQ"`` for high-dynamic-range video (phones record HLG by default), else ``None``."""
        return _HDR_TRANSFERS.get(self.transfer)

    @property
    def video_s(self) -> float:
        """How long the video lasts: the file's duration can also count a longer audio track."""
        return min(self.duration_s, self.num_frames / self.fps)


@dataclass(frozen=True)
class DecodedVideo:
    """A decoded clip: ``frames`` uint8 (f, h, w, 3) RGB, played at ``fps``; ``notes`` says what
    decoding changed besides shrinking (HDR tone-mapped, wide-gamut colours converted, non-square
    pixels stretched)."""

    frames: np.ndarray
    fps: float
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConformedVideo:
    """A clip brought to the model's size, frame rate and length; ``notes`` says what changed."""

    frames: np.ndarray  # uint8 (num_frames, height, width, 3)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def write_mp4(frames: np.ndarray, path: str | os.PathLike, fps: int, scale: int = 1) -> Path:
    """Write ``frames`` uint8 (f, h, w, 3) as an H.264 / yuv420p MP4 at ``fps``; return the path.

    ``scale`` > 1 enlarges each pixel to a ``scale``×``scale`` block (nearest neighbour, so small
    model clips stay crisp). Odd sizes are padded by one edge-replicated row / column, because
    yuv420p needs even dimensions.
    """
    if not isinstance(fps, (int, np.integer)) or isinstance(fps, bool) or fps <= 0:
        raise ValueError(f"fps must be a positive integer, got {fps!r}")
    frames = _pad_to_even(_enlarge(_check_frames(frames), scale))
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
    frames = _enlarge(_check_frames(frames), scale)
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
    frames = _check_frames(frames)
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
    clips = [_check_frames(step.frames) for step in steps]
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


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Describe the first video stream of ``path`` (codec, size, fps, frame count, duration).

    Frames are counted by demuxing the whole file without decoding (fast). Raises
    ``ValueError`` for a missing, empty, non-video, corrupt or truncated file.
    """
    path = _check_file(path)
    # Stream copy reads every packet without the cost of decoding: it counts frames, surfaces
    # truncation ("partial file") and, through the framecrc muxer, lists each frame's time.
    result = _run_ffmpeg(["-i", _ffmpeg_input(path), "-map", "0:V:0", "-c", "copy",
                          "-f", "framecrc", "-"], timeout=_PROBE_TIMEOUT_S)
    log = result.stderr.decode("utf-8", errors="replace")
    input_section = re.split(r"^\[info\] (?:Stream mapping:|Output #0)", log, maxsplit=1,
                             flags=re.MULTILINE)[0]
    stream = _first_video_stream(input_section)
    if stream is None:
        if not re.search(r"^\[info\] Input #0", input_section, flags=re.MULTILINE):
            raise ValueError(f"{path.name} is not a video file ffmpeg can read "
                             f"({_first_error(log) or 'unknown format'}); "
                             "use an MP4, WebM, MOV, AVI, MKV or GIF file")
        raise ValueError(f"{path.name} has no video stream (audio only or an image?); "
                         "use a video file")
    if result.returncode != 0:
        raise ValueError(f"{path.name} could not be read: {_first_error(log) or 'ffmpeg failed'}")
    # Errors logged before the input's description come from the few frames ffmpeg decodes to
    # identify the streams: a stream cut anywhere (a TV recording, a segment of a longer one)
    # starts with frames whose references it lacks, harmlessly, for the decoder skips to its first
    # keyframe, and so does this count. Truncation and corruption show while the packets are copied.
    errors = _error_lines(re.split(r"^\[info\] Input #0", log, maxsplit=1, flags=re.MULTILINE)[-1])
    if errors:
        raise ValueError(f"{path.name} is corrupt or truncated ({_strip_prefix(errors[-1])}); "
                         "re-export or re-upload the file")

    codec, pix_fmt, width, height, fps, sample_aspect, color = stream
    stored_size = None
    if abs(sample_aspect - 1) > 1e-3:  # shown wider or narrower than stored: the width shown, even
        stored_size, width = (width, height), max(2, 2 * round(width * sample_aspect / 2))
    rotation = re.search(r"display ?matrix: rotation of (-?[\d.]+) degrees", input_section,
                         flags=re.IGNORECASE)
    if rotation and round(abs(float(rotation.group(1)))) % 180 == 90:
        width, height = height, width  # ffmpeg auto-rotates when decoding
        stored_size = stored_size[::-1] if stored_size else None
    frame_counts = re.findall(r"frame=\s*(\d+)", log)
    times, hidden = _frame_times(result.stdout)
    # Frames an edit list hides (a file trimmed without re-encoding keeps them from the keyframe
    # before its cut) are not shown, and the decoder drops them: they do not count.
    num_frames = int(frame_counts[-1]) - hidden if frame_counts else 0
    if num_frames == 0:
        raise ValueError(f"{path.name} contains no video frames")
    # The stream's stated rate, unless its frames are not evenly spaced: then their average rate.
    average_fps = _variable_rate(times)
    if average_fps is not None:
        fps = average_fps
    duration = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", input_section)
    duration_s = num_frames / fps if fps > 0 else 0.0
    if duration:  # the container's, unless it says less than the frames last (MPEG-PS estimates it from its bitrate)
        hours, minutes, seconds = duration.groups()
        duration_s = max(duration_s, int(hours) * 3600 + int(minutes) * 60 + float(seconds))
    if fps <= 0:
        fps = num_frames / duration_s if duration_s > 0 else 0.0
    if fps <= 0:
        raise ValueError(f"{path.name} has no usable frame rate")
    return VideoInfo(codec=codec, pix_fmt=pix_fmt, width=width, height=height, fps=fps,
                     num_frames=num_frames, duration_s=duration_s, variable_rate=average_fps is not None,
                     stored_size=stored_size, **color)


def _frame_times(framecrc: bytes) -> tuple[np.ndarray | None, int]:
    """Presentation times in seconds, in display order, of the packets ffmpeg's framecrc muxer
    listed (``#tb 0: num/den``, then ``stream, dts, pts, duration, size, crc[, F=flags]`` a line;
    ``None`` when the listing gives no time base or a packet has no time), and how many packets it
    listed as discarded (flag 0x4: hidden by an edit list), which the times leave out."""
    text = framecrc.decode("ascii", errors="replace")
    time_base = re.search(r"^#tb 0: (\d+)/(\d+)", text, flags=re.MULTILINE)
    pts, hidden, timed = [], 0, time_base is not None and int(time_base.group(2)) != 0
    for line in text.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if line.startswith("#") or len(fields) < 6:
            continue
        flags = next((int(f[2:], 16) for f in fields[6:] if f.startswith("F=")), 0)
        if flags & 0x4:  # AV_PKT_FLAG_DISCARD
            hidden += 1
            continue
        try:
            value = int(fields[2])
        except ValueError:
            timed = False
            continue
        if value <= -(2**62):  # AV_NOPTS_VALUE: the container keeps no times
            timed = False
        pts.append(value)
    if not timed:
        return None, hidden
    return np.sort(np.asarray(pts, dtype=np.int64)) * int(time_base.group(1)) / int(time_base.group(2)), hidden


def _variable_rate(times: np.ndarray | None) -> float | None:
    """The average rate of frames shown at ``times`` (seconds, sorted) when they are not evenly
    spaced, that is when frame i is more than half a frame from ``i / rate`` (where reading
    frames by their index would show another frame than reading them by time); else ``None``."""
    if times is None or len(times) < 3 or not times[-1] > times[0]:
        return None
    rate = (len(times) - 1) / (times[-1] - times[0])
    drift = np.abs(times - times[0] - np.arange(len(times)) / rate).max()
    return float(rate) if drift > 0.5 / rate else None


def read_video(
    path: str | os.PathLike,
    max_frames: int | None = None,
    max_duration_s: float | None = None,
    max_side: int | None = None,
    *,
    first_s: float | None = None,
    start_s: float = 0.0,
    cover: tuple[int, int] | None = None,
    info: VideoInfo | None = None,
) -> DecodedVideo:
    """Decode ``path`` to RGB frames uint8 (f, h, w, 3) and its frame rate.

    ``max_frames``, ``max_duration_s`` and ``max_side`` are limits on the whole file: a file
    over any of them is refused with a ``ValueError`` (nothing is decoded). ``first_s`` decodes
    only the first ``first_s`` seconds (for taking a short clip from a long file), counted from
    ``start_s`` (0: the file's start). ``cover=(height, width)`` has the decoder shrink each frame,
    keeping its aspect, to the smallest size that still covers ``height``×``width`` (never
    enlarging it), so that a large file is not piped out at full size when it is to be conformed
    to a small one. ``info`` is the file's ``probe_video`` when the caller already has it.
    Missing, empty, non-video, corrupt and truncated files raise ``ValueError`` too.
    """
    info = info if info is not None else probe_video(path)
    name = Path(path).name
    check_video(info, name, max_duration_s=max_duration_s, max_frames=max_frames, max_side=max_side, start_s=start_s)
    if first_s is not None and not first_s > 0:
        raise ValueError(f"first_s must be positive, got {first_s!r}")

    # Frames not evenly spaced are read by time: frame i is what shows at i / fps.
    filters = [f"fps={info.fps:.6f}"] if info.variable_rate else []
    width, height = info.width, info.height
    scale = []
    if cover is not None:
        width, height = _covering_size(width, height, cover)
        if (width, height) != (info.width, info.height):
            # Scaled in RGB: the file's 4:2:0 chroma, kept to the small size, would blur small colours.
            scale = [f"scale={width}:{height}:flags=area"]
    notes = []
    if info.stored_size is not None:  # non-square pixels: stretched to the size shown (or covering it)
        scale = [f"scale={width}:{height}:flags={'area' if scale else 'bicubic'}", "setsar=1"]
        stored_width, stored_height = info.stored_size
        notes.append(f"stretched non-square pixels: {stored_width}×{stored_height} stored, "
                     f"{info.width}×{info.height} shown")
    wide_gamut = info.hdr is None and info.primaries == "bt2020" and info.transfer in _SDR_TRANSFERS
    if info.hdr and _can_tone_map():
        # Shrunk in linear light, between the two halves of the tone mapping.
        linear, standard = _tone_mapping(info)
        filters += linear + scale + standard
        notes.insert(0, f"tone-mapped HDR ({info.hdr}) to standard range")
    elif wide_gamut and _can_tone_map():
        # Standard range in BT.2020's wider primaries (as some 10-bit cameras record): its colours,
        # not its numbers read as BT.709's, which would make them paler.
        unstated = "" if info.matrix else ":min=bt2020nc"
        filters += [f"zscale=tin={info.transfer or 'bt709'}:pin=bt2020{unstated}:t=bt709:p=bt709",
                    "format=gbrp", *scale]
        notes.insert(0, "converted wide-gamut colours (BT.2020) to BT.709")
    else:
        if info.hdr or wide_gamut:
            what = f"HDR ({info.hdr})" if info.hdr else "wide-gamut (BT.2020)"
            logger.warning("%s is %s, and this ffmpeg lacks the zscale and tonemap filters: its colours are "
                           "read as they are stored, paler", name, what)
            notes.insert(0, f"read {what} colours as they are stored (ffmpeg lacks zscale): they look paler"
                         + (" and darker" if info.hdr else ""))
        if _unstated_hd_matrix(info):
            # As browsers and players read it (Chromium, mpv): HD video that does not say its matrix is BT.709's.
            filters.insert(0, "setparams=colorspace=bt709")
        filters += ["format=gbrp", *scale] if scale else []
    frame_bytes = width * height * 3

    def decode(seek: str) -> tuple[subprocess.CompletedProcess, str]:
        """ffmpeg's run and log. ``seek``: "input" (-ss before -i: from the keyframe before start_s,
        decoding up to it exactly; showinfo logs each frame's time, to check where it landed) or
        "output" (-ss after -i: decode from the file's start and drop what comes before start_s)."""
        where = ["-ss", f"{start_s:.6f}"] if start_s > 0 else []
        source = ["-i", _ffmpeg_input(Path(path)), "-map", "0:V:0"]
        args = where + source if seek == "input" else source + where
        if first_s is not None:
            args += ["-t", f"{first_s:.6f}"]
        chain = filters + (["showinfo"] if start_s > 0 and seek == "input" else [])
        if chain:
            args += ["-vf", ",".join(chain)]
        # passthrough: one output frame per filtered frame, no further frame-rate conversion by ffmpeg.
        args += ["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
        result = _run_ffmpeg(args, timeout=_DECODE_TIMEOUT_S)
        return result, result.stderr.decode("utf-8", errors="replace")

    result, log = decode("input")
    if start_s > 0 and result.returncode == 0 and not _landed(log, info.fps):
        # Some containers (MPEG-TS among them) have no index to seek by, and a seek can land past
        # start_s or nowhere; then read from the file's start, which is slower but exact.
        logger.info("%s: seeking to %.3f s landed elsewhere; decoding from the start up to it", name, start_s)
        result, log = decode("output")
    count, remainder = divmod(len(result.stdout), frame_bytes)
    if result.returncode != 0 or remainder:
        raise ValueError(f"{name} could not be decoded: {_first_error(log) or 'ffmpeg failed'}")
    if count == 0:
        raise ValueError(f"{name} contains no decodable video frames"
                         + (f" from {start_s:.3f} s on" if start_s > 0 else ""))
    expected = info.num_frames
    if first_s is not None:
        expected = min(expected, math.floor(first_s * info.fps))
    if start_s > 0:  # the frames from start_s on, give or take the one it falls in
        expected = min(expected, info.num_frames - math.ceil(start_s * info.fps)) - 1
    if info.variable_rate:  # placed by time, the last frame may round away
        expected -= 1
    if count < expected:
        detail = _first_error(log)
        raise ValueError(f"{name} is corrupt or truncated: only {count} of {expected} frames "
                         f"decode{f' ({detail})' if detail else ''}; re-export the file")
    for line in _error_lines(log):
        logger.warning("%s: %s", name, _strip_prefix(line))
    frames = np.frombuffer(result.stdout, dtype=np.uint8).reshape(count, height, width, 3)  # (f, h, w, 3)
    return DecodedVideo(frames=frames.copy(), fps=info.fps, notes=tuple(notes))


def _unstated_hd_matrix(info: VideoInfo) -> bool:
    """Whether ``info`` is YUV video of HD size (1280 wide or more, or taller than PAL's 576 lines,
    either way up) that does not say which matrix made its YUV from RGB: then it is BT.709's, as
    HD cameras, editors and screen recorders write it, and not ffmpeg's default BT.601 (SD's), which
    would tint its reds towards orange and its greens towards yellow. MJPEG is JPEG's BT.601."""
    wide, tall = max(info.width, info.height), min(info.width, info.height)
    return (not info.matrix and info.codec != "mjpeg" and bool(_YUV_FORMAT.match(info.pix_fmt))
            and (wide >= 1280 or tall > 576))


def _tone_mapping(info: VideoInfo) -> tuple[list[str], list[str]]:
    """The ffmpeg filters that bring HDR video (``info.hdr``) to standard-range BT.709 RGB, in two
    halves: to linear light in BT.709 primaries, scaled so that HDR reference white is 1 (standard-
    range colours keep their values); then the highlights above it tone-mapped into range, and back
    to BT.709's transfer as 8-bit RGB. Filters between the halves (shrinking) work in linear light."""
    # The frames carry the file's tags; where it has none, what HDR video uses.
    unstated = ("" if info.primaries else ":pin=bt2020") + ("" if info.matrix else ":min=bt2020nc")
    linear = [f"zscale=tin={info.transfer}{unstated}:t=linear:npl={_HDR_REFERENCE_WHITE:g}:p=bt709",
              "format=gbrpf32le"]
    standard = [f"tonemap=mobius:param={_TONEMAP_KNEE:g}:desat=0:peak={_HDR_PEAK:.4f}",
                "zscale=tin=linear:pin=bt709:t=bt709:p=bt709:r=pc", "format=gbrp"]
    return linear, standard


@functools.cache
def _can_tone_map() -> bool:
    """Whether the ffmpeg in use has the filters HDR needs (the bundled one has; a system one set
    through ``IMAGEIO_FFMPEG_EXE`` may not)."""
    try:
        listing = _run_ffmpeg(["-filters"], timeout=_PROBE_TIMEOUT_S).stdout.decode()
    except (OSError, ValueError):  # no ffmpeg to run, or it took too long
        return False
    return all(re.search(rf"^\s*\S+\s+{name}\s", listing, flags=re.MULTILINE) for name in ("zscale", "tonemap"))


def check_video(
    info: VideoInfo,
    name: str,
    *,
    max_duration_s: float | None = None,
    max_frames: int | None = None,
    max_side: int | None = None,
    start_s: float = 0.0,
) -> None:
    """Refuse (``ValueError`` saying what to do) the file ``name`` described by ``info`` when it is
    over a limit on the whole file, or when ``start_s`` is not a time within its video (a longer
    audio track does not count)."""
    if max_duration_s is not None and info.duration_s > max_duration_s + 1e-6:
        raise ValueError(f"{name} is {info.duration_s:.1f} s long; the limit is "
                         f"{max_duration_s:g} s. Trim the clip and try again")
    if max_frames is not None and info.num_frames > max_frames:
        raise ValueError(f"{name} has {info.num_frames} frames; the limit is {max_frames}. "
                         "Trim the clip or lower its frame rate and try again")
    if max_side is not None and max(info.width, info.height) > max_side:
        raise ValueError(f"{name} is {info.width}×{info.height}; the largest side allowed is "
                         f"{max_side} px. Downscale the clip and try again")
    if start_s < 0 or (start_s > 0 and start_s >= info.video_s):
        raise ValueError(f"the start, {start_s:g} s, is not within {name}, which lasts {info.video_s:g} s")


def _landed(log: str, fps: float) -> bool:
    """Whether a seek logged by showinfo landed where asked: its first frame shows within a frame
    and a half of the start (its time counts from there)."""
    first = re.search(r"\bpts_time:\s*(-?[\d.]+)", log)
    return first is not None and float(first.group(1)) < 1.5 / fps


def _covering_size(width: int, height: int, cover: tuple[int, int]) -> tuple[int, int]:
    """The smallest ``width``×``height`` frame, same aspect, that covers ``cover`` = (h, w); never larger."""
    cover_height, cover_width = cover
    if cover_height < 1 or cover_width < 1:
        raise ValueError(f"cover must be a positive (height, width), got {cover!r}")
    scale = max(cover_height / height, cover_width / width)
    if scale >= 1:
        return width, height
    return max(cover_width, round(width * scale)), max(cover_height, round(height * scale))


# ---------------------------------------------------------------------------------------------
# Conforming to the model's format
# ---------------------------------------------------------------------------------------------


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
    frames = _check_frames(frames)
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


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _crop_size(src_h: int, src_w: int, height: int, width: int) -> tuple[int, int]:
    """The centered crop of a ``src_h``×``src_w`` frame with the aspect of ``height``×``width``."""
    if src_w * height > width * src_h:  # too wide: crop the sides
        return src_h, max(1, round(src_h * width / height))
    return max(1, round(src_w * height / width)), src_w  # too tall: crop top and bottom


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 of shape (frames, height, width, 3), got "
                         f"{frames.dtype} {tuple(frames.shape)}")
    if min(frames.shape[:3]) < 1:
        raise ValueError(f"frames must not be empty, got shape {tuple(frames.shape)}")
    return frames


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


def _check_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise ValueError(f"video file not found: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a video file; name its videos (for example {path / '*.mp4'})")
    if not path.is_file():
        raise ValueError(f"{path} is not a file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path.name} is empty (0 bytes); upload the video again")
    return path


def _ffmpeg_input(path: Path) -> str:
    # "file:" keeps names like "-x.mp4" or "concat:a|b" from being read as options or protocols.
    return f"file:{path.absolute()}"


def _run_ffmpeg(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    import imageio_ffmpeg  # here, so PNG strips and GIFs work where the bundled ffmpeg is absent

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin",
               "-loglevel", "level+info", *args]
    try:
        return subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        raise ValueError(f"reading the video took longer than {timeout:g} s; "
                         "use a shorter or smaller file") from error


def _first_video_stream(input_section: str) -> tuple[str, str, int, int, float, float, dict[str, str]] | None:
    """(codec, pix_fmt, width, height, fps, sample aspect, colour tags) of the first non-cover-art
    video stream, if any (the size as stored; the tags are ``_color_tags``')."""
    for line in input_section.splitlines():
        match = re.search(r"Stream #\d+:\d+.*?: Video: (.*)$", line)
        if not match or "(attached pic)" in line:
            continue
        parts = _split_top_level(match.group(1))
        codec = parts[0].split()[0] if parts and parts[0].split() else "unknown"
        pix_fmt = parts[1].split("(")[0].strip() if len(parts) > 1 else "unknown"
        size = next((m for p in parts if (m := re.match(r"(\d+)x(\d+)(?: \[SAR (\d+):(\d+))?", p))), None)
        if size is None:
            continue
        sample_aspect = 1.0  # "SAR 0:1" (or none): unknown, taken as square
        if size.group(3) and int(size.group(3)) > 0 and int(size.group(4)) > 0:
            sample_aspect = int(size.group(3)) / int(size.group(4))
        fps = 0.0
        for unit in ("fps", "tbr"):
            rate = next((m for p in parts if (m := re.fullmatch(rf"([\d.]+)(k?) {unit}", p))),
                        None)
            if rate:
                fps = float(rate.group(1)) * (1000 if rate.group(2) else 1)
                break
        color = _color_tags(parts[1] if len(parts) > 1 else "")
        return codec, pix_fmt, int(size.group(1)), int(size.group(2)), fps, sample_aspect, color
    return None


def _color_tags(pixel_format: str) -> dict[str, str]:
    """``matrix``, ``primaries`` and ``transfer`` of a stream line's pixel format part, as in
    ``yuv420p10le(tv, bt2020nc/bt2020/arib-std-b67, progressive)``: ffmpeg writes the three names
    once when they are the same (``yuv420p(tv, bt709)``); unstated or "unknown" ones are ""."""
    inside = re.search(r"\((.*)\)", pixel_format)
    for item in inside.group(1).split(",") if inside else []:
        names = item.strip().split("/")
        if len(names) == 1 and not re.fullmatch(r"(?:bt|smpte|gamma)[\w-]*", names[0]):
            continue  # the range ("tv", "pc"), the field order, the chroma location
        if len(names) in (1, 3):
            names = [name if name != "unknown" else "" for name in names * (3 // len(names))]
            return dict(zip(("matrix", "primaries", "transfer"), names))
    return {}


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses or brackets."""
    parts, depth, current = [], 0, []
    for char in text:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return parts


def _error_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if _ERROR_LINE.match(line)]


def _strip_prefix(line: str) -> str:
    """The message of an ffmpeg log line, without its '[component @ 0x…] [level]' tags."""
    return re.sub(r"^(?:\[[^\]]*\]\s*)+", "", line).strip()


def _first_error(log: str) -> str:
    errors = _error_lines(log)
    # The last line is usually a generic summary; the first one names the cause.
    return _strip_prefix(errors[0]) if errors else ""


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
