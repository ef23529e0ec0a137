"""A dataset over a folder of the user's own clips, described by ``metadata.jsonl``.

Layout::

    root/
      metadata.jsonl     one JSON object per line:
                         {"video": "clips/a.mp4", "prompt": "...", "caption": "..."}
      clips/a.mp4 ...

``caption`` is optional and falls back to the prompt. Every clip is decoded and conformed to
the model's format (``num_frames`` at ``fps``, ``height``×``width``) when it is read.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from uvigu.videoio import conform_video, read_video

logger = logging.getLogger(__name__)

METADATA_FILE = "metadata.jsonl"


@dataclass(frozen=True)
class VideoFolderEntry:
    """One validated metadata line: the clip's resolved path, its prompt and its caption."""

    video: Path
    prompt: str
    caption: str


class VideoFolderDataset(Dataset):
    """Clips listed in ``root/metadata.jsonl``; item = dict(frames, prompt, caption).

    ``frames`` is a uint8 numpy array (num_frames, height, width, 3). The metadata is validated
    when the dataset is built (``ValueError`` naming the line for bad JSON, a missing field, a
    missing file or a path outside ``root``); the clips themselves are decoded per item.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        num_frames: int = 16,  # frames per item (the Shapes world's clip length)
        height: int = 64,
        width: int = 64,
        fps: int = 8,  # items are resampled to this frame rate
    ) -> None:
        if num_frames < 1 or height < 1 or width < 1 or not fps > 0:
            raise ValueError(f"num_frames, height, width and fps must be positive, got "
                             f"{num_frames}, {height}, {width}, {fps}")
        self.root = Path(root)
        self.num_frames = num_frames
        self.height = height
        self.width = width
        self.fps = fps
        self.entries: list[VideoFolderEntry] = _read_metadata(self.root)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        entry = self.entries[index]
        # Decode a little more than the clip needs (one extra target frame) so that the
        # nearest-frame resampling never runs past the decoded part of a long file.
        decoded = read_video(entry.video, first_s=(self.num_frames + 1) / self.fps)
        conformed = conform_video(decoded.frames, decoded.fps, num_frames=self.num_frames,
                                  target_fps=self.fps, height=self.height, width=self.width)
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
            entries.append(_parse_record(record, where, root, real_root))
    if not entries:
        raise ValueError(f"{metadata} lists no videos")
    return entries


def _parse_record(record: dict, where: str, root: Path, real_root: Path) -> VideoFolderEntry:
    for key in ("video", "prompt"):
        if not isinstance(record.get(key), str) or not record[key].strip():
            raise ValueError(f"{where}: missing or empty field {key!r} (a non-empty string)")
    caption = record.get("caption")
    if caption is not None and not isinstance(caption, str):
        raise ValueError(f"{where}: field 'caption' must be a string")
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
    return VideoFolderEntry(video=video, prompt=prompt, caption=caption)
