"""A session as one zip file: what *Export* writes and *Import* reads back.

An export holds ``takes.json`` (every field of each :class:`Take`, in session order) and, per take,
its clip as ``take-<seq>-<id>.mp4`` (H.264, to watch anywhere) and its frames as
``take-<seq>-<id>.npy`` — exactly what the model made, so an imported take is edited from the same
frames as the original. Exports made before the frames were added carry only the clips; their takes
are read back from the MP4 (see :class:`ArchivedTake`).

Reading trusts nothing in the file: only the members ``takes.json`` names are read, never
extracted by name; sizes are checked before anything is decompressed; every record is checked
field by field, and a bad one refuses the whole file with a ``ValueError`` saying what is wrong.
"""

from __future__ import annotations

import io
import json
import math
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from uvigu.studio.store import MODES, Take

FORMAT = 2  # 1: clips only (before the frames were added); 2: clips and frames
INDEX = "takes.json"
MAX_INDEX_BYTES = 16 * 2**20
MAX_CAPTION_CHARS = 4000  # the model's caption: a few hundred characters in practice
MAX_LIST_ITEMS = 256  # unknown words, notes
MAX_FRAMES, MAX_SIDE = 1024, 4096  # a take's frames, checked before they are loaded
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


@dataclass(frozen=True)
class ArchiveLimits:
    """What one import may hold; a file over any of them is refused before it is unpacked."""

    max_bytes: int  # the zip file, and everything it holds once decompressed
    max_takes: int
    max_prompt_chars: int
    max_critique_chars: int
    max_seed: int


@dataclass(frozen=True)
class ArchivedTake:
    """One take of an export: its record (original id and parent id) and what shows it.
    ``frames`` are the take's exact frames, or ``None`` in an export without them, where
    ``clip`` (the MP4's bytes) is all there is."""

    take: Take
    frames: np.ndarray | None
    clip: bytes | None


