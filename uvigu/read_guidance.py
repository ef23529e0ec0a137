"""Read guidance (generate's ``read_guidance``): the model's own reading of a step's clean
estimate, as a caption would read it, steers the clip towards the prompt's words."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .inputs import number_in_range
from .models.transformer import UniViGUTransformer3DModel

# Read guidance (generate's read_guidance) acts from the noise level READ_GUIDANCE_FROM (the model's
# read_guidance_from unless a call says) up to READ_GUIDANCE_TOP: where which way things move is
# decided (a best-of take is judged half-way, docs/EVAL.md) and the clean estimate is a clip the text
# stream can read. Steering on down to 0.4, where shapes are drawn, cost as many shapes as it gained
# motions (docs/EVAL.md, notes).
READ_GUIDANCE_FROM = 0.7
READ_GUIDANCE_TOP = 0.95


def check_read_from(level: float) -> float:
    """The noise level read guidance steers from: a number from 0 up to, not including, READ_GUIDANCE_TOP."""
    return number_in_range(level, "read_guidance_from", 0.0, READ_GUIDANCE_TOP, "a noise level", below=True)


@dataclass
class ReadGuidance:
    """How strongly the text stream reads a prompt's words in a step's clean estimate, and the
    direction that strengthens it: generate's ``read_guidance``.

    The reading is the caption task's call — the clean estimate as a clean clip, the text all
    ``source`` tokens, no prompt (``empty``) — and its score is the log of each wanted word's
    expected count over the text's positions, summed, less the same for the unwanted words."""

    transformer: UniViGUTransformer3DModel
    dtype: torch.dtype
    clean_estimate: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    source: torch.Tensor  # (1, l) text source tokens
    empty: torch.Tensor  # (1, p, d) the empty prompt's encoding
    wanted: list[int]
    unwanted: list[int]

    def score(self, x: torch.Tensor, ids: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The reading's score of the clean estimate from latents ``x`` (1, c, f, h, w) at ``sigma``
        (1,), with the prompt's text ids (1, l) and encoding ``context`` (1, p, d) as the condition."""
        clean = self.clean_estimate(x, ids, sigma, context)
        zero = torch.zeros(1, device=clean.device)
        logits = self.transformer(clean.to(self.dtype), self.source, zero, zero + 1, self.empty, None).text_logits
        counts = torch.logsumexp(torch.log_softmax(logits[0].float(), dim=-1), dim=0)
        return counts[self.wanted].sum() - counts[self.unwanted].sum()

    def gradient(self, x: torch.Tensor, ids: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """d score / d x, scaled to unit RMS (float32, x's shape)."""
        with torch.enable_grad():
            x = x.detach().float().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.score(x, ids, sigma, context), x)
        return grad / grad.pow(2).mean().sqrt().clamp_min(1e-12)
