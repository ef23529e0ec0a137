"""UniViGUTransformer3DModel: Wan2.1's diffusion transformer extended with a text stream.

Every block runs one self-attention over ``[video ; text]`` with the shared Wan projections
(3-D RoPE on video, 1-D RoPE on text, padded text masked out as keys), one cross-attention of both
streams to the prompt-encoder states, then a feed-forward network and adaLN modulation *per
modality* (the paper's "modality-driven MoE": routing by modality, no router), each modality with
its own timestep embedding because the two carry different noise levels. With zero text tokens the
video path is exactly diffusers' ``WanTransformer3DModel`` (same module names, same weights).

Tensor vocabulary: b batch, c channels, f frames, h/w height and width of the latents, n video
tokens, l text tokens, s prompt-encoder tokens, d model width, V vocabulary.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import FeedForward
from diffusers.models.embeddings import (
    PixArtAlphaTextProjection,
    TimestepEmbedding,
    Timesteps,
    get_1d_rotary_pos_embed,
)
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.normalization import FP32LayerNorm
from diffusers.models.transformers.transformer_wan import WanAttention, WanAttnProcessor, WanRotaryPosEmbed

from ..flows.sigma import sigma_to_timestep


class TransformerOutput(NamedTuple):
    video_velocity: torch.Tensor  # (b, c, f, h, w)
    text_logits: torch.Tensor  # (b, l, V)


# ---------------------------------------------------------------------------------------------
# Embedders
# ---------------------------------------------------------------------------------------------


class TimeEmbedding(nn.Module):
    """σ → (temb (b, d), six adaLN vectors (b, 6, d)); same layout as Wan's condition embedder."""

    def __init__(self, dim: int, freq_dim: int):
        super().__init__()
        self.timesteps_proj = Timesteps(num_channels=freq_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedder = TimestepEmbedding(in_channels=freq_dim, time_embed_dim=dim)
        self.act_fn = nn.SiLU()
        self.time_proj = nn.Linear(dim, dim * 6)

    def forward(self, sigma: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.timesteps_proj(sigma_to_timestep(sigma))
        t = t.to(next(self.time_embedder.parameters()).dtype)
        temb = self.time_embedder(t).to(dtype)
        return temb, self.time_proj(self.act_fn(temb)).unflatten(1, (6, -1))


def place_features(frames: int, height: int, width: int, k: int, device=None) -> torch.Tensor:
    """Where each token of a (frames, height, width) token grid sits in the clip: (n, 6k) features,
    tokens in the patch embedding's order (frame-major).

    Per axis, the token's centre u in (0, 1) — a fraction of the clip's length, height or width, so
    "the left third" or "the last frames" mean the same at any size — as sin(πju) and cos(πju) for
    j = 1..k (cos(πu) alone tells left from right). RoPE, Wan's only position signal, gives
    attention the *relative* offsets of tokens: on a clip that looks the same everywhere — pure
    noise, on average — every video token gets the same output, and the only absolute reference
    left is the text tokens' own RoPE positions in the joint attention. Putting an object where a
    caption says it starts, or making its expected path run the way the text says, needs to know
    where a token is (``uvigu probe --means`` measures whether a model does).
    """
    axes = []
    for n in (frames, height, width):
        u = (torch.arange(n, device=device, dtype=torch.float32) + 0.5) / n
        angle = math.pi * u[:, None] * torch.arange(1, k + 1, device=device, dtype=torch.float32)
        axes.append(torch.cat([angle.sin(), angle.cos()], dim=-1))  # (n, 2k)
    t, h, w = axes
    grid = torch.cat(
        [
            t[:, None, None].expand(frames, height, width, -1),
            h[None, :, None].expand(frames, height, width, -1),
            w[None, None, :].expand(frames, height, width, -1),
        ],
        dim=-1,
    )
    return grid.reshape(frames * height * width, 6 * k)


def rotary_1d(head_dim: int, length: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """1-D RoPE tables (l, head_dim) for the text positions 0..l-1, interleaved as Wan's 3-D tables."""
    return get_1d_rotary_pos_embed(
        head_dim, length, theta, use_real=True, repeat_interleave_real=True, freqs_dtype=torch.float64
    )


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (b, n, heads, head_dim) by tables (1, n, 1, head_dim); Wan's interleaved convention."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    cos, sin = cos[..., 0::2], sin[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out.type_as(x)


def _half_to_interleaved(x: torch.Tensor, start: int) -> torch.Tensor:
    """Reorder head channels of positions ``start:`` from rotate-half pairs (j, j + D/2) to (2j, 2j + 1)."""
    text = x[:, start:].unflatten(-1, (2, -1)).transpose(-1, -2).flatten(-2)
    return torch.cat([x[:, :start], text], dim=1)


def _interleaved_to_half(x: torch.Tensor, start: int) -> torch.Tensor:
    text = x[:, start:].unflatten(-1, (-1, 2)).transpose(-1, -2).flatten(-2)
    return torch.cat([x[:, :start], text], dim=1)


def joint_self_attention(
    attn: WanAttention,
    x: torch.Tensor,
    rotary: tuple[torch.Tensor, torch.Tensor],
    key_mask: torch.Tensor | None,
    half_rope_from: int | None = None,
) -> torch.Tensor:
    """Self-attention over the joint sequence x (b, n + l, d) with Wan's shared projections.

    ``half_rope_from``: positions from this index on (the text) rotate in the rotate-half layout
    of the official release (flow_matching's text RoPE) instead of Wan's interleaved one; the
    channels are reordered around the interleaved rotation, which is the same rotation.
    """
    q = attn.norm_q(attn.to_q(x)).unflatten(2, (attn.heads, -1))
    k = attn.norm_k(attn.to_k(x)).unflatten(2, (attn.heads, -1))
    v = attn.to_v(x).unflatten(2, (attn.heads, -1))
    if half_rope_from is None:
        q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
    else:
        q, k = (
            _interleaved_to_half(apply_rotary(_half_to_interleaved(t, half_rope_from), *rotary), half_rope_from)
            for t in (q, k)
        )
    mask = None if key_mask is None else key_mask[:, None, None, :]  # (b, 1, 1, n + l)
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask)
    out = out.transpose(1, 2).flatten(2, 3).type_as(q)  # (b, n + l, d)
    return attn.to_out[1](attn.to_out[0](out))


# ---------------------------------------------------------------------------------------------
# Block
# ---------------------------------------------------------------------------------------------


class UniViGUBlock(nn.Module):
    """A Wan block whose self-attention and cross-attention are shared by video and text tokens,
    with a feed-forward network and adaLN table per modality."""

    def __init__(
        self,
        dim: int,
        ffn_dim: int,
        text_ffn_dim: int,
        num_heads: int,
        cross_attn_norm: bool,
        eps: float,
        shared_ffn: bool,
        text_rope_layout: str = "interleaved",
    ):
        super().__init__()
        self.half_text_rope = text_rope_layout == "half"
        self.norm1 = FP32LayerNorm(dim, eps, elementwise_affine=False)
        # attn1's processor is not used: joint_self_attention runs it over [video ; text].
        self.attn1 = WanAttention(dim=dim, heads=num_heads, dim_head=dim // num_heads, eps=eps, processor=WanAttnProcessor())
        self.attn2 = WanAttention(
            dim=dim,
            heads=num_heads,
            dim_head=dim // num_heads,
            eps=eps,
            cross_attention_dim_head=dim // num_heads,
            processor=WanAttnProcessor(),
        )
        self.norm2 = FP32LayerNorm(dim, eps, elementwise_affine=True) if cross_attn_norm else nn.Identity()
        self.ffn = FeedForward(dim, inner_dim=ffn_dim, activation_fn="gelu-approximate")
        self.norm3 = FP32LayerNorm(dim, eps, elementwise_affine=False)
        self.scale_shift_table = nn.Parameter(torch.randn(1, 6, dim) / dim**0.5)
        # Text stream: its own modulation table, and its own FFN unless the ablation shares one.
        self.ffn_t = None if shared_ffn else FeedForward(dim, inner_dim=text_ffn_dim, activation_fn="gelu-approximate")
        self.scale_shift_table_t = nn.Parameter(torch.randn(1, 6, dim) / dim**0.5)

    @property
    def text_ffn(self) -> FeedForward:
        return self.ffn if self.ffn_t is None else self.ffn_t

    def forward(
        self,
        video: torch.Tensor,
        text: torch.Tensor,
        context: torch.Tensor,
        mod_v: torch.Tensor,
        mod_t: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        key_mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n = video.shape[1]
        sv = (self.scale_shift_table + mod_v.float()).chunk(6, dim=1)  # 6 × (b, 1, d)
        st = (self.scale_shift_table_t + mod_t.float()).chunk(6, dim=1)
        shift_v, scale_v, gate_v, c_shift_v, c_scale_v, c_gate_v = sv
        shift_t, scale_t, gate_t, c_shift_t, c_scale_t, c_gate_t = st

        # 1. shared self-attention over [video ; text]
        x = torch.cat([video, text], dim=1)
        normed = self.norm1(x.float())
        normed = torch.cat(
            [normed[:, :n] * (1 + scale_v) + shift_v, normed[:, n:] * (1 + scale_t) + shift_t], dim=1
        ).type_as(x)
        attn = joint_self_attention(self.attn1, normed, rotary, key_mask, n if self.half_text_rope else None)
        gate = torch.cat([gate_v.expand(-1, n, -1), gate_t.expand(-1, x.shape[1] - n, -1)], dim=1)
        x = (x.float() + attn * gate).type_as(x)

        # 2. shared cross-attention of both streams to the prompt
        x = x + self.attn2(self.norm2(x.float()).type_as(x), context, None, None)

        # 3. per-modality feed-forward
        normed = self.norm3(x.float())
        video, text = x[:, :n], x[:, n:]
        ff_v = self.ffn((normed[:, :n] * (1 + c_scale_v) + c_shift_v).type_as(x))
        video = (video.float() + ff_v.float() * c_gate_v).type_as(x)
        if text.shape[1]:
            ff_t = self.text_ffn((normed[:, n:] * (1 + c_scale_t) + c_shift_t).type_as(x))
            text = (text.float() + ff_t.float() * c_gate_t).type_as(x)
        return video, text


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------


class UniViGUTransformer3DModel(ModelMixin, ConfigMixin):
    """The unified video + text denoiser (see the module docstring)."""

    _supports_gradient_checkpointing = True
    _no_split_modules = ["UniViGUBlock"]
    # Wan's, and the text stream's modulation table beside the video's (diffusers matches whole name parts)
    _keep_in_fp32_modules = ["time_embedder", "scale_shift_table", "scale_shift_table_t", "norm1", "norm2", "norm3"]

    @register_to_config
    def __init__(
        self,
        patch_size: tuple[int, ...] = (1, 2, 2),  # (t, h, w) patch of the Conv3d embedding
        num_attention_heads: int = 12,  # Wan2.1-1.3B: 12 heads × 128
        attention_head_dim: int = 128,
        in_channels: int = 16,  # latent channels (3 for the pixel codec, 8 for the shipped model's)
        out_channels: int = 16,
        text_dim: int = 4096,  # width of the prompt-encoder states (UMT5-XXL: 4096)
        freq_dim: int = 256,  # sinusoidal timestep features
        ffn_dim: int = 8960,
        num_layers: int = 30,
        cross_attn_norm: bool = True,
        qk_norm: str | None = "rms_norm_across_heads",  # kept for Wan config compatibility
        eps: float = 1e-6,
        rope_max_seq_len: int = 1024,
        vocab_size: int = 256385,  # text head output size, the mask id included
        mask_token_id: int = 256384,  # [MASK]: the masked text source; never predicted
        text_ffn_dim: int | None = None,  # None: same as ffn_dim (the paper copies the video FFN)
        shared_ffn: bool = False,  # ablation: one FFN for both modalities
        max_text_len: int = 1024,  # longest text stream (size of the 1-D RoPE table)
        prediction_type: str = "velocity",  # "velocity" (Wan) or "sample": see _to_velocity
        text_rope_layout: str = "interleaved",  # "half": the official release's rotate-half text RoPE
        text_head_norm_affine: bool = False,  # True: the official text head's LayerNorm (learned weight, eps 1e-5)
        position_features: int = 0,  # > 0: where each video token sits in the clip, added (see place_features)
    ):
        super().__init__()
        if prediction_type not in ("velocity", "sample"):
            raise ValueError(f"prediction_type must be 'velocity' or 'sample', got {prediction_type!r}.")
        if text_rope_layout not in ("interleaved", "half"):
            raise ValueError(f"text_rope_layout must be 'interleaved' or 'half', got {text_rope_layout!r}.")
        if position_features < 0:
            raise ValueError(f"position_features must be 0 (off) or positive, got {position_features}.")
        dim = num_attention_heads * attention_head_dim
        text_ffn_dim = ffn_dim if text_ffn_dim is None else text_ffn_dim

        # Video stream (Wan's names, so Wan weights load unchanged)
        self.rope = WanRotaryPosEmbed(attention_head_dim, patch_size, rope_max_seq_len)
        self.patch_embedding = nn.Conv3d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.condition_embedder = _WanConditionEmbedder(dim, freq_dim, text_dim)
        # Absolute place of each video token (off for Wan): a learned map of place_features, zero at init
        self.pos_embedding = nn.Linear(6 * position_features, dim) if position_features else None
        # Text stream
        self.token_embedding = nn.Embedding(vocab_size, dim)
        self.time_embedding_t = TimeEmbedding(dim, freq_dim)
        cos_t, sin_t = rotary_1d(attention_head_dim, max_text_len)
        self.register_buffer("text_freqs_cos", cos_t, persistent=False)
        self.register_buffer("text_freqs_sin", sin_t, persistent=False)

        self.blocks = nn.ModuleList(
            [
                UniViGUBlock(
                    dim, ffn_dim, text_ffn_dim, num_attention_heads, cross_attn_norm, eps, shared_ffn, text_rope_layout
                )
                for _ in range(num_layers)
            ]
        )

        # Heads: Wan's video head; a text head with its own adaLN
        self.norm_out = FP32LayerNorm(dim, eps, elementwise_affine=False)
        self.proj_out = nn.Linear(dim, out_channels * math.prod(patch_size))
        self.scale_shift_table = nn.Parameter(torch.randn(1, 2, dim) / dim**0.5)
        self.norm_out_t = (
            FP32LayerNorm(dim, 1e-5, elementwise_affine=True, bias=False)
            if text_head_norm_affine
            else FP32LayerNorm(dim, eps, elementwise_affine=False)
        )
        self.proj_out_t = nn.Linear(dim, vocab_size)
        self.scale_shift_table_t = nn.Parameter(torch.randn(1, 2, dim) / dim**0.5)

        self.gradient_checkpointing = False
        self._init_weights()

    def _init_weights(self) -> None:
        """All initialisation in one place: DiT-style (xavier linears, zero output heads)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        for embedder in (self.condition_embedder, self.time_embedding_t):
            nn.init.normal_(embedder.time_embedder.linear_1.weight, std=0.02)
            nn.init.normal_(embedder.time_embedder.linear_2.weight, std=0.02)
        for head in (self.proj_out, self.proj_out_t, self.pos_embedding):
            if head is not None:
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)

    # -----------------------------------------------------------------------------------------

    def forward(
        self,
        video_latents: torch.Tensor,
        text_ids: torch.Tensor,
        video_sigma: torch.Tensor,
        text_sigma: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        text_mask: torch.Tensor | None = None,
    ) -> TransformerOutput:
        """Predict the video velocity and the clean-text logits.

        Args:
            video_latents: (b, c, f, h, w) noisy latents at ``video_sigma``.
            text_ids: (b, l) token ids at ``text_sigma``; l may be 0.
            video_sigma, text_sigma: (b,) noise levels in [0, 1] (1 = noise, 0 = clean).
            encoder_hidden_states: (b, s, text_dim) prompt-encoder states (zeros for "no prompt").
            text_mask: (b, l) bool, False at padded text positions (masked out as keys).
        """
        b, _, f, h, w = video_latents.shape
        p_t, p_h, p_w = self.config.patch_size
        pf, ph, pw = f // p_t, h // p_h, w // p_w
        l = text_ids.shape[1]
        if l > self.config.max_text_len:
            raise ValueError(f"text stream of {l} tokens exceeds the model's {self.config.max_text_len}.")

        rope_v = self.rope(video_latents)  # 2 × (1, n, 1, head_dim)
        video = self.patch_embedding(video_latents).flatten(2).transpose(1, 2)  # (b, n, d)
        if self.pos_embedding is not None:
            places = place_features(pf, ph, pw, self.config.position_features, video.device)
            video = video + self.pos_embedding(places.to(self.pos_embedding.weight.dtype)).to(video.dtype)
        n = video.shape[1]
        text = self.token_embedding(text_ids).to(video.dtype)  # (b, l, d)
        rotary = (
            torch.cat([rope_v[0], self.text_freqs_cos[:l].to(rope_v[0])[None, :, None]], dim=1),
            torch.cat([rope_v[1], self.text_freqs_sin[:l].to(rope_v[1])[None, :, None]], dim=1),
        )
        key_mask = None
        if text_mask is not None and l and not bool(text_mask.all()):
            key_mask = torch.cat([torch.ones(b, n, dtype=torch.bool, device=video.device), text_mask.bool()], dim=1)

        temb_v, mod_v, context = self.condition_embedder(video_sigma, encoder_hidden_states, video.dtype)
        temb_t, mod_t = self.time_embedding_t(text_sigma, video.dtype)

        for block in self.blocks:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                video, text = self._gradient_checkpointing_func(
                    block, video, text, context, mod_v, mod_t, rotary, key_mask
                )
            else:
                video, text = block(video, text, context, mod_v, mod_t, rotary, key_mask)

        shift, scale = (self.scale_shift_table + temb_v.unsqueeze(1)).chunk(2, dim=1)
        video = (self.norm_out(video.float()) * (1 + scale) + shift).type_as(video)
        video = self.proj_out(video)
        video = video.reshape(b, pf, ph, pw, p_t, p_h, p_w, -1)
        video = video.permute(0, 7, 1, 4, 2, 5, 3, 6).flatten(6, 7).flatten(4, 5).flatten(2, 3)  # (b, c, f, h, w)

        shift_t, scale_t = (self.scale_shift_table_t + temb_t.unsqueeze(1)).chunk(2, dim=1)
        text = (self.norm_out_t(text.float()) * (1 + scale_t) + shift_t).type_as(text)
        return TransformerOutput(self._to_velocity(video, video_latents, video_sigma), self.proj_out_t(text))

    def _to_velocity(self, head: torch.Tensor, x_t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The video head's output as a velocity.

        Pixel-space models whose patches are wider than the model (2·8·8·3 = 384 values into 192
        channels) cannot carry the noise through, so they predict the clean clip x̂ and report
        v = (x_σ − x̂) / σ, with σ clipped at 0.05 as in JiT (Li & He, arXiv 2511.13720).
        """
        if self.config.prediction_type == "velocity":
            return head
        s = sigma.to(head.dtype).clamp_min(0.05).reshape(-1, 1, 1, 1, 1)
        return (x_t.to(head.dtype) - head) / s

    # -----------------------------------------------------------------------------------------

    @classmethod
    def from_wan(
        cls,
        wan_transformer: nn.Module,
        vocab_size: int,
        mask_token_id: int | None = None,
        *,
        shared_ffn: bool = False,
        max_text_len: int = 1024,
    ) -> "UniViGUTransformer3DModel":
        """Extend a diffusers ``WanTransformer3DModel`` into the unified model (how the paper starts).

        Every Wan weight is copied; the text FFN, modulation tables and timestep embedding start as
        copies of the video ones; the token embedding and the text head are new (the head zero-init,
        so the extended model starts with uniform text posteriors). Without ``mask_token_id`` one
        ``[MASK]`` id is appended after the tokenizer's ``vocab_size`` ids.
        """
        wc = wan_transformer.config
        if wc.get("image_dim") is not None or wc.get("added_kv_proj_dim") is not None:
            raise ValueError("only text-to-video Wan transformers (no image conditioning) can be extended.")
        if mask_token_id is None:
            mask_token_id, vocab_size = vocab_size, vocab_size + 1
        model = cls(
            patch_size=tuple(wc.patch_size),
            num_attention_heads=wc.num_attention_heads,
            attention_head_dim=wc.attention_head_dim,
            in_channels=wc.in_channels,
            out_channels=wc.out_channels or wc.in_channels,
            text_dim=wc.text_dim,
            freq_dim=wc.freq_dim,
            ffn_dim=wc.ffn_dim,
            num_layers=wc.num_layers,
            cross_attn_norm=wc.cross_attn_norm,
            qk_norm=wc.qk_norm,
            eps=wc.eps,
            rope_max_seq_len=wc.rope_max_seq_len,
            vocab_size=vocab_size,
            mask_token_id=mask_token_id,
            shared_ffn=shared_ffn,
            max_text_len=max_text_len,
        )
        wan_state = wan_transformer.state_dict()
        state = {}
        for key, value in wan_state.items():
            if key.startswith("condition_embedder.time_embedder.") or key.startswith("condition_embedder.time_proj."):
                state[key] = value
                state["time_embedding_t." + key.removeprefix("condition_embedder.")] = value
            elif key.startswith("condition_embedder.text_embedder."):
                state[key] = value
            elif ".ffn." in key:
                state[key] = value
                if not shared_ffn:
                    state[key.replace(".ffn.", ".ffn_t.")] = value
            elif key.endswith(".scale_shift_table") and key.startswith("blocks."):
                state[key] = value
                state[key + "_t"] = value
            else:
                state[key] = value
        state["scale_shift_table_t"] = wan_state["scale_shift_table"]
        own = model.state_dict()
        missing = set(own) - set(state)
        assert missing == {
            "token_embedding.weight",
            "proj_out_t.weight",
            "proj_out_t.bias",
        }, f"unexpected keys without a Wan source: {sorted(missing)}"
        state.update({k: own[k] for k in missing})
        model.load_state_dict({k: v.clone() for k, v in state.items()}, strict=True)
        dtype = wan_transformer.dtype  # not the first parameter: Wan keeps some tables in fp32
        return model if dtype == torch.float32 else model.to(dtype)


class _WanConditionEmbedder(TimeEmbedding):
    """Wan's condition embedder (video timestep + prompt projection), parameter names preserved."""

    def __init__(self, dim: int, freq_dim: int, text_dim: int):
        super().__init__(dim, freq_dim)
        self.text_embedder = PixArtAlphaTextProjection(text_dim, dim, act_fn="gelu_tanh")

    def forward(
        self, sigma: torch.Tensor, encoder_hidden_states: torch.Tensor, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        temb, mod = super().forward(sigma, dtype)
        return temb, mod, self.text_embedder(encoder_hidden_states.to(dtype))
