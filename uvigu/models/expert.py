"""A high-noise expert kept as its difference from the model it serves.

``pipe.use_high_noise_expert(expert, boundary)`` hands the denoising calls at and above a noise
level to another model of the same words and layout — in practice the model itself fine-tuned at
the top of the noise. A second full set of weights would double the model folder, so a folder
keeps the expert as ``high_noise_expert/``: its config (the boundary, the rank) and, in 16-bit
floats, the difference of its weights from the model's — each weight matrix's as the two factors
of its best approximation of that rank (a truncated SVD), every other tensor's in full.
``UniViGUPipeline.from_pretrained`` rebuilds the expert from it and attaches it
(`HighNoiseExpertMixin`, which also saves and moves it with the pipeline).
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Self

import torch
from safetensors.torch import load_file, save_file

if TYPE_CHECKING:
    from uvigu.pipeline import UniViGUPipeline

EXPERT_FOLDER = "high_noise_expert"
_WEIGHTS = "difference.safetensors"
_CONFIG = "config.json"
_PARTS = ("transformer", "text_encoder")
_STORED = torch.float16

# A high-noise expert (use_high_noise_expert) denoises the video at and above this σ: with the
# shipped sampler's 20 steps (shift 3), the first call alone (σ 1; the second is at 0.983).
HIGH_NOISE_BOUNDARY = 0.99


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


class HighNoiseExpertMixin:
    """`UniViGUPipeline`'s high-noise expert: attaching one, and loading, saving and moving it with
    the pipeline. The pipeline's ``__init__`` sets ``_high_noise`` and ``_expert_folder`` to None."""

    _high_noise: tuple[UniViGUPipeline, float] | None  # the attached expert and its boundary
    _expert_folder: Path | None  # the high_noise_expert/ it was loaded from, which save copies

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs) -> Self:
        """diffusers' ``from_pretrained``; a folder with a ``high_noise_expert/`` (`uvigu.models.expert`)
        also gets that expert attached (`use_high_noise_expert`)."""
        pipe = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        folder = Path(pretrained_model_name_or_path) / EXPERT_FOLDER
        if folder.is_dir():
            pipe.use_high_noise_expert(*read_expert(pipe, folder))
            pipe._expert_folder = folder
        return pipe

    def save_pretrained(self, save_directory, *args, **kwargs) -> None:
        """diffusers' ``save_pretrained``, with the ``high_noise_expert/`` this pipeline was loaded
        with, if any (an expert attached otherwise is not saved: `uvigu.models.expert.write_expert`
        writes one)."""
        super().save_pretrained(save_directory, *args, **kwargs)
        target = Path(save_directory) / EXPERT_FOLDER
        if (self._expert_folder is not None and self._high_noise is not None
                and target.resolve() != self._expert_folder.resolve()):
            shutil.copytree(self._expert_folder, target, dirs_exist_ok=True)

    def to(self, *args, **kwargs) -> UniViGUPipeline:
        """diffusers' ``to``, moving (or casting) an attached high-noise expert alike."""
        moved = super().to(*args, **kwargs)
        if getattr(self, "_high_noise", None) is not None:
            self._high_noise[0].to(*args, **kwargs)
        return moved

    @property
    def high_noise_expert(self) -> tuple[UniViGUPipeline, float] | None:
        """The attached high-noise expert and its boundary (`use_high_noise_expert`), or None."""
        return self._high_noise

    def use_high_noise_expert(self, expert: UniViGUPipeline | None, boundary: float = HIGH_NOISE_BOUNDARY) -> None:
        """Have ``expert`` — another model of this one's words and clip layout, e.g. this one
        fine-tuned at the top of the noise (`uvigu train --video-sigma-min`) — make the denoising
        calls of generate, joint and the plain edit whose video noise level is ``boundary`` or more
        (its transformer, with the prompt through its own text encoder); this model makes the rest,
        and all of captioning. Wan2.2 splits its sampler between a high-noise and a low-noise
        expert the same way. ``None`` removes it. ``to()`` moves it with this model. A pipeline
        folder keeps one as its difference from the model (`uvigu.models.expert`; ``uvigu expert``
        writes it), which ``from_pretrained`` attaches; the shipped model has one (docs/EVAL.md measures it)."""
        self._expert_folder = None
        if expert is None:
            self._high_noise = None
            return
        check_boundary(boundary)
        if expert.tokenizer.get_vocab() != self.tokenizer.get_vocab():
            raise ValueError("the high-noise expert must know the same words, in the same order, as this model.")
        layout = ("in_channels", "out_channels", "patch_size", "vocab_size", "mask_token_id")
        mine, theirs = self.transformer.config, expert.transformer.config
        if any(mine.get(k) != theirs.get(k) for k in layout) or type(expert.codec) is not type(self.codec):
            raise ValueError("the high-noise expert must have this model's codec and clip layout "
                             f"({', '.join(layout)}).")
        self._check_alike(expert, "load both alike")
        self._high_noise = (expert, float(boundary))

    def _check_alike(self, expert: UniViGUPipeline, remedy: str) -> None:
        """A ``ValueError`` (ending in ``remedy``) unless ``expert`` runs where and in the precision this model does."""
        if expert._dtype != self._dtype or expert._device != self._device:
            raise ValueError(f"the high-noise expert runs in {expert._dtype} on {expert._device}, this model in "
                             f"{self._dtype} on {self._device}: {remedy}.")


__all__ = ["EXPERT_FOLDER", "HIGH_NOISE_BOUNDARY", "HighNoiseExpertMixin", "read_expert", "write_expert"]
