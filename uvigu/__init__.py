"""Uni-ViGU: one diffusion transformer that generates video from text and describes video in text.

The public names are imported lazily so ``import uvigu`` stays cheap; diffusers' loader also finds
the pipeline's component classes here by name.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "UniViGUPipeline": "uvigu.pipeline",
    "Cancelled": "uvigu.pipeline_output",
    "VideoResult": "uvigu.pipeline_output",
    "Candidate": "uvigu.pipeline_output",
    "CaptionResult": "uvigu.pipeline_output",
    "TrajectoryStep": "uvigu.pipeline_output",
    "PipelineStep": "uvigu.pipeline_output",
    "UniViGUTransformer3DModel": "uvigu.models.transformer",
    "PixelCodec": "uvigu.models.codec",
    "VideoAutoencoder": "uvigu.models.autoencoder",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'uvigu' has no attribute {name!r}")
