"""Discrete flow matching for text tokens on the mixture path (our own implementation).

Each token of x_σ is independently the clean token with probability κ(σ) = (1 − σ)ⁿ, otherwise a
draw from the source: ``[MASK]`` (masked source) or a uniform random token (uniform source, the
official Uni-ViGU default). The network predicts the posterior over clean tokens; training uses
cross entropy on the clean tokens (or the generalized-KL form of Gat et al., arXiv 2407.15595);
sampling uses the Euler jump rule of the mixture path.

Tensor vocabulary: b batch, l text tokens, V vocabulary (the text head's output size);
``x_1`` clean ids (b, l), ``x_t`` noisy ids (b, l), ``logits`` (b, l, V), ``sigma`` (b,).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

TextSource = Literal["uniform", "mask"]


def _expand(sigma: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    sigma = torch.as_tensor(sigma, dtype=torch.float32, device=like.device)
    return sigma.reshape(-1, *([1] * (like.ndim - 1))) if sigma.ndim else sigma


@dataclass(frozen=True)
class DiscreteFlow:
    """The text path: vocabulary, source distribution and κ exponent."""

    vocab_size: int  # size of the text head's output, the mask id included
    mask_token_id: int  # id of [MASK]: the masked source, never a prediction
    source: TextSource = "uniform"  # official default; "mask" is the absorbing variant
    exponent: float = 1.0  # κ(σ) = (1 − σ)^n; n = 1 is the linear schedule of the official code

    def __post_init__(self) -> None:
        if self.source not in ("uniform", "mask"):
            raise ValueError(f"text source must be 'uniform' or 'mask', got {self.source!r}.")
        if not 0 <= self.mask_token_id < self.vocab_size:
            raise ValueError(f"mask_token_id {self.mask_token_id} is outside the vocabulary of {self.vocab_size}.")
        if self.exponent <= 0:
            raise ValueError(f"the κ exponent must be positive, got {self.exponent}.")

    def kappa(self, sigma: torch.Tensor | float) -> torch.Tensor:
        """Probability κ(σ) that a token is already clean at noise level σ."""
        return (1.0 - torch.as_tensor(sigma, dtype=torch.float32)).clamp(0.0, 1.0) ** self.exponent

    def sigma_at(self, clean_fraction: float) -> float:
        """The noise level whose κ is ``clean_fraction`` (the inverse of ``kappa``)."""
        if not 0.0 <= clean_fraction <= 1.0:
            raise ValueError(f"a clean fraction is in [0, 1], got {clean_fraction}.")
        return 1.0 - clean_fraction ** (1.0 / self.exponent)

    def kappa_rate(self, sigma: torch.Tensor | float) -> torch.Tensor:
        """dκ/d(1 − σ): how fast tokens become clean as σ falls."""
        t = (1.0 - torch.as_tensor(sigma, dtype=torch.float32)).clamp(0.0, 1.0)
        return self.exponent * t ** (self.exponent - 1)

    def sample_source(
        self, shape: tuple[int, ...], *, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """Draw source tokens: all ``[MASK]``, or uniform over the vocabulary without ``[MASK]``."""
        if self.source == "mask":
            return torch.full(shape, self.mask_token_id, dtype=torch.long, device=device)
        ids = torch.randint(0, self.vocab_size - 1, shape, generator=generator, device=device)
        return ids + (ids >= self.mask_token_id).long()  # skip the mask id

    def corrupt(
        self, x_1: torch.Tensor, sigma: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Sample x_σ on the mixture path: keep each token with probability κ(σ), else a source draw."""
        keep_p = self.kappa(sigma).to(x_1.device)
        keep_p = keep_p.reshape(-1, *([1] * (x_1.ndim - 1))) if keep_p.ndim else keep_p
        u = torch.rand(x_1.shape, generator=generator, device=x_1.device)
        source = self.sample_source(tuple(x_1.shape), generator=generator, device=x_1.device)
        return torch.where(u < keep_p, x_1, source)

    def loss(
        self,
        logits: torch.Tensor,
        x_1: torch.Tensor,
        x_t: torch.Tensor,
        sigma: torch.Tensor,
        *,
        kind: Literal["ce", "gkl"] = "ce",
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-example loss (b,) averaged over tokens (``weight`` (b, l) selects or weights tokens).

        ``ce`` is cross entropy on the clean tokens; ``gkl`` is the mixture path's generalized KL,
        weighted by κ'/(1 − κ), which diverges as σ → 0 (sample σ ≥ 1e-3 for it).
        """
        logits = logits.float()
        log_p = F.log_softmax(logits, dim=-1)
        log_p_x1 = log_p.gather(-1, x_1.unsqueeze(-1)).squeeze(-1)
        if kind == "ce":
            per_token = -log_p_x1
        elif kind == "gkl":
            p_xt = log_p.exp().gather(-1, x_t.unsqueeze(-1)).squeeze(-1)
            same = (x_t == x_1).float()
            s = sigma.float().to(logits.device)
            coef = (self.kappa_rate(s) / (1.0 - self.kappa(s)).clamp_min(1e-6)).to(logits.device)
            per_token = -coef.reshape(-1, 1) * (p_xt - same + (1.0 - same) * log_p_x1)
        else:
            raise ValueError(f"text loss must be 'ce' or 'gkl', got {kind!r}.")
        if weight is None:
            return per_token.mean(dim=-1)
        weight = weight.float()
        return (per_token * weight).sum(-1) / weight.sum(-1).clamp_min(1.0)

    def posterior(self, logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """Posterior over clean tokens (b, l, V) in float64, ``[MASK]`` excluded."""
        logits = logits.double().clone()
        logits[..., self.mask_token_id] = float("-inf")
        if temperature <= 0:
            return F.one_hot(logits.argmax(-1), self.vocab_size).double()
        return F.softmax(logits / temperature, dim=-1)

    def jump_step(
        self,
        x_t: torch.Tensor,
        logits: torch.Tensor,
        sigma: float,
        sigma_next: float,
        *,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        pinned: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One Euler step of the mixture path from σ to σ' < σ.

        Draw x̂_1 from the posterior; a token that differs from x̂_1 jumps to it with probability
        (κ(σ') − κ(σ)) / (1 − κ(σ)) — the chance that a not-yet-clean token becomes clean over the
        step. At σ' = 0 every token takes its x̂_1. ``pinned`` (b, l) bool keeps those tokens as they are.
        """
        probs = self.posterior(logits, temperature)
        if generator is not None and probs.device != generator.device:
            probs = probs.to(generator.device)  # sample where the generator lives: same ids on any device
        b, l, v = probs.shape
        x_hat = torch.multinomial(probs.reshape(b * l, v), 1, generator=generator).reshape(b, l).to(x_t.device)
        if sigma_next <= 0:
            x_next = x_hat
        else:
            k, k_next = float(self.kappa(sigma)), float(self.kappa(sigma_next))
            jump_p = (k_next - k) / max(1.0 - k, 1e-12)
            u = torch.rand((b, l), generator=generator, device=probs.device).to(x_t.device)
            x_next = torch.where(u < jump_p, x_hat, x_t)
        if pinned is not None:
            x_next = torch.where(pinned, x_t, x_next)
        return x_next
