"""Reading video files: probing a file's first video stream, and decoding it (HDR tone-mapped,
wide-gamut colours converted, non-square pixels stretched, shrunk to cover a size). Every
problem with an input file is a ``ValueError`` a user can act on."""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .ffmpeg import (
    check_file,
    error_lines,
    ffmpeg_input,
    first_error,
    first_video_stream,
    run_ffmpeg,
    strip_prefix,
)

logger = logging.getLogger(__name__)

_PROBE_TIMEOUT_S = 60.0
_DECODE_TIMEOUT_S = 600.0
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


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Describe the first video stream of ``path`` (codec, size, fps, frame count, duration).

    Frames are counted by demuxing the whole file without decoding (fast). Raises
    ``ValueError`` for a missing, empty, non-video, corrupt or truncated file.
    """
    path = check_file(path)
    # Stream copy reads every packet without the cost of decoding: it counts frames, surfaces
    # truncation ("partial file") and, through the framecrc muxer, lists each frame's time.
    result = run_ffmpeg(["-i", ffmpeg_input(path), "-map", "0:V:0", "-c", "copy",
                          "-f", "framecrc", "-"], timeout=_PROBE_TIMEOUT_S)
    log = result.stderr.decode("utf-8", errors="replace")
    input_section = re.split(r"^\[info\] (?:Stream mapping:|Output #0)", log, maxsplit=1,
                             flags=re.MULTILINE)[0]
    stream = first_video_stream(input_section)
    if stream is None:
        if not re.search(r"^\[info\] Input #0", input_section, flags=re.MULTILINE):
            raise ValueError(f"{path.name} is not a video file ffmpeg can read "
                             f"({first_error(log) or 'unknown format'}); "
                             "use an MP4, WebM, MOV, AVI, MKV or GIF file")
        raise ValueError(f"{path.name} has no video stream (audio only or an image?); "
                         "use a video file")
    if result.returncode != 0:
        raise ValueError(f"{path.name} could not be read: {first_error(log) or 'ffmpeg failed'}")
    # Errors logged before the input's description come from the few frames ffmpeg decodes to
    # identify the streams: a stream cut anywhere (a TV recording, a segment of a longer one)
    # starts with frames whose references it lacks, harmlessly, for the decoder skips to its first
    # keyframe, and so does this count. Truncation and corruption show while the packets are copied.
    errors = error_lines(re.split(r"^\[info\] Input #0", log, maxsplit=1, flags=re.MULTILINE)[-1])
    if errors:
        raise ValueError(f"{path.name} is corrupt or truncated ({strip_prefix(errors[-1])}); "
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
        source = ["-i", ffmpeg_input(Path(path)), "-map", "0:V:0"]
        args = where + source if seek == "input" else source + where
        if first_s is not None:
            args += ["-t", f"{first_s:.6f}"]
        chain = filters + (["showinfo"] if start_s > 0 and seek == "input" else [])
        if chain:
            args += ["-vf", ",".join(chain)]
        # passthrough: one output frame per filtered frame, no further frame-rate conversion by ffmpeg.
        args += ["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
        result = run_ffmpeg(args, timeout=_DECODE_TIMEOUT_S)
        return result, result.stderr.decode("utf-8", errors="replace")

    result, log = decode("input")
    if start_s > 0 and result.returncode == 0 and not _landed(log, info.fps):
        # Some containers (MPEG-TS among them) have no index to seek by, and a seek can land past
        # start_s or nowhere; then read from the file's start, which is slower but exact.
        logger.info("%s: seeking to %.3f s landed elsewhere; decoding from the start up to it", name, start_s)
        result, log = decode("output")
    count, remainder = divmod(len(result.stdout), frame_bytes)
    if result.returncode != 0 or remainder:
        raise ValueError(f"{name} could not be decoded: {first_error(log) or 'ffmpeg failed'}")
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
        detail = first_error(log)
        raise ValueError(f"{name} is corrupt or truncated: only {count} of {expected} frames "
                         f"decode{f' ({detail})' if detail else ''}; re-export the file")
    for line in error_lines(log):
        logger.warning("%s: %s", name, strip_prefix(line))
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
        listing = run_ffmpeg(["-filters"], timeout=_PROBE_TIMEOUT_S).stdout.decode()
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
