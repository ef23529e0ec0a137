"""Training checkpoints: everything needed to continue a run at its step, without pickle.

A checkpoint is a folder ``<out>/checkpoints/step_<step>/``:

* ``transformer.safetensors``, ``text_encoder.safetensors`` — the trained weights;
* ``ema_transformer.safetensors``, ``ema_text_encoder.safetensors`` — their EMA;
* ``optimizer.pt`` — the AdamW state dict (tensors and numbers only; read with ``weights_only=True``);
* ``rng_<process>.safetensors`` — the RNG states of each process (objective draws, torch);
* ``state.json`` — the step, wall time, vocabulary and the training config.

The learning rate is a pure function of the step (``trainer.learning_rate``), so the step is the
scheduler's whole state. A checkpoint is written in three moves — weights (main process), RNG
(every process), then ``state.json`` and a rename (main process) — so an interrupted save never
looks like a checkpoint.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

logger = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
MODULE_NAMES = ("transformer", "text_encoder")
STATE_FILE = "state.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")


@dataclass(frozen=True)
class CheckpointState:
    step: int  # optimizer steps done
    wall_s: float  # training wall time so far, over all sessions of the run
    words: list[str]  # the tokenizer's vocabulary (without special tokens)
    config: dict[str, Any]  # TrainConfig.to_dict() of the run that wrote it


def checkpoint_dir(out_dir: str | Path, step: int) -> Path:
    return Path(out_dir) / CHECKPOINTS_DIR / f"step_{step:07d}"


def list_checkpoints(out_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(out_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and is_checkpoint(p)]
    return [p for _, p in sorted(found)]


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def is_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a complete checkpoint folder (its ``state.json`` is written last)."""
    return (Path(path) / STATE_FILE).is_file()


def read_state(path: str | Path) -> CheckpointState:
    return CheckpointState(**json.loads((Path(path) / STATE_FILE).read_text(encoding="utf-8")))


def staging_dir(out_dir: str | Path, step: int) -> Path:
    """Where the checkpoint of ``step`` is written before ``commit_checkpoint`` renames it."""
    final = checkpoint_dir(out_dir, step)
    return final.with_name(final.name + ".tmp")


def save_weights(
    path: str | Path, *, models: Sequence[nn.Module], ema_models: Sequence[nn.Module], optimizer: torch.optim.Optimizer
) -> None:
    """Write models, EMA and optimizer into the (new) staging folder ``path``; main process only."""
    path = Path(path)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    for name, model, ema_model in zip(MODULE_NAMES, models, ema_models, strict=True):
        # save_model handles the tied embeddings of the T5 encoder (save_file refuses shared tensors).
        save_model(model, str(path / f"{name}.safetensors"))
        save_model(ema_model, str(_ema_file(path, name)))
    torch.save(optimizer.state_dict(), path / "optimizer.pt")


def save_rng(path: str | Path, process_index: int, generator: torch.Generator) -> None:
    """Each process writes its own RNG states into the staging folder."""
    states = {"objective": generator.get_state(), "torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["torch_cuda"] = torch.cuda.get_rng_state()
    save_file(states, str(Path(path) / f"rng_{process_index}.safetensors"))


def commit_checkpoint(out_dir: str | Path, state: CheckpointState, keep: int) -> Path:
    """Write ``state.json`` into the staging folder, rename it to its final name and prune all but
    the last ``keep`` checkpoints; main process only, after every process has saved its RNG."""
    staged, final = staging_dir(out_dir, state.step), checkpoint_dir(out_dir, state.step)
    (staged / STATE_FILE).write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)
    staged.rename(final)
    for old in list_checkpoints(out_dir)[:-keep]:
        shutil.rmtree(old)
    return final


def _ema_file(path: Path, name: str) -> Path:
    return path / f"ema_{name}.safetensors"


def load_ema(path: str | Path, ema_models: Sequence[nn.Module]) -> None:
    """Load a checkpoint's EMA weights into ``ema_models`` (``MODULE_NAMES`` order), on their devices."""
    for name, model in zip(MODULE_NAMES, ema_models, strict=True):
        load_model(model, _ema_file(Path(path), name), device=str(next(model.parameters()).device))


def load_checkpoint(
    path: str | Path,
    *,
    models: Sequence[nn.Module],
    ema_models: Sequence[nn.Module],
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    process_index: int,
) -> CheckpointState:
    """Restore models, EMA, optimizer and this process's RNG states; returns the saved state."""
    path = Path(path)
    for name, model in zip(MODULE_NAMES, models, strict=True):
        load_model(model, path / f"{name}.safetensors", device=str(next(model.parameters()).device))
    load_ema(path, ema_models)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True))
    rng_file = path / f"rng_{process_index}.safetensors"
    if rng_file.is_file():
        states = load_file(str(rng_file))
        generator.set_state(states["objective"])
        torch.set_rng_state(states["torch_cpu"])
        if "torch_cuda" in states and torch.cuda.is_available():
            torch.cuda.set_rng_state(states["torch_cuda"])
    else:
        logger.warning("%s has no RNG state for process %d; draws will differ from an uninterrupted run",
                       path, process_index)
    return read_state(path)
