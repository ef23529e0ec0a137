"""A dataset over a folder of the user's own clips, described by ``metadata.jsonl``.

Layout::

    root/
      metadata.jsonl     one JSON object per line:
                         {"video": "clips/a.mp4", "prompt": "...", "caption": "..."}
      clips/a.mp4 ...

``caption`` is optional and falls back to the prompt, and a ``caption`` alone is the prompt too;
``file_name`` (the name Hugging Face's video and image folders use) may stand for ``video``, and
``text`` (the name many of their datasets give it) for ``caption``. Every clip is decoded and
conformed to the model's format (``num_frames`` at ``fps``, ``height``×``width``) when it is read:
the ``num_frames / fps`` seconds from its start, or, when the dataset has a ``seed``, from a start
drawn anew each time the clip is drawn, so that training sees the whole of a long clip.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from uvigu.videoio import VideoInfo, probe_video, read_clip, write_mp4

logger = logging.getLogger(__name__)

METADATA_FILE = "metadata.jsonl"
_PROGRESS_FROM = 100  # clips: a progress bar while checking this many or more
_PROBLEMS_SHOWN = 10  # unreadable clips listed by line in the error


@dataclass(frozen=True)
class VideoFolderEntry:
    """One validated metadata line: the clip's resolved path, its prompt and its caption."""

    video: Path
    prompt: str
    caption: str
    line: int  # its line in metadata.jsonl, for messages