def write_archive(target: Path, takes: Sequence[Take], files: Callable[[Take, str], Path], fps: int) -> None:
    """Write the takes, with ``files(take, "clip.mp4" | "frames.npy")``, as a zip at ``target``."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        records = []
        for take in takes:
            stem = f"take-{take.seq:03d}-{take.id}"
            archive.write(files(take, "clip.mp4"), f"{stem}.mp4")
            archive.write(files(take, "frames.npy"), f"{stem}.npy")
            records.append({**take.to_json(), "clip": f"{stem}.mp4", "frames": f"{stem}.npy"})
        meta = {"format": FORMAT, "fps": fps, "exported": time.time(), "takes": records}
        archive.writestr(INDEX, json.dumps(meta, indent=2))


def read_archive(path: str | Path, limits: ArchiveLimits) -> list[ArchivedTake]:
    """The takes of an export, checked, in their order in the session."""
    path = Path(path)
    if not path.is_file():
        raise ValueError("The uploaded file could not be found; upload it again.")
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise ValueError(f"The file is {size / 2**20:.1f} MB; the limit is {limits.max_bytes / 2**20:.0f} MB.")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"The file {path.name} is not a zip file; choose a session export (.zip) made by Export.")
    try:
        with zipfile.ZipFile(path) as archive:
            return _read(archive, path.name, limits)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as error:
        raise ValueError(f"The file {path.name} could not be read as a zip file ({error}).") from None
    except (NotImplementedError, RuntimeError) as error:  # a compression method or encryption zipfile lacks
        raise ValueError(f"The file {path.name} could not be unpacked ({error}); export the session again.") from None


def _read(archive: zipfile.ZipFile, name: str, limits: ArchiveLimits) -> list[ArchivedTake]:
    members = {info.filename: info for info in archive.infolist()}
    if INDEX not in members:
        raise ValueError(f"The file {name} is not a session export: it has no {INDEX}.")
    total = members[INDEX].file_size
    if total > MAX_INDEX_BYTES:
        raise ValueError(f"In {name}, {INDEX} is too large to be a session export.")
    try:
        meta = json.loads(archive.read(INDEX))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"In {name}, {INDEX} is not valid JSON ({error}).") from None
    records = meta.get("takes") if isinstance(meta, dict) else None
    if not isinstance(records, list) or not records:
        raise ValueError(f"In {name}, {INDEX} lists no takes.")
    if len(records) > limits.max_takes:
        raise ValueError(
            f"The file {name} holds {len(records)} takes; this session has room for {limits.max_takes} more. "
            "Import it into a new session."
        )

    checked: list[tuple[Take, str, str | None]] = []
    ids: set[str] = set()
    for number, record in enumerate(records, 1):
        where = f"In {name}, take {number} of {len(records)}"
        take, clip, frames = _check_record(record, limits, where)
        if take.id in ids:
            raise ValueError(f"{where}: the id {take.id!r} appears twice.")
        ids.add(take.id)
        for member in (clip, frames):
            if member is None:
                continue
            if member not in members:
                raise ValueError(f"{where}: {member} is missing from the file.")
            total += members[member].file_size
        checked.append((take, clip, frames))
    if total > limits.max_bytes:
        raise ValueError(
            f"The file {name} unpacks to {total / 2**20:.0f} MB; the limit is {limits.max_bytes / 2**20:.0f} MB."
        )

    out = []
    for take, clip, frames in sorted(checked, key=lambda item: item[0].seq):
        if frames is not None:
            out.append(ArchivedTake(take, _load_frames(archive.read(frames), f"In {name}, {frames}"), None))
        else:
            out.append(ArchivedTake(take, None, archive.read(clip)))
    return out


def _check_record(record: Any, limits: ArchiveLimits, where: str) -> tuple[Take, str, str | None]:
    """A record of ``takes.json`` → (take, clip member, frames member or None)."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: not a take record.")

    def field(key: str, kinds: type | tuple[type, ...], check: Callable[[Any], bool] = lambda v: True,
              what: str = "", default: Any = ...) -> Any:
        if key not in record:
            if default is ...:
                raise ValueError(f"{where}: {key} is missing.")
            return default
        value = record[key]
        is_bool = isinstance(value, bool)  # JSON true/false, which Python counts as a number
        if not isinstance(value, kinds) or is_bool or not check(value):
            raise ValueError(f"{where}: {key} must be {what or kinds.__name__}, got {value!r:.80}.")
        return value

    def text(key: str, limit: int, default: Any = ...) -> str:
        return field(key, str, lambda v: len(v) <= limit, f"text of at most {limit} characters", default)

    def words(key: str) -> tuple[str, ...]:
        value = field(key, list, lambda v: len(v) <= MAX_LIST_ITEMS and all(isinstance(w, str) for w in v),
                      f"a list of at most {MAX_LIST_ITEMS} texts", [])
        return tuple(value)

    number = (int, float)
    member = lambda v: v.startswith("take-") and "/" not in v and "\\" not in v  # noqa: E731
    take = Take(
        id=field("id", str, lambda v: 0 < len(v) <= 64, "a take id"),
        seq=field("seq", int, lambda v: v >= 1, "a positive whole number"),
        parent_id=field("parent_id", (str, type(None)), lambda v: v is None or len(v) <= 64, "a take id or null",
                        None),
        mode=field("mode", str, lambda v: v in MODES, f"one of {', '.join(MODES)}"),
        prompt=text("prompt", limits.max_prompt_chars),
        caption=text("caption", MAX_CAPTION_CHARS),
        critique=text("critique", limits.max_critique_chars, ""),
        seed=field("seed", int, lambda v: 0 <= v <= limits.max_seed, f"a whole number from 0 to {limits.max_seed}"),
        settings=field("settings", dict, _is_settings, "a table of settings (names and numbers)", {}),
        unknown_words=words("unknown_words"),
        notes=words("notes"),
        timings=field("timings", dict, lambda v: all(isinstance(k, str) and _is_number(s) for k, s in v.items()),
                      "a table of seconds", {}),
        created=float(field("created", number, _finite, "a time", 0.0)),
    )
    clip = field("clip", str, member, "a clip of the file")
    frames = field("frames", (str, type(None)), lambda v: v is None or member(v), "frames of the file", None)
    return take, clip, frames


def _load_frames(data: bytes, where: str) -> np.ndarray:
    """A take's frames from ``.npy`` bytes: uint8 (f, h, w, 3) within the limits, never pickled objects."""
    try:
        stream = io.BytesIO(data)
        version = np.lib.format.read_magic(stream)
        if version not in _HEADER_READERS:
            raise ValueError(f"unknown .npy version {version}")
        shape, _, dtype = _HEADER_READERS[version](stream)  # the header alone, to check the size first
        if dtype != np.uint8 or len(shape) != 4 or shape[3] != 3:
            raise ValueError(f"frames must be uint8 (frames, height, width, 3), got {dtype} {shape}")
        if not (1 <= shape[0] <= MAX_FRAMES and 1 <= shape[1] <= MAX_SIDE and 1 <= shape[2] <= MAX_SIDE):
            raise ValueError(f"{shape[0]} frames of {shape[2]}×{shape[1]} is outside the limits")
        frames = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, EOFError, OSError) as error:
        raise ValueError(f"{where} is not a take's frames ({error}).") from None
    return np.ascontiguousarray(frames)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and _finite(value)


def _finite(value: Any) -> bool:
    return math.isfinite(value)


def _is_settings(value: dict) -> bool:
    return len(value) <= MAX_LIST_ITEMS and all(
        isinstance(k, str) and (isinstance(v, bool) or isinstance(v, str) and len(v) <= 200 or _is_number(v))
        for k, v in value.items()
    )
