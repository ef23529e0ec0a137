"""Named model sizes and a builder for a fresh (randomly initialised) pipeline.

``tiny`` is for tests (seconds on a CPU), ``lab`` for experiments on the tiny model's 16-pixel world
(minutes), ``shapes`` is the shipped Shapes-world model (pixel space),
``shapes-latent`` the same transformer on the latents of a small learned codec (as Wan pairs its
VAE with its DiT; ``tiny-latent`` tests it), ``wan-1.3b``
is the transformer of Wan2.1-T2V-1.3B extended with a text stream (for the GPU benchmark; real
Wan-scale pipelines are loaded from a Wan folder instead).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from ..flows import REREAD_PERIOD, VERIFY_DRAWS, VERIFY_MAX_TEXTS


# Where the shipped ``shapes`` model lives in a checkout (diffusers folder layout).
SHIPPED_MODEL_DIR = Path(__file__).resolve().parents[2] / "assets" / "uvigu-shapes"


@dataclass(frozen=True)
class ModelPreset:
    name: str
    # codec: "pixel" (identity: the transformer patches raw RGB) or "autoencoder"
    # (uvigu.models.autoencoder: learned, 4×4×4 cubes → latent_channels, trained in stage 0)
    codec: str = "pixel"
    latent_channels: int = 8  # autoencoder only
    codec_width: int = 96  # autoencoder only
    codec_blocks: int = 2  # autoencoder only
    # transformer
    patch_size: tuple[int, int, int] = (2, 8, 8)  # pixel-space patches: 16×64×64 clip → 8×8×8 = 512 tokens
    num_attention_heads: int = 4
    attention_head_dim: int = 48
    ffn_dim: int = 768
    num_layers: int = 6
    text_ffn_dim: int | None = None  # None: same as ffn_dim
    shared_ffn: bool = False
    prediction_type: str = "sample"  # x-prediction: pixel patches are wider than the model
    position_features: int = 0  # > 0: each video token's place in the clip (transformer.place_features)
    # prompt encoder (small T5)
    encoder_dim: int = 128
    encoder_layers: int = 2
    encoder_heads: int = 4
    encoder_ff: int = 256
    # clip and text
    num_frames: int = 16
    height: int = 64
    width: int = 64
    fps: int = 8
    max_text_len: int = 48  # longest caption (2 objects ≈ 35 tokens) + end token, with margin
    max_prompt_len: int = 32
    # sampling defaults
    num_inference_steps: int = 20
    caption_steps: int = 16
    caption_reread_period: int = REREAD_PERIOD  # copies a caption's re-read pass reads on (flows.reread)
    caption_verify_weight: float = 0.0  # the video stream's say on unsure caption words (flows.verify); 0: off
    caption_verify_max_texts: int = VERIFY_MAX_TEXTS  # candidate captions the check judges
    caption_verify_draws: int = VERIFY_DRAWS  # noise draws of the clip per candidate caption
    guidance_scale: float = 3.0
    shift: float = 3.0  # Wan's inference shift
    text_source: str = "uniform"
    text_exponent: float = 1.0
    take_judge: str = "shapes"  # best-of-N generation reads its takes' captions with the Shapes grammar (uvigu.judge)

    def to_dict(self) -> dict:
        return asdict(self)


# The learned codec's settings: 4×16×16 latent grid of a 16×64×64 clip, 2×2 patches → 256 tokens of
# 32 values, narrower than the model, so velocity prediction as in Wan.
_LATENT = dict(codec="autoencoder", patch_size=(1, 2, 2), prediction_type="velocity")
_TINY = dict(
    num_attention_heads=2,
    attention_head_dim=12,
    ffn_dim=48,
    num_layers=2,
    encoder_dim=16,
    encoder_layers=1,
    encoder_heads=2,
    encoder_ff=32,
    num_frames=4,
    height=16,
    width=16,
    max_text_len=48,
    max_prompt_len=32,
    num_inference_steps=4,
    caption_steps=4,
)

PRESETS: dict[str, ModelPreset] = {
    "tiny": ModelPreset(name="tiny", patch_size=(2, 4, 4), **_TINY),
    # the tiny model on a tiny learned codec: the 1×4×4 latent grid of a 4×16×16 clip, 16 tokens
    "tiny-latent": ModelPreset(name="tiny-latent", **{**_LATENT, "patch_size": (1, 1, 1)}, latent_channels=4,
                               codec_width=16, codec_blocks=1, **_TINY),
    # the shipped model; its caption defaults (12 steps, a re-read on 8 copies) are those of the
    # re-read sweeps in docs/EVAL.md: as accurate as 16 steps on 8 copies, at the cost of 16 on 4;
    # its verification weight is the one that did best on clips outside the evaluation's (EVAL.md),
    # and one noise draw per candidate caption names as many objects there as two, in less time
    "shapes": ModelPreset(name="shapes", caption_steps=12, caption_reread_period=8, caption_verify_weight=300.0,
                          caption_verify_draws=1),
    # the same transformer on the latents of a learned codec (stage 0 of its training run trains it)
    "shapes-latent": ModelPreset(name="shapes-latent", **_LATENT),
    # a laboratory: the tiny model's Shapes world (16×16 px, 4 frames, 32 tokens) with a model
    # wide enough to learn it (width 96, 4 layers), for trying a training change in minutes on a CPU
    "lab": ModelPreset(name="lab", patch_size=(2, 4, 4), **{
        **_TINY, "num_attention_heads": 4, "attention_head_dim": 24, "ffn_dim": 384, "num_layers": 4,
        "encoder_dim": 64, "encoder_layers": 2, "encoder_heads": 4, "encoder_ff": 128,
    }),
}

# Wan2.1-T2V-1.3B transformer sizes (diffusers config of Wan-AI/Wan2.1-T2V-1.3B-Diffusers).
WAN_1_3B = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=12,
    attention_head_dim=128,
    in_channels=16,
    out_channels=16,
    text_dim=4096,
    freq_dim=256,
    ffn_dim=8960,
    num_layers=30,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    eps=1e-6,
    rope_max_seq_len=1024,
)


def get_preset(name: str) -> ModelPreset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
    return PRESETS[name]


def build_pipeline(preset: str | ModelPreset, words: Iterable[str], seed: int = 0, **changes):
    """A randomly initialised pipeline of ``preset`` with a word-level vocabulary over ``words``;
    ``changes`` replace fields of the preset (e.g. ``position_features=4``)."""
    from ..pipeline import UniViGUPipeline
    from .autoencoder import VideoAutoencoder
    from .codec import PixelCodec
    from .prompt_encoder import build_t5_encoder
    from .tokenizer import build_word_tokenizer
    from .transformer import UniViGUTransformer3DModel

    p = get_preset(preset) if isinstance(preset, str) else preset
    p = replace(p, **changes) if changes else p
    if p.codec not in ("autoencoder", "pixel"):
        raise ValueError(f"preset {p.name!r} asks for codec {p.codec!r}; choose 'autoencoder' or 'pixel'.")
    torch.manual_seed(seed)
    if p.codec == "autoencoder":
        codec = VideoAutoencoder(latent_channels=p.latent_channels, width=p.codec_width, num_blocks=p.codec_blocks).eval()
    else:
        codec = PixelCodec()
    channels = codec.latent_shape(p.num_frames, p.height, p.width)[0]
    tokenizer = build_word_tokenizer(words)
    vocab_size = len(tokenizer)
    text_encoder = build_t5_encoder(
        vocab_size, d_model=p.encoder_dim, num_layers=p.encoder_layers, num_heads=p.encoder_heads, d_ff=p.encoder_ff
    ).eval()
    transformer = UniViGUTransformer3DModel(
        patch_size=p.patch_size,
        num_attention_heads=p.num_attention_heads,
        attention_head_dim=p.attention_head_dim,
        in_channels=channels,
        out_channels=channels,
        text_dim=p.encoder_dim,
        freq_dim=256,
        ffn_dim=p.ffn_dim,
        num_layers=p.num_layers,
        rope_max_seq_len=max(64, p.num_frames, p.height, p.width),
        vocab_size=vocab_size,
        mask_token_id=tokenizer.mask_token_id,
        text_ffn_dim=p.text_ffn_dim,
        shared_ffn=p.shared_ffn,
        max_text_len=p.max_text_len,
        prediction_type=p.prediction_type,
        position_features=p.position_features,
    ).eval()
    return UniViGUPipeline(
        transformer=transformer,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        codec=codec,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=p.shift),
        fps=p.fps,
        num_frames=p.num_frames,
        height=p.height,
        width=p.width,
        max_text_len=p.max_text_len,
        max_prompt_len=p.max_prompt_len,
        num_inference_steps=p.num_inference_steps,
        caption_steps=p.caption_steps,
        caption_reread_period=p.caption_reread_period,
        caption_verify_weight=p.caption_verify_weight,
        caption_verify_max_texts=p.caption_verify_max_texts,
        caption_verify_draws=p.caption_verify_draws,
        guidance_scale=p.guidance_scale,
        text_source=p.text_source,
        text_exponent=p.text_exponent,
        take_judge=p.take_judge,
    )
