"""Flows for both modalities under one σ convention (σ = 1 noise, σ = 0 data)."""

from .sampler import (
    RENOISE_FROM, REREAD_PERIOD, VERIFY_DRAWS, VERIFY_MAX_TEXTS, Renoise, SamplerResult, SamplerStep,
    check_renoise_from, flow_edit, reread, sample, verify,
)
from .sigma import NUM_TRAIN_TIMESTEPS, sample_training_sigma, schedule_start_index, shift_sigma, sigma_to_timestep
from .text import DiscreteFlow
from .video import euler_step, inference_sigmas, interpolate, predict_clean, renoise_step, velocity_target

__all__ = [
    "NUM_TRAIN_TIMESTEPS",
    "RENOISE_FROM",
    "REREAD_PERIOD",
    "DiscreteFlow",
    "Renoise",
    "SamplerResult",
    "SamplerStep",
    "VERIFY_DRAWS",
    "VERIFY_MAX_TEXTS",
    "check_renoise_from",
    "euler_step",
    "flow_edit",
    "inference_sigmas",
    "interpolate",
    "predict_clean",
    "renoise_step",
    "reread",
    "sample",
    "sample_training_sigma",
    "schedule_start_index",
    "shift_sigma",
    "sigma_to_timestep",
    "velocity_target",
    "verify",
]
