"""Limits and locations of a studio deployment, fixed for the life of the process, and the checks
of what a visitor asks against those limits (a ``ValueError`` with a message for the visitor)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from uvigu.inputs import number_in_range, whole_in_range


@dataclass(frozen=True)
class StudioSettings:
    """What a studio accepts and where it keeps its sessions.

    The defaults suit the shipped Shapes model on a small CPU machine; a GPU deployment
    mostly raises ``max_steps`` and the upload limits.
    """

    data_dir: Path  # SQLite database and every session's clips live under here
    max_prompt_chars: int = 400  # prompts and edited captions; the model's own token limit also applies
    max_critique_chars: int = 2000
    min_steps: int = 1
    max_steps: int = 100  # denoising steps per run, for every task
    max_guidance: float = 20.0  # classifier-free guidance scale, from 0 (off) up to this
    min_strength: float = 0.05  # edit strength: how far the previous clip is noised before regenerating
    max_strength: float = 1.0
    max_seed: int = 2**31 - 1  # seeds are 0..max_seed; "randomize" draws from the same range
    max_queue: int = 16  # model jobs waiting or running, across all sessions
    max_jobs_per_session: int = 4  # of those, at most this many from one session
    max_best_of: int = 4  # tries per generated take (each a clip and its caption; the best-matching one is kept)
    max_upload_bytes: int = 50 * 1024 * 1024
    # Longer uploads are refused. Only the model's clip of an upload is decoded (its length from the
    # start given), so this bounds the upload, not the work: probing ten minutes takes about 0.3 s.
    max_upload_duration_s: float = 600.0
    # Pixels; larger frames are refused rather than decoded. 8K phone video and 5K–6K screen
    # recordings fit: the decoder shrinks the model's clip of them as it decodes it.
    max_upload_side: int = 8192
    max_timeline_captions: int = 60  # captions of one timeline (Understand; a caption every 2 s: 2 minutes)
    max_takes_per_session: int = 500
    max_import_bytes: int = 500 * 1024 * 1024  # a session export to import, and what it unpacks to
    session_max_age_days: float = 30.0  # sessions unused for longer are deleted by cleanup()
    trajectory_sessions: int = 16  # sessions whose last denoising trajectory is kept in memory
    display_min_side: int = 256  # stored clips are enlarged (nearest neighbour) to at least this side

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        if self.min_steps < 1 or self.max_steps < self.min_steps:
            raise ValueError("need 1 <= min_steps <= max_steps")
        if not 0 < self.min_strength <= self.max_strength <= 1:
            raise ValueError("need 0 < min_strength <= max_strength <= 1")
        if self.max_queue < 1 or self.max_jobs_per_session < 1:
            raise ValueError("the queue must hold at least one job")
        if self.max_best_of < 1:
            raise ValueError("need max_best_of >= 1")
        if self.max_timeline_captions < 1:
            raise ValueError("need max_timeline_captions >= 1")
        if not self.session_max_age_days > 0:  # 0 or less would delete every session, those in use too
            raise ValueError(f"need session_max_age_days > 0 (inf keeps sessions forever), got {self.session_max_age_days}")

    def check_upload(self, video_path: str | os.PathLike | None) -> Path:
        """An upload's path, after checking it is there and within the size limit."""
        if video_path is None or not str(video_path).strip():
            raise ValueError("No video was uploaded; choose a video file.")
        path = Path(video_path)
        if not path.is_file():
            raise ValueError("The uploaded video could not be found; upload it again.")
        size = path.stat().st_size
        if size > self.max_upload_bytes:
            raise ValueError(
                f"The video is {size / 2**20:.1f} MB; the limit is "
                f"{self.max_upload_bytes / 2**20:.0f} MB."
            )
        return path

    def check_start(self, start_s: float | None) -> float:
        """A start time in an upload: 0 when left out, else within the upload limit."""
        return 0.0 if start_s is None else number_in_range(
            start_s, "The start", 0.0, self.max_upload_duration_s, "a time in seconds")

    def check_text(self, text: str | None, what: str) -> str:
        """A prompt or caption, stripped: refused when empty or longer than ``max_prompt_chars``."""
        text = (text or "").strip()
        if not text:
            raise ValueError(f"The {what} is empty; describe the clip you want.")
        limit = self.max_prompt_chars
        if len(text) > limit:
            raise ValueError(
                f"The {what} is {len(text)} characters long; the limit is {limit}. Shorten it."
            )
        return text

    def check_seed(self, seed: int | float | None) -> int:
        """A seed from 0 to ``max_seed`` (a float only when whole); ``None`` draws one from that range."""
        if seed is None:
            return secrets.randbelow(self.max_seed + 1)
        if isinstance(seed, float):
            if not seed.is_integer():
                raise ValueError(f"The seed must be a whole number, not {seed}.")
            seed = int(seed)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"The seed must be a whole number, not {seed!r}.")
        if not 0 <= seed <= self.max_seed:
            raise ValueError(f"The seed must be between 0 and {self.max_seed}, not {seed}.")
        return seed

    def check_steps(self, steps: int | float | None) -> int | None:
        """Denoising steps from ``min_steps`` to ``max_steps``; ``None`` (the model's) as it is."""
        if steps is None:
            return None
        return _whole_number(steps, self.min_steps, self.max_steps, "Steps")

    def check_guidance(self, guidance: float | None) -> float | None:
        """A guidance scale from 0 to ``max_guidance``; ``None`` (the model's) as it is."""
        if guidance is None:
            return None
        hi = self.max_guidance
        if not isinstance(guidance, (int, float)) or not 0 <= float(guidance) <= hi:
            raise ValueError(f"Guidance must be between 0 and {hi:g}, not {guidance}.")
        return float(guidance)

    def check_best_of(self, best_of: int | float, mode: str) -> int:
        """Tries per take, 1 to ``max_best_of``; more than one only where a caption judges them."""
        best_of = _whole_number(best_of, 1, self.max_best_of, "Tries per take")
        if best_of > 1 and mode == "joint":
            raise ValueError("Tries are judged by the model's caption of each clip, so they need the "
                             "“Generate, then caption” mode; switch to it, or set tries per take to 1.")
        return best_of

    def check_strength(self, strength: float) -> float:
        """An edit strength from ``min_strength`` to ``max_strength``."""
        lo, hi = self.min_strength, self.max_strength
        if not isinstance(strength, (int, float)) or not lo <= float(strength) <= hi:
            raise ValueError(f"Strength must be between {lo:g} and {hi:g}, not {strength}.")
        return float(strength)


def _whole_number(value: int | float, lo: int, hi: int, what: str) -> int:
    """``value`` as an int from ``lo`` to ``hi`` (a float only when whole, as number boxes send)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return whole_in_range(value, what, lo, hi)
