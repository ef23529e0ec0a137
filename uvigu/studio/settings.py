"""Limits and locations of a studio deployment, fixed for the life of the process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
