"""A model to run: a pipeline folder or a training checkpoint, on a device, in a precision.

The CLI's model commands and the studio load through ``load_pipeline``, so both take the same
folders: a pipeline saved with ``save_pretrained`` (the shipped ``assets/uvigu-shapes``) or a
training run's ``<run>/checkpoints/step_N`` (its EMA weights: the model the run would have saved
had it ended there).
"""

from __future__ import annotations

from pathlib import Path

from .models.presets import SHIPPED_MODEL_DIR
from .training.checkpoint import is_checkpoint


def model_kind(path: str | Path) -> str | None:
    """``"pipeline"`` (``model_index.json``), ``"checkpoint"`` (a training checkpoint,
    ``is_checkpoint``) or ``None`` when ``path`` holds neither. Reads no weights."""
    path = Path(path)
    if (path / "model_index.json").is_file():
        return "pipeline"
    if is_checkpoint(path):
        return "checkpoint"
    return None


def load_pipeline(model: str | Path | None = None, device=None, dtype=None, *, zero_gpu: bool = False):
    """The ``UniViGUPipeline`` at ``model`` (None: the shipped one) on ``device`` (``check_device``'s:
    auto, cpu, cuda or cuda:N; ``zero_gpu`` as there) with the denoiser's weights in ``dtype``
    (``check_dtype``'s: float32, bfloat16, or auto for the faster where it is native; norms and
    modulation stay float32), its progress bars off. A ``ValueError`` says what is wrong with a
    folder that holds no model, a device or a dtype."""
    import diffusers
    import transformers

    from .inputs import check_device, check_dtype
    from .pipeline import UniViGUPipeline
    from .training.export import load_checkpoint_pipeline

    path = Path(model) if model else SHIPPED_MODEL_DIR
    kind = model_kind(path)
    if kind is None:
        raise ValueError(f"no model at {path} (neither a pipeline folder with model_index.json nor a training "
                         "checkpoint with state.json); pass --model DIR.")
    device = check_device(device, zero_gpu=zero_gpu)
    dtype = check_dtype(dtype, device)
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    pipe = (load_checkpoint_pipeline(path) if kind == "checkpoint" else UniViGUPipeline.from_pretrained(path)).to(device)
    cast_denoisers(pipe, dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def denoisers(pipe) -> list:
    """The networks that make ``pipe``'s denoising calls: its denoiser, and its high-noise expert's
    if it has one (a folder's ``high_noise_expert/`` is attached as it loads)."""
    expert = getattr(pipe, "high_noise_expert", None)
    return [pipe.transformer] + ([expert[0].transformer] if expert is not None else [])


def cast_denoisers(pipe, dtype) -> None:
    """Cast each of ``pipe``'s `denoisers` to ``dtype``, keeping the modules that stay float32
    (`cast_keeping_fp32_modules`), so the model and its expert run in the same precision."""
    from .models.wan_loading import cast_keeping_fp32_modules

    for network in denoisers(pipe):
        cast_keeping_fp32_modules(network, dtype)
