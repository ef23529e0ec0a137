"""Running the ffmpeg binary that ``imageio-ffmpeg`` ships, and reading what it prints: its log's
errors and the streams it lists."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

# Only ffmpeg log lines tagged with these levels (by `-loglevel level+…`) count as problems.
_ERROR_LINE = re.compile(r"^(?:\[[^\]]* @ 0x[0-9a-f]+\] )?\[(?:error|fatal|panic)\]")


def check_file(path: str | os.PathLike) -> Path:
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


def ffmpeg_input(path: Path) -> str:
    # "file:" keeps names like "-x.mp4" or "concat:a|b" from being read as options or protocols.
    return f"file:{path.absolute()}"


def run_ffmpeg(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    import imageio_ffmpeg  # here, so PNG strips and GIFs work where the bundled ffmpeg is absent

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin",
               "-loglevel", "level+info", *args]
    try:
        return subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        raise ValueError(f"reading the video took longer than {timeout:g} s; "
                         "use a shorter or smaller file") from error


def first_video_stream(input_section: str) -> tuple[str, str, int, int, float, float, dict[str, str]] | None:
    """(codec, pix_fmt, width, height, fps, sample aspect, colour tags) of the first non-cover-art
    video stream, if any (the size as stored; the tags are ``color_tags``')."""
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
        color = color_tags(parts[1] if len(parts) > 1 else "")
        return codec, pix_fmt, int(size.group(1)), int(size.group(2)), fps, sample_aspect, color
    return None


def color_tags(pixel_format: str) -> dict[str, str]:
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


def error_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if _ERROR_LINE.match(line)]


def strip_prefix(line: str) -> str:
    """The message of an ffmpeg log line, without its '[component @ 0x…] [level]' tags."""
    return re.sub(r"^(?:\[[^\]]*\]\s*)+", "", line).strip()


def first_error(log: str) -> str:
    errors = error_lines(log)
    # The last line is usually a generic summary; the first one names the cause.
    return strip_prefix(errors[0]) if errors else ""
