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

from ..models.autoencoder import VideoAutoencoder
from ..models.presets import build_pipeline
from .checkpoint import STATE_FILE, is_checkpoint, load_ema, read_state
from .codec_stage import CODEC_DIR
from .config import TrainConfig

def load_checkpoint_pipeline(path: str | Path):
    """The pipeline of the checkpoint at ``path`` with its EMA weights, in eval mode, on the CPU.

    A preset with a learned codec takes the run's codec from ``<out>/codec`` (written when the
    codec stage ends, before the first checkpoint).
    """
    return _load(Path(path))[0]


def _load(path: Path):
    """(the checkpoint's pipeline, its saved state)."""
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
    load_ema(path, [pipe.transformer, pipe.text_encoder])
    for module in (pipe.transformer, pipe.text_encoder, pipe.codec):
        module.eval()
    return pipe, state


def export_checkpoint(path: str | Path, out: str | Path) -> Path:
    """Write the checkpoint at ``path`` as a pipeline folder ``out`` (EMA weights, safetensors),
    with the run's ``training_config.json`` and ``checkpoint.json`` (the step and training time)."""
    path, out = Path(path), Path(out)
    pipe, state = _load(path)
    pipe.save_pretrained(out)
    TrainConfig.from_dict(state.config).save(out / "training_config.json")
    record = {"checkpoint": str(path), "step": state.step, "wall_s": state.wall_s}
    (out / "checkpoint.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return out
