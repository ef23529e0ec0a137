"""The one noise convention of the project, shared by video and text.

σ ∈ [0, 1]: σ = 1 is pure noise (or the text source), σ = 0 is clean data. The network's timestep
embedders see ``1000 · σ`` (Wan's scale). Both flows and every sampler read σ from here.

Tensor vocabulary: b batch; ``sigma`` is a float tensor of shape (b,) or a python float.
"""

from __future__ import annotations

import numpy as np
import torch

NUM_TRAIN_TIMESTEPS = 1000  # Wan's timestep scale: timestep = 1000 · σ


def sigma_to_timestep(sigma: torch.Tensor) -> torch.Tensor:
    """Map σ (b,) in [0, 1] to the timestep fed to the embedders (b,)."""
    return sigma * NUM_TRAIN_TIMESTEPS


def shift_sigma(sigma: torch.Tensor | np.ndarray | float, shift: float):
    """Wan's resolution shift σ' = sσ / (1 + (s − 1)σ); s > 1 spends more steps at high noise."""
    return shift * sigma / (1 + (shift - 1) * sigma)


def sample_training_sigma(
    batch_size: int,
    *,
    shift: float = 1.0,
    logit_normal: bool = True,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Draw training noise levels (b,) in (0, 1).

    Logit-normal sampling (SD3, arXiv 2403.03206) puts more weight on mid noise levels, where the
    velocity is hardest to predict; ``shift`` applies the same shift as inference.
    """
    if logit_normal:
        u = torch.randn(batch_size, generator=generator, device=device)
        sigma = torch.sigmoid(u)
    else:
        sigma = torch.rand(batch_size, generator=generator, device=device)
    sigma = sigma.clamp(1e-4, 1.0 - 1e-4)
    return shift_sigma(sigma, shift)


def schedule_start_index(num_inference_steps: int, strength: float) -> int:
    """Index of the first step to run when starting part-way (``strength`` in (0, 1]).

    Mirrors diffusers' img2img ``get_timesteps``: keep the last ``int(steps · strength)`` steps.
    """
    init = min(int(num_inference_steps * strength), num_inference_steps)
    return max(num_inference_steps - max(init, 1), 0)
