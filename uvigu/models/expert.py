"""A high-noise expert kept as its difference from the model it serves.

``pipe.use_high_noise_expert(expert, boundary)`` hands the denoising calls at and above a noise
level to another model of the same words and layout — in practice the model itself fine-tuned at
the top of the noise. A second full set of weights would double the model folder, so a folder
keeps the expert as ``high_noise_expert/``: its config (the boundary, the rank) and, in 16-bit
floats, the difference of its weights from the model's — each weight matrix's as the two factors
of its best approximation of that rank (a truncated SVD), every other tensor's in full.
``UniViGUPipeline.from_pretrained`` rebuilds the expert from it and attaches it.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file, save_file

if TYPE_CHECKING:
    from uvigu.pipeline import UniViGUPipeline

EXPERT_FOLDER = "high_noise_expert"
_WEIGHTS = "difference.safetensors"
_CONFIG = "config.json"
_PARTS = ("transformer", "text_encoder")
_STORED = torch.float16


def check_boundary(boundary: float) -> float:
    """The noise level a high-noise expert takes over from: in (0, 1]."""
    if not 0.0 < boundary <= 1.0:
        raise ValueError(f"boundary is a noise level in (0, 1], got {boundary}.")
    return boundary


def write_expert(pipe: UniViGUPipeline, expert: UniViGUPipeline, folder: str | Path, *, boundary: float,
                 rank: int, records: Sequence[str | Path] = ()) -> Path:
    """Write ``expert`` as its difference from ``pipe`` (their transformers and text encoders) to
    ``folder``: matrices with both sides longer than ``rank`` as rank-``rank`` factors, the rest in
    full, all in float16, with ``boundary`` (the noise level it takes over from), and copies of the
    files ``records`` (how the expert was made: its run's training config and summary). Returns the
    folder."""
    if rank < 1:
        raise ValueError(f"rank must be at least 1, got {rank}.")
    check_boundary(boundary)
    if clash := [str(record) for record in records if Path(record).name in (_CONFIG, _WEIGHTS)]:
        raise ValueError(f"{', '.join(clash)} would replace the expert's own file of that name.")
    tensors: dict[str, torch.Tensor] = {}
    for part in _PARTS:
        mine, theirs = getattr(pipe, part).state_dict(), getattr(expert, part).state_dict()
        if mine.keys() != theirs.keys() or any(mine[k].shape != theirs[k].shape for k in mine):
            raise ValueError(f"the expert's {part} is not shaped as the model's: it must be the same network.")
        for name, value in mine.items():
            diff = theirs[name].detach().float().cpu() - value.detach().float().cpu()
            key = f"{part}.{name}"
            if diff.ndim == 2 and min(diff.shape) > rank:
                u, s, vh = torch.linalg.svd(diff, full_matrices=False)
                tensors[f"{key}::up"] = (u[:, :rank] * s[:rank]).to(_STORED).contiguous()
                tensors[f"{key}::down"] = vh[:rank].to(_STORED).contiguous()
            else:
                tensors[f"{key}::full"] = diff.to(_STORED).contiguous()
    # Written beside the folder and then renamed into place, so a failed write leaves none half made.
    folder = Path(folder)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_file(tensors, str(partial / _WEIGHTS))
    (partial / _CONFIG).write_text(json.dumps({"boundary": float(boundary), "rank": int(rank)}, indent=2) + "\n")
    for record in records:
        shutil.copy2(record, partial / Path(record).name)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder


def read_expert(pipe: UniViGUPipeline, folder: str | Path) -> tuple[UniViGUPipeline, float]:
    """The expert ``folder`` holds, rebuilt on ``pipe`` (a copy of it with the difference added,
    where ``pipe`` is and in its dtypes), and its boundary."""
    folder = Path(folder)
    config = json.loads((folder / _CONFIG).read_text())
    stored = load_file(str(folder / _WEIGHTS))
    expert = copy.deepcopy(pipe)
    expert._high_noise = None
    seen, updated = set(), set()
    with torch.no_grad():
        for part in _PARTS:
            for name, param in getattr(expert, part).state_dict(keep_vars=True).items():
                key = f"{part}.{name}"
                if id(param) in updated:  # a tied weight (the encoder's embeddings): its difference added once
                    seen.update(k for k in (f"{key}::full", f"{key}::up", f"{key}::down") if k in stored)
                    continue
                updated.add(id(param))
                if f"{key}::full" in stored:
                    diff = stored[f"{key}::full"].float()
                    seen.add(f"{key}::full")
                elif f"{key}::up" in stored:
                    diff = stored[f"{key}::up"].float() @ stored[f"{key}::down"].float()
                    seen.update((f"{key}::up", f"{key}::down"))
                else:
                    raise ValueError(f"{folder} has no difference for {key}: it was made for another model.")
                if diff.shape != param.shape:
                    raise ValueError(f"{folder} holds {key} shaped {tuple(diff.shape)}, the model "
                                     f"{tuple(param.shape)}: it was made for another model.")
                param.copy_((param.float() + diff.to(param.device)).to(param.dtype))
    if set(stored) - seen:
        raise ValueError(f"{folder} holds weights the model does not have: it was made for another model.")
    return expert, float(config["boundary"])


__all__ = ["EXPERT_FOLDER", "read_expert", "write_expert"]