class VideoFolderDataset(Dataset):
    """Clips listed in ``root/metadata.jsonl``; item = dict(frames, prompt, caption).

    ``frames`` is a uint8 numpy array (num_frames, height, width, 3). The metadata is validated
    when the dataset is built (``ValueError`` naming the line for bad JSON, a missing field, a
    missing file or a path outside ``root``), and so is every clip, by ``probe_video`` (one
    ``ValueError`` listing the lines of all that cannot be read); the frames are decoded per item,
    and a clip that fails then is a ``ValueError`` naming its line too — or, with
    ``skip_unreadable`` (the trainer's choice, so that one file gone bad does not end a long run),
    a warning naming it (once) and the item taken from the next clip that reads, in the folder's
    order (a ``ValueError`` only when none does); the clip is tried again at its next draw.

    Without a ``seed`` item ``i`` is the first ``num_frames / fps`` seconds of clip ``i``. With
    one, an item index may be any ``i >= 0``: it is clip ``i % len(self)`` in its ``i // len(self)``-th
    draw (the epoch), and its window starts at a time drawn from ``(seed, epoch, clip)``, uniform
    over the starts that fit in the clip — the same item for the same index, so a resumed run reads
    what an uninterrupted one would (``ShuffledStream.over`` makes such indices).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        num_frames: int = 16,  # frames per item (the Shapes world's clip length)
        height: int = 64,
        width: int = 64,
        fps: int = 8,  # items are resampled to this frame rate
        seed: int | None = None,  # None: every item from its clip's start; else random windows
        skip_unreadable: bool = False,  # a clip that fails to decode: warn and read the next one
    ) -> None:
        if num_frames < 1 or height < 1 or width < 1 or not fps > 0:
            raise ValueError(f"num_frames, height, width and fps must be positive, got "
                             f"{num_frames}, {height}, {width}, {fps}")
        self.root = Path(root)
        self.num_frames = num_frames
        self.height = height
        self.width = width
        self.fps = fps
        self.seed = seed
        self.skip_unreadable = skip_unreadable
        self._warned: set[int] = set()  # clips that failed and were warned about, in this process
        self.entries: list[VideoFolderEntry] = _read_metadata(self.root)
        self.infos: list[VideoInfo] = _probe_clips(self.entries, self.root / METADATA_FILE)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def draws_differ(self) -> bool:
        """Whether one clip's items differ from draw to draw (random windows: with a seed)."""
        return self.seed is not None

    def check_text_lengths(self, count_tokens: Callable[[str], int], max_tokens: int) -> None:
        """Refuse, before training starts, prompts and captions longer than ``max_tokens`` (as
        ``count_tokens`` counts them): one ``ValueError`` lists each by its line."""
        problems = [f"  line {entry.line}: the {name} is {n} tokens long"
                    for entry in self.entries
                    for name, text in (("prompt", entry.prompt), ("caption", entry.caption))
                    if (n := count_tokens(text)) > max_tokens and (name == "prompt" or entry.caption != entry.prompt)]
        if problems:
            texts = "1 text is" if len(problems) == 1 else f"{len(problems)} texts are"
            raise ValueError(_listed(f"{self.root / METADATA_FILE}: {texts} longer than the {max_tokens} tokens the "
                                     "model's text stream holds; shorten them:", problems))

    @property
    def short_clips(self) -> int:
        """Clips shorter than an item (by more than half a frame): read, each is filled out by holding
        its last frame."""
        item_s = self.num_frames / self.fps
        return sum(info.video_s < item_s - 0.5 / self.fps for info in self.infos)

    def describe(self) -> str:
        """One line for the training log: how much footage, and what an item takes from it."""
        lengths = [info.video_s for info in self.infos]
        window = f"{self.num_frames} frames at {self.fps:g} fps ({self.num_frames / self.fps:g} s)"
        shortest, longest = f"{min(lengths):.1f}", f"{max(lengths):.1f}"
        each = shortest if shortest == longest else f"{shortest}–{longest}"
        kinds = [(sum(info.hdr is not None for info in self.infos), "HDR (tone-mapped)"),
                 (sum(info.hdr is None and info.primaries == "bt2020" for info in self.infos),
                  "in BT.2020's wide gamut (converted)"),
                 (sum(info.variable_rate for info in self.infos), "with frames not evenly spaced (read by time)"),
                 (sum(info.stored_size is not None for info in self.infos), "with non-square pixels (stretched)"),
                 (self.short_clips, "shorter than an item (the last frame held to fill it)")]
        read = "; ".join(f"{count} {what}" for count, what in kinds if count)
        return (f"{len(lengths)} clip{'s' if len(lengths) != 1 else ''}, {sum(lengths) / 60:.1f} min of footage "
                f"({each} s each{f'; {read}' if read else ''}); an item is {window} from "
                f"{'a random start' if self.draws_differ else 'its start'}, {self.height}×{self.width}")

    def __getitem__(self, index: int) -> dict[str, Any]:
        epoch, clip = divmod(index, len(self.entries))
        if epoch and self.seed is None:
            raise IndexError(f"index {index} is out of range for {len(self.entries)} clips")
        if not self.skip_unreadable:
            return self._read(epoch, clip)
        first_error, n = None, len(self.entries)
        for other in (c % n for c in range(clip, clip + n)):  # the drawn clip, then the next ones
            try:
                return self._read(epoch, other)
            except ValueError as error:
                first_error = first_error or error
                if other not in self._warned:
                    self._warned.add(other)
                    logger.warning("%s; skipped: a draw of it that fails reads the next clip instead "
                                   "(said once per clip)", error)
        raise ValueError(f"no clip of {self.root} can be read any more; the first: {first_error}") from first_error

    def _read(self, epoch: int, clip: int) -> dict[str, Any]:
        """Clip ``clip``'s item in draw ``epoch``; a ``ValueError`` naming its line if it fails."""
        entry, info = self.entries[clip], self.infos[clip]
        try:
            room_s = info.video_s - self.num_frames / self.fps  # how late a window may start
            start_s = 0.0
            if self.seed is not None and room_s > 0:
                start_s = room_s * np.random.default_rng([self.seed, epoch, clip]).random()
            conformed = read_clip(entry.video, num_frames=self.num_frames, fps=self.fps, height=self.height,
                                  width=self.width, start_s=start_s, info=info)
        except ValueError as error:
            raise ValueError(f"{self.root / METADATA_FILE}, line {entry.line}: {error}") from error
        if conformed.notes:
            logger.debug("%s: %s", entry.video, "; ".join(conformed.notes))
        return {"frames": conformed.frames, "prompt": entry.prompt, "caption": entry.caption}


