"""Converting the official Uni-ViGU release checkpoint (``.pth``) into our diffusers-layout pipeline.

The official ``WanUnifiedTransformer`` (repository Fr0zenCrane/Uni-ViGU, ``model/transformer.py`` and
its vendored ``diffusers/models/transformers/transformer_wan.py``) wraps a Wan2.1 transformer; its
training script saves ``{"model": state_dict, "step": …, …}``. Its parameter names map onto ours as:

| official                                   | ours                                                  |
|--------------------------------------------|-------------------------------------------------------|
| ``vocab_embed.weight``                     | ``token_embedding.weight`` (+ a ``[MASK]`` row, see below) |
| ``patch_embedding.*``                      | ``patch_embedding.*``                                 |
| ``time_embedding_v.{time_embedder,time_proj}.*`` | ``condition_embedder.{time_embedder,time_proj}.*`` |
| ``time_embedding_t.*``                     | ``time_embedding_t.*``                                |
| ``cond_text_embedder.*``                   | ``condition_embedder.text_embedder.*``                |
| ``blocks.N.{attn1,attn2,norm2,ffn}.*``     | same                                                  |
| ``blocks.N.ffn_t.*``                       | ``blocks.N.ffn_t.*``                                  |
| ``blocks.N.scale_shift_table``             | ``blocks.N.scale_shift_table`` and ``…_t`` (the release shares one table) |
| ``scale_shift_table_v`` / ``_t``           | ``scale_shift_table`` / ``scale_shift_table_t``       |
| ``video_head.proj_out.*``                  | ``proj_out.*``                                        |
| ``text_head.linear.*``                     | ``proj_out_t.*``                                      |
| ``text_head.norm_final.weight``            | ``norm_out_t.weight`` (``text_head_norm_affine=True``) |
| ``rotary_emb_text.inv_freq``               | dropped (a fixed table: θ = 10000, rotate-half layout → ``text_rope_layout="half"``) |

``blocks.N.norm1/norm3/norm3_t`` and ``video_head.norm_out`` have no weights. With the uniform text
source (the release's default) the text vocabulary has no ``[MASK]`` id; one is appended (zero
embedding, zero logit row that the sampler never draws) because our flows keep one.

The mapping is read from the released code; no real release checkpoint was available to check it.
Differences the conversion cannot remove (see docs/WAN.md): the release feeds the prompt encoder's
states without zeroing the padding and works on raw (unnormalised) VAE latents — the converted
codec is set to raw latents accordingly.

Checkpoints are read with ``torch.load(weights_only=True)``: a file that holds anything but tensors
and plain containers is refused.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import init_empty_weights
from diffusers import FlowMatchEulerDiscreteScheduler

from .transformer import UniViGUTransformer3DModel
from .wan_loading import WanSettings, check_wan_folder, load_wan_components

logger = logging.getLogger(__name__)

# Official inference defaults (inference_unified_wan.py / README): uniform text source, κ = 1 − σ,
# Euler with shift 3, 50 steps, guidance 5 against the empty prompt, text stream of 256 tokens.
OFFICIAL_SETTINGS = WanSettings(
    num_inference_steps=50, caption_steps=50, guidance_scale=5.0, text_source="uniform", max_text_len=256
)
OFFICIAL_SHIFT = 3.0
OFFICIAL_ROPE_TABLE_LEN = 1024  # the release's --max_length default; longest text stream supported

_WRAPPER_PREFIXES = ("_fsdp_wrapped_module.", "_orig_mod.", "_checkpoint_wrapped_module.")
_RENAMES = (  # (official prefix, our prefix), first match wins
    ("vocab_embed.", "token_embedding."),
    ("time_embedding_v.", "condition_embedder."),
    ("cond_text_embedder.", "condition_embedder.text_embedder."),
    ("time_embedding_t.", "time_embedding_t."),
    ("patch_embedding.", "patch_embedding."),
    ("scale_shift_table_v", "scale_shift_table"),
    ("scale_shift_table_t", "scale_shift_table_t"),
    ("video_head.proj_out.", "proj_out."),
    ("text_head.linear.", "proj_out_t."),
    ("text_head.norm_final.", "norm_out_t."),
)
_DROPPED = re.compile(r"^(rotary_emb_text\.|rotary_emb_video\.)")
_BLOCK = re.compile(r"^blocks\.(\d+)\.(attn1|attn2|norm2|ffn|ffn_t)\.|^blocks\.(\d+)\.scale_shift_table$")


@dataclass(frozen=True)
class OfficialCheckpoint:
    state: dict[str, torch.Tensor]  # official names, wrapper prefixes removed
    step: int | None  # training step, when the file records it


def load_official_checkpoint(path: str | Path) -> OfficialCheckpoint:
    """Read an official ``.pth`` safely (``weights_only=True``) and return its model state dict.

    Raises ``ValueError`` for a file that is missing, not a PyTorch checkpoint, holds Python objects
    beyond tensors and plain containers (refused, never unpickled), or has no model weights.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist.")
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:  # legacy (non-zip) files cannot be memory-mapped
            if "mmap" not in str(err):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if found is None:
            raise ValueError(f"{path.name} is not a readable PyTorch checkpoint.") from None
        raise ValueError(
            f"refusing to load {path.name}: it holds Python objects beyond tensors and plain containers "
            f"({found.group(1)}), so loading it could run code. Only weight files are accepted."
        ) from None
    except Exception as err:  # noqa: BLE001 - any other failure means "not a readable checkpoint"
        raise ValueError(f"{path.name} is not a readable PyTorch checkpoint: {err}") from None

    if not isinstance(obj, dict):
        raise ValueError(f"{path.name} holds a {type(obj).__name__}, not a checkpoint dict.")
    state = obj
    for key in ("model", "state_dict", "module"):
        if isinstance(obj.get(key), dict):
            state = obj[key]
            break
    cleaned: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        for prefix in _WRAPPER_PREFIXES:
            key = key.replace(prefix, "")
        cleaned[key.removeprefix("module.")] = value
    if "vocab_embed.weight" not in cleaned:
        raise ValueError(f"{path.name} has no 'vocab_embed.weight': it is not an official Uni-ViGU checkpoint.")
    step = obj.get("step")
    return OfficialCheckpoint(cleaned, int(step) if isinstance(step, (int, float)) else None)


