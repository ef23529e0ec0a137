"""Small random pipelines for tests and for trying the API without the shipped checkpoint."""

from __future__ import annotations

from .data.shapes import shapes_vocabulary
from .models.presets import build_pipeline


def tiny_pipeline(seed: int = 0):
    """A randomly initialised ``tiny`` pipeline (16×16 px, 4 frames) over the Shapes vocabulary.

    Its outputs are noise-like; it exists to exercise code paths quickly on a CPU.
    """
    return build_pipeline("tiny", shapes_vocabulary(), seed=seed)
