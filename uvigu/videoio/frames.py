"""The frames every function of `uvigu.videoio` takes: ``uint8`` arrays (f, h, w, 3), RGB."""

from __future__ import annotations

import numpy as np


def check_frames(frames: np.ndarray) -> np.ndarray:
    """``frames`` as an array, checked: a ``ValueError`` naming its dtype and shape when it is not
    uint8 (f, h, w, 3), or when it has no frame or no pixel."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 of shape (frames, height, width, 3), got "
                         f"{frames.dtype} {tuple(frames.shape)}")
    if min(frames.shape[:3]) < 1:
        raise ValueError(f"frames must not be empty, got shape {tuple(frames.shape)}")
    return frames