def rename_official_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official names → ours (the text vocabulary left as it is). Raises on keys it does not know."""
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state.items():
        if _DROPPED.match(key):
            continue
        block = _BLOCK.match(key)
        if block:
            out[key] = value
            if block.group(3) is not None:  # the release modulates text with the video table
                out[key + "_t"] = value.clone()
            continue
        for old, new in _RENAMES:
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
        else:
            unknown.append(key)
    if unknown:
        shown = ", ".join(sorted(unknown)[:8])
        raise ValueError(f"{len(unknown)} parameter(s) with no counterpart in our model: {shown}")
    return out


def _text_vocabulary(rows: int, tokenizer_vocab: int, text_source: str | None) -> tuple[str, bool]:
    """(text source, whether a [MASK] row must be appended) for an embedding of ``rows`` rows."""
    if text_source is None:
        if rows == tokenizer_vocab:
            text_source = "uniform"
        elif rows == tokenizer_vocab + 1:
            text_source = "mask"
        else:
            raise ValueError(
                f"the checkpoint's text embedding has {rows} rows, but the Wan tokenizer has {tokenizer_vocab} ids "
                f"(the release uses {tokenizer_vocab} for the uniform source, {tokenizer_vocab + 1} for the mask "
                "source). Is it the right Wan folder? Pass text_source to override."
            )
    if text_source not in ("uniform", "mask"):
        raise ValueError(f"text_source must be 'uniform' or 'mask', got {text_source!r}.")
    return text_source, text_source == "uniform"


def build_official_transformer(
    checkpoint: OfficialCheckpoint,
    wan_transformer_config: dict,
    tokenizer_vocab: int,
    *,
    text_source: str | None = None,
    dtype: torch.dtype = torch.bfloat16,
) -> tuple[UniViGUTransformer3DModel, str]:
    """Our transformer holding the official weights; returns it and the checkpoint's text source."""
    state = rename_official_state(checkpoint.state)
    rows = state["token_embedding.weight"].shape[0]
    source, append_mask = _text_vocabulary(rows, tokenizer_vocab, text_source)
    if append_mask:
        emb, head_w, head_b = state["token_embedding.weight"], state["proj_out_t.weight"], state["proj_out_t.bias"]
        state["token_embedding.weight"] = torch.cat([emb, emb.new_zeros(1, emb.shape[1])])
        state["proj_out_t.weight"] = torch.cat([head_w, head_w.new_zeros(1, head_w.shape[1])])
        state["proj_out_t.bias"] = torch.cat([head_b, head_b.new_zeros(1)])
    vocab_size = state["token_embedding.weight"].shape[0]
    wc = wan_transformer_config
    if wc.get("image_dim") is not None or wc.get("added_kv_proj_dim") is not None:
        raise ValueError("only text-to-video Wan transformers (no image conditioning) can be converted.")
    keep = ("patch_size", "num_attention_heads", "attention_head_dim", "in_channels", "out_channels", "text_dim",
            "freq_dim", "ffn_dim", "num_layers", "cross_attn_norm", "qk_norm", "eps", "rope_max_seq_len")
    config = {k: wc[k] for k in keep if k in wc}
    config["patch_size"] = tuple(config["patch_size"])
    config["out_channels"] = config.get("out_channels") or config["in_channels"]
    with init_empty_weights():
        model = UniViGUTransformer3DModel(
            **config,
            vocab_size=vocab_size,
            mask_token_id=vocab_size - 1,
            max_text_len=OFFICIAL_ROPE_TABLE_LEN,
            text_rope_layout="half",
            text_head_norm_affine=True,
        )
    expected = set(model.state_dict())
    missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or extra:
        raise ValueError(
            f"the checkpoint does not fit a Wan transformer of this folder's size: missing {missing[:6]}, "
            f"unexpected {extra[:6]}."
        )
    for key, value in model.state_dict().items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise ValueError(f"{key}: the checkpoint has shape {tuple(state[key].shape)}, the model {tuple(value.shape)}.")
    model.load_state_dict({k: v.to(dtype).contiguous() for k, v in state.items()}, strict=True, assign=True)
    return model.eval(), source