def _read_metadata(root: Path) -> list[VideoFolderEntry]:
    if not root.is_dir():
        raise ValueError(f"dataset folder not found: {root}")
    metadata = root / METADATA_FILE
    if not metadata.is_file():
        raise ValueError(f"{root} has no {METADATA_FILE}; add one JSON object per line like "
                         '{"video": "clip.mp4", "prompt": "...", "caption": "..."}')
    real_root = root.resolve()
    entries = []
    with metadata.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{metadata}, line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{where}: not valid JSON ({error.msg})") from error
            if not isinstance(record, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
            entries.append(_parse_record(record, where, number, root, real_root))
    if not entries:
        raise ValueError(f"{metadata} lists no videos")
    return entries


def _probe_clips(entries: list[VideoFolderEntry], metadata: Path) -> list[VideoInfo]:
    """Every clip's ``probe_video``, found before training starts; one error lists every clip
    that cannot be read, by its line (the probes run in threads: each is an ffmpeg process)."""
    from tqdm.auto import tqdm

    def probe(entry: VideoFolderEntry) -> VideoInfo | str:
        try:
            return probe_video(entry.video)
        except ValueError as error:
            return str(error)

    with ThreadPoolExecutor(max_workers=min(8, 2 * (os.cpu_count() or 1))) as pool:
        results = list(tqdm(pool.map(probe, entries), total=len(entries), desc="checking clips", unit="clip",
                            disable=len(entries) < _PROGRESS_FROM))
    problems = [f"  line {entry.line}: {result}" for entry, result in zip(entries, results) if isinstance(result, str)]
    if problems:
        raise ValueError(_listed(f"{metadata}: {len(problems)} of {len(entries)} clips cannot be read; fix or remove "
                                 "their lines:", problems))
    return results


def write_video_folder(
    root: str | os.PathLike, clips: Iterable[tuple[str, np.ndarray, str, str]], *, fps: int, scale: int = 1,
) -> Path:
    """Write ``clips`` — (name, frames uint8 (f, h, w, 3), prompt, caption) — as a folder this
    dataset reads: ``root/clips/<name>.mp4`` (H.264, enlarged ``scale`` times) and
    ``root/metadata.jsonl``, a line per clip in order. ``root`` must be new or empty; the metadata
    is written last, so a folder whose writing stopped part-way is not taken for a whole one."""
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise ValueError(f"{root} already exists and is not empty; choose a new folder.")
    lines = []
    for name, frames, prompt, caption in clips:
        path = write_mp4(frames, root / "clips" / f"{name}.mp4", fps=fps, scale=scale)
        lines.append(json.dumps({"video": path.relative_to(root).as_posix(), "prompt": prompt, "caption": caption}))
    (root / METADATA_FILE).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return root


def _listed(headline: str, problems: list[str]) -> str:
    """``headline`` and the first problems, a line each (and how many more)."""
    more = [f"  and {len(problems) - _PROBLEMS_SHOWN} more"] if len(problems) > _PROBLEMS_SHOWN else []
    return "\n".join([headline, *problems[:_PROBLEMS_SHOWN], *more])


def _parse_record(record: dict, where: str, line: int, root: Path, real_root: Path) -> VideoFolderEntry:
    if "video" not in record and "file_name" in record:
        record = {**record, "video": record["file_name"]}
    if "caption" not in record and "text" in record:  # the name many Hugging Face datasets give it
        record = {**record, "caption": record["text"]}
    caption = record.get("caption")
    if caption is not None and not isinstance(caption, str):
        raise ValueError(f"{where}: field 'caption' must be a string")
    if not (isinstance(record.get("prompt"), str) and record["prompt"].strip()) and caption and caption.strip():
        record = {**record, "prompt": caption}  # a caption alone is the prompt too
    for key, what in (("video", "the clip's path; 'file_name' works too"),
                      ("prompt", "a non-empty string; a 'caption' or 'text' alone serves as both")):
        if not isinstance(record.get(key), str) or not record[key].strip():
            raise ValueError(f"{where}: missing or empty field {key!r} ({what})")
    relative = record["video"]
    if Path(relative).is_absolute():
        raise ValueError(f"{where}: video path {relative!r} must be relative to {root}")
    # resolve() follows symlinks too, so a link pointing out of the folder is refused as well.
    video = (root / relative).resolve()
    if not video.is_relative_to(real_root):
        raise ValueError(f"{where}: video path {relative!r} points outside {root}")
    if not video.is_file():
        raise ValueError(f"{where}: video file not found: {relative}")
    prompt = record["prompt"].strip()
    caption = caption.strip() if caption and caption.strip() else prompt
    return VideoFolderEntry(video=video, prompt=prompt, caption=caption, line=line)
