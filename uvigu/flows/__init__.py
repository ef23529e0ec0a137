"""Flows for both modalities under one σ convention (σ = 1 noise, σ = 0 data)."""

from .sampler import (
    REREAD_PERIOD, VERIFY_DRAWS, VERIFY_MAX_TEXTS, SamplerResult, SamplerStep, flow_edit, reread, sample, verify,
)
from .sigma import NUM_TRAIN_TIMESTEPS, sample_training_sigma, schedule_start_index, shift_sigma, sigma_to_timestep
from .text import DiscreteFlow
from .video import euler_step, inference_sigmas, interpolate, predict_clean, velocity_target

__all__ = [
    "NUM_TRAIN_TIMESTEPS",
    "REREAD_PERIOD",
    "DiscreteFlow",
    "SamplerResult",
    "SamplerStep",
    "VERIFY_DRAWS",
    "VERIFY_MAX_TEXTS",
    "euler_step",
    "flow_edit",
    "inference_sigmas",
    "interpolate",
    "predict_clean",
    "reread",
    "sample",
    "sample_training_sigma",
    "schedule_start_index",
    "shift_sigma",
    "sigma_to_timestep",
    "velocity_target",
    "verify",
]
