"""Rectified flow for video latents (continuous flow matching, Wan's convention).

x_σ = (1 − σ)·x + σ·ε, target velocity v = ε − x; Euler steps x ← x + (σ' − σ)·v̂ walk from σ = 1 to 0.

Tensor vocabulary: b batch, c channels, f frames, h/w height and width; ``x`` clean latents
(b, c, f, h, w), ``noise`` ε of the same shape, ``sigma`` (b,), ``x_t`` the noisy latents,
``v_pred`` / ``v_target`` velocities.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from .sigma import schedule_start_index


def _expand(sigma: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    sigma = torch.as_tensor(sigma, dtype=like.dtype, device=like.device)
    return sigma.reshape(-1, *([1] * (like.ndim - 1)))


def interpolate(x: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """x_σ = (1 − σ)·x + σ·ε for x, ε (b, ...) and σ (b,)."""
    s = _expand(sigma, x)
    return (1 - s) * x + s * noise


def velocity_target(x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The straight-path velocity ε − x (independent of σ)."""
    return noise - x


def predict_clean(x_t: torch.Tensor, v_pred: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The clean estimate x̂ = x_σ − σ·v̂ (used for previews and the trajectory)."""
    return x_t - _expand(sigma, x_t) * v_pred


def euler_step(x_t: torch.Tensor, v_pred: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
    """One Euler step of the flow ODE from σ to σ' (σ' < σ): x + (σ' − σ)·v̂."""
    return (x_t.float() + (sigma_next - sigma) * v_pred.float()).to(x_t.dtype)


def renoise_step(x_t: torch.Tensor, v_pred: torch.Tensor, sigma: float, sigma_next: float,
                 fresh: torch.Tensor, share: float) -> torch.Tensor:
    """A stochastic step from σ to σ' (σ' < σ): x' = (1 − σ')·x̂ + σ'·(√(1 − η²)·ε̂ + η·z), with
    x̂ = x − σ·v̂ and ε̂ = x + (1 − σ)·v̂ the clean and noise estimates of the step's call, ``fresh``
    z a new draw of noise and ``share`` η from 0 (``euler_step``, up to rounding) to 1 (all of the
    noise drawn afresh, as diffusers' ``FlowMatchEulerDiscreteScheduler(stochastic_sampling=True)``).
    The call's estimate of the noise is what carries its mistakes from step to step; fresh noise
    lets the next calls draw those parts again (the idea of DDIM's η, Song et al., arXiv 2010.02502,
    in a parametrization of its own: η here is the share of the noise's standard deviation drawn
    afresh, and 1 is not DDPM's posterior)."""
    x, v = x_t.float(), v_pred.float()
    clean, noise = x - sigma * v, x + (1.0 - sigma) * v
    mixed = math.sqrt(1.0 - share * share) * noise + share * fresh.float()
    return ((1.0 - sigma_next) * clean + sigma_next * mixed).to(x_t.dtype)


def inference_sigmas(
    scheduler: FlowMatchEulerDiscreteScheduler, num_inference_steps: int, strength: float = 1.0
) -> torch.Tensor:
    """The σ schedule (k+1,) from the starting noise level down to exactly 0.

    The scheduler applies its shift to a linear grid (``σ' = sσ/(1+(s−1)σ)``); with ``strength`` < 1
    (edits) only the last ``int(steps · strength)`` steps are kept, as diffusers' video-to-video does.
    """
    if num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be at least 1, got {num_inference_steps}.")
    grid = np.linspace(1.0, 0.0, num_inference_steps + 1)[:-1]
    scheduler.set_timesteps(sigmas=grid)
    sigmas = scheduler.sigmas.to(torch.float32)
    return sigmas[schedule_start_index(num_inference_steps, strength) :]
