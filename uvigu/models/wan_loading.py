"""Loading a diffusers-format Wan2.1-T2V folder as a unified pipeline.

A Wan folder (``model_index.json``, ``transformer/``, ``vae/``, ``text_encoder/`` (UMT5),
``tokenizer/``, ``scheduler/``) becomes a ``UniViGUPipeline``: the Wan transformer is extended with a
text stream (``UniViGUTransformer3DModel.from_wan``) whose vocabulary is the UMT5 tokenizer's plus
one ``[MASK]`` id, the VAE becomes a ``WanVideoCodec`` (WanPipeline's latent normalisation), the
UMT5 encoder stays the prompt encoder, and guidance runs against the empty prompt as in Wan.

Only local folders are read (``local_files_only``): nothing is downloaded.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
from transformers import AutoTokenizer, PreTrainedTokenizerBase, UMT5EncoderModel

from .transformer import UniViGUTransformer3DModel
from .wan_codec import WanVideoCodec

logger = logging.getLogger(__name__)

WAN_SUBFOLDERS = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")


@dataclass(frozen=True)
class WanSettings:
    """Pipeline config values for Wan-scale clips (Wan2.1-T2V defaults; official Uni-ViGU sampling)."""

    fps: int = 16  # Wan2.1 clips: 81 frames at 16 fps ≈ 5 s
    num_frames: int = 81  # 4k + 1
    height: int = 480  # multiples of 16
    width: int = 832
    max_text_len: int = 256  # text stream length (official README/inference.sh: --max_length 256)
    max_prompt_len: int = 512  # UMT5 condition length, as WanPipeline
    num_inference_steps: int = 50  # official inference default
    caption_steps: int = 50
    guidance_scale: float = 5.0  # Wan's default guidance against the empty prompt
    text_source: str = "uniform"  # official default text source
    text_exponent: float = 1.0  # κ = 1 − σ (linear), as the official V2T path
    text_temperature: float = 1.0
    caption_reread: int = 0  # the re-read pass is measured on the Shapes model only (docs/EVAL.md)

    def pipeline_config(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class WanComponents:
    """The parts of a Wan folder the unified pipeline keeps (the transformer is handled apart)."""

    text_encoder: UMT5EncoderModel
    tokenizer: PreTrainedTokenizerBase
    codec: WanVideoCodec
    scheduler: FlowMatchEulerDiscreteScheduler


def is_wan_folder(path: str | Path) -> bool:
    """True for a plain diffusers Wan pipeline folder (load it with ``from_wan_pretrained``), False for
    anything else (our own pipeline folders load with ``from_pretrained``)."""
    index = Path(path) / "model_index.json"
    if not index.is_file():
        return False
    return json.loads(index.read_text()).get("_class_name") in ("WanPipeline", "WanVideoToVideoPipeline")


def check_wan_folder(path: str | Path) -> Path:
    """Raise ``ValueError`` unless ``path`` is a local diffusers-format Wan2.1-T2V folder."""
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"{str(path)!r} is not a folder; pass a local diffusers-format Wan2.1-T2V folder.")
    index = folder / "model_index.json"
    if not index.is_file():
        raise ValueError(f"{folder} has no model_index.json; it is not a diffusers-format pipeline folder.")
    missing = [name for name in WAN_SUBFOLDERS if not (folder / name).is_dir()]
    if missing:
        raise ValueError(
            f"{folder} lacks {', '.join(missing)}; a Wan2.1-T2V folder has {', '.join(WAN_SUBFOLDERS)}."
        )
    transformer_config = json.loads((folder / "transformer" / "config.json").read_text())
    if transformer_config.get("image_dim") is not None:
        raise ValueError(f"{folder} holds an image-to-video Wan model; only text-to-video (T2V) folders work.")
    return folder


def load_scheduler(folder: Path) -> FlowMatchEulerDiscreteScheduler:
    """The folder's flow-matching scheduler, or an Euler one with the folder's shift.

    Wan's own folders ship ``UniPCMultistepScheduler`` (``flow_shift`` 3); the joint sampler steps video
    and text together with Euler, so only the shift is taken over.
    """
    config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    if config.get("_class_name") == "FlowMatchEulerDiscreteScheduler":
        return FlowMatchEulerDiscreteScheduler.from_pretrained(folder, subfolder="scheduler", local_files_only=True)
    shift = float(config.get("flow_shift", config.get("shift", 3.0)))
    logger.info("scheduler %s replaced by FlowMatchEulerDiscreteScheduler(shift=%g)", config.get("_class_name"), shift)
    return FlowMatchEulerDiscreteScheduler(shift=shift)


def load_wan_tokenizer(folder: Path) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
    for name in ("pad_token_id", "eos_token_id"):
        if getattr(tokenizer, name) is None:
            raise ValueError(f"the tokenizer in {folder / 'tokenizer'} has no {name[:-3]}; UMT5's has <pad> and </s>.")
    return tokenizer


def load_wan_components(
    path: str | Path,
    *,
    text_encoder_dtype: torch.dtype = torch.bfloat16,
    vae_dtype: torch.dtype = torch.float32,
    normalize_latents: bool = True,
    vae_tiling: bool = False,
    vae_slicing: bool = False,
) -> WanComponents:
    """Prompt encoder, tokenizer, codec and scheduler of a Wan folder."""
    folder = check_wan_folder(path)
    text_encoder = UMT5EncoderModel.from_pretrained(
        folder / "text_encoder", dtype=text_encoder_dtype, local_files_only=True
    ).eval()
    vae = AutoencoderKLWan.from_pretrained(folder, subfolder="vae", torch_dtype=vae_dtype, local_files_only=True)
    codec = WanVideoCodec.from_vae(
        vae.eval(), normalize_latents=normalize_latents, tiling=vae_tiling, slicing=vae_slicing
    )
    return WanComponents(text_encoder, load_wan_tokenizer(folder), codec, load_scheduler(folder))


def text_vocab_size(tokenizer: PreTrainedTokenizerBase) -> int:
    """Ids the tokenizer can emit (its added tokens included); the mask id comes after them."""
    return len(tokenizer)


def cast_keeping_fp32_modules(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """Cast parameters to ``dtype`` except those of ``model._keep_in_fp32_modules``, as diffusers'
    ``from_pretrained(torch_dtype=…)`` does, so a fresh model and a reloaded one hold the same dtypes."""
    keep = getattr(model, "_keep_in_fp32_modules", None) or []
    for name, param in model.named_parameters():
        target = torch.float32 if any(k in name for k in keep) else dtype
        if param.is_floating_point() and param.dtype != target:
            param.data = param.data.to(target)
    return model


def load_wan_pipeline(
    path: str | Path,
    *,
    dtype: torch.dtype = torch.bfloat16,
    text_encoder_dtype: torch.dtype | None = None,
    vae_dtype: torch.dtype = torch.float32,
    shared_ffn: bool = False,
    normalize_latents: bool = True,
    vae_tiling: bool = False,
    vae_slicing: bool = False,
    settings: WanSettings | None = None,
    **overrides,
):
    """A ``UniViGUPipeline`` from a local diffusers-format Wan2.1-T2V folder.

    Args:
        path: the Wan folder (``model_index.json``, transformer, vae, text_encoder, tokenizer, scheduler).
        dtype: transformer weights (bf16 for GPUs; float32 on CPUs).
        text_encoder_dtype: UMT5 weights (default: ``dtype``).
        vae_dtype: VAE weights (float32, as diffusers' Wan examples recommend).
        shared_ffn: ablation, one FFN for both modalities instead of a text copy.
        normalize_latents: WanPipeline's latent normalisation (False: raw latents, as the official code).
        vae_tiling, vae_slicing: VAE memory switches.
        settings / overrides: pipeline config values (``WanSettings`` fields, e.g. ``num_frames=33``).
    """
    from ..pipeline import UniViGUPipeline

    settings = settings or WanSettings()
    unknown = set(overrides) - set(settings.pipeline_config())
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))}; see WanSettings for the accepted ones.")
    config = {**settings.pipeline_config(), **overrides}
    parts = load_wan_components(
        path,
        text_encoder_dtype=text_encoder_dtype or dtype,
        vae_dtype=vae_dtype,
        normalize_latents=normalize_latents,
        vae_tiling=vae_tiling,
        vae_slicing=vae_slicing,
    )
    folder = Path(path)
    wan = WanTransformer3DModel.from_pretrained(folder, subfolder="transformer", torch_dtype=dtype, local_files_only=True)
    vocab = text_vocab_size(parts.tokenizer)
    logger.info("extending the Wan transformer: text vocabulary %d + [MASK] = %d ids", vocab, vocab + 1)
    transformer = UniViGUTransformer3DModel.from_wan(
        wan, vocab, shared_ffn=shared_ffn, max_text_len=config["max_text_len"]
    ).eval()
    del wan
    cast_keeping_fp32_modules(transformer, dtype)
    pipe = UniViGUPipeline(
        transformer=transformer,
        text_encoder=parts.text_encoder,
        tokenizer=parts.tokenizer,
        codec=parts.codec,
        scheduler=parts.scheduler,
        **config,
    )
    pipe.codec.check_size(config["num_frames"], config["height"], config["width"], tuple(transformer.config.patch_size))
    return pipe
