"""Small random pipelines for tests and for trying the API without the shipped checkpoint."""

from __future__ import annotations

import torch

from .data.shapes import shapes_vocabulary
from .models.presets import build_pipeline
from .models.tokenizer import END


def tiny_pipeline(seed: int = 0, preset: str = "tiny"):
    """A randomly initialised ``tiny`` pipeline (16×16 px, 4 frames) over the Shapes vocabulary
    (``preset="tiny-latent"``: the same with a tiny learned codec).

    Its outputs are noise-like; it exists to exercise code paths quickly on a CPU. The output heads,
    zero at initialisation for training, get small random weights so that outputs depend on the
    inputs (seed, prompt, clip) as a trained model's do; the text head is biased against the end
    token, so that its captions are never empty (a random head would end some at the first word).
    """
    pipe = build_pipeline(preset, shapes_vocabulary(), seed=seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for head in (pipe.transformer.proj_out, pipe.transformer.proj_out_t):
            head.weight.copy_(torch.randn(head.weight.shape, generator=generator) * 0.05)
        pipe.transformer.proj_out_t.bias[pipe.tokenizer.convert_tokens_to_ids(END)] = -20.0
    return pipe