def convert_official(
    checkpoint_pth: str | Path,
    wan_folder: str | Path,
    out_folder: str | Path,
    *,
    dtype: torch.dtype = torch.bfloat16,
    text_source: str | None = None,
) -> Path:
    """Convert an official Uni-ViGU ``.pth`` into a pipeline folder loadable with ``from_pretrained``.

    ``wan_folder`` (the diffusers-format Wan2.1-T2V folder the release was trained from) provides the
    VAE, UMT5 encoder, tokenizer and the transformer's size. Weights are written as safetensors; the
    pipeline config records the official inference defaults and ``conversion.json`` the source.
    """
    from ..pipeline import UniViGUPipeline

    out = Path(out_folder)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty; choose a new output folder.")
    folder = check_wan_folder(wan_folder)
    checkpoint = load_official_checkpoint(checkpoint_pth)
    # The release computes on raw VAE latents (no latents_mean/std), so the codec does too.
    parts = load_wan_components(folder, text_encoder_dtype=dtype, normalize_latents=False)
    wan_config = json.loads((folder / "transformer" / "config.json").read_text())
    transformer, source = build_official_transformer(
        checkpoint, wan_config, parts.tokenizer.vocab_size, text_source=text_source, dtype=dtype
    )
    settings = {**OFFICIAL_SETTINGS.pipeline_config(), "text_source": source}
    pipe = UniViGUPipeline(
        transformer=transformer,
        text_encoder=parts.text_encoder,
        tokenizer=parts.tokenizer,
        codec=parts.codec,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=OFFICIAL_SHIFT),
        **settings,
    )
    pipe.save_pretrained(out, safe_serialization=True)
    record = {
        "source_checkpoint": Path(checkpoint_pth).name,
        "training_step": checkpoint.step,
        "text_source": source,
        "mask_token_appended": source == "uniform",
        "text_rope_layout": "half",
        "latents": "raw (no latents_mean/std normalisation), as the release",
        "inference_defaults": {"shift": OFFICIAL_SHIFT, **settings},
        "verified_against_real_checkpoint": False,
    }
    (out / "conversion.json").write_text(json.dumps(record, indent=2) + "\n")
    logger.info("converted %s (step %s) into %s", Path(checkpoint_pth).name, checkpoint.step, out)
    return out
