"""A training checkpoint as a pipeline: its EMA weights, ready to generate, caption and edit.

A run writes its pipeline (``<out>/pipeline``) only when it ends; its checkpoints
(``<out>/checkpoints/step_<step>/``, ``uvigu.training.checkpoint``) hold everything needed to
continue it. ``load_checkpoint_pipeline`` builds the pipeline a run would have saved had it ended
at a checkpoint's step — the same EMA weights, vocabulary and model settings — so an intermediate
model can be tried or measured without stopping the run; ``export_checkpoint`` writes it as a
pipeline folder (the shipped layout), with the run's config beside it.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_model

from ..models.autoencoder import VideoAutoencoder
from ..models.presets import build_pipeline
from .checkpoint import MODULE_NAMES, read_state
from .codec_stage import CODEC_DIR
from .config import TrainConfig

STATE_FILE = "state.json"


def is_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a training checkpoint folder (it holds ``state.json``)."""
    return (Path(path) / STATE_FILE).is_file()


def load_checkpoint_pipeline(path: str | Path):
    """The pipeline of the checkpoint at ``path`` with its EMA weights, in eval mode, on the CPU.

    A preset with a learned codec takes the run's codec from ``<out>/codec`` (written when the
    codec stage ends, before the first checkpoint).
    """
    path = Path(path)
    if not is_checkpoint(path):
        raise ValueError(f"{path} is not a training checkpoint ({STATE_FILE} is missing); pass a "
                         "<run>/checkpoints/step_<step> folder.")
    state = read_state(path)
    config = TrainConfig.from_dict(state.config)
    changes = {} if config.position_features is None else {"position_features": config.position_features}
    pipe = build_pipeline(config.preset, state.words, seed=config.seed, **changes)
    if isinstance(pipe.codec, VideoAutoencoder):
        codec_dir = path.parent.parent / CODEC_DIR
        if not (codec_dir / "config.json").is_file():
            raise ValueError(f"{path} comes from a run with a learned codec, but {codec_dir} is missing.")
        pipe.codec.load_state_dict(VideoAutoencoder.from_pretrained(codec_dir).state_dict())
    for name in MODULE_NAMES:
        load_model(getattr(pipe, name), path / f"ema_{name}.safetensors")
    for module in (pipe.transformer, pipe.text_encoder, pipe.codec):
        module.eval()
    return pipe


def export_checkpoint(path: str | Path, out: str | Path) -> Path:
    """Write the checkpoint at ``path`` as a pipeline folder ``out`` (EMA weights, safetensors),
    with the run's ``training_config.json`` and ``checkpoint.json`` (the step and training time)."""
    path, out = Path(path), Path(out)
    pipe = load_checkpoint_pipeline(path)
    state = read_state(path)
    pipe.save_pretrained(out)
    TrainConfig.from_dict(state.config).save(out / "training_config.json")
    record = {"checkpoint": str(path), "step": state.step, "wall_s": state.wall_s}
    (out / "checkpoint.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return out
