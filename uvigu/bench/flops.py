"""FLOPs of one denoiser forward: an analytic count, and a measured one to check it against.

Counts are multiply–add pairs × 2 over the matrix products (linears, the patch convolution,
attention's QKᵀ and AV), the convention of ``torch.utils.flop_counter``; norms, RoPE, softmax and
elementwise work are left out (a few % at our sizes).

Sizes: b batch, n video tokens, l text tokens, s prompt-encoder tokens, d model width, P values per
video patch (channels × patch volume), F / F_t video / text FFN width, V vocabulary, k frequency
features of the timestep embedding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count


@dataclass(frozen=True)
class ForwardShape:
    """The token counts one forward sees."""

    batch: int  # b
    video_tokens: int  # n
    text_tokens: int  # l (0: plain Wan, or the unified model without a text stream)
    prompt_tokens: int  # s


def video_tokens(patch_size: tuple[int, int, int], latent_frames: int, latent_height: int, latent_width: int) -> int:
    """Number of video tokens n of a latent clip (f, h, w) cut into ``patch_size`` patches."""
    p_t, p_h, p_w = patch_size
    return (latent_frames // p_t) * (latent_height // p_h) * (latent_width // p_w)


def transformer_flops(config: Mapping[str, Any], shape: ForwardShape, *, text_stream: bool = True) -> int:
    """FLOPs of one forward of a Wan-style transformer with the config ``config``.

    ``config``: a ``UniViGUTransformer3DModel`` or ``WanTransformer3DModel`` config (the keys both
    share, plus ``vocab_size`` / ``text_ffn_dim`` / ``shared_ffn`` when ``text_stream``).
    ``text_stream=False`` counts diffusers' plain Wan transformer (no text timestep embedding and
    no text head).
    """
    b, n, s = shape.batch, shape.video_tokens, shape.prompt_tokens
    l = shape.text_tokens if text_stream else 0
    d = config["num_attention_heads"] * config["attention_head_dim"]
    k = config["freq_dim"]
    patch = math.prod(config["patch_size"])
    p_in, p_out = config["in_channels"] * patch, (config.get("out_channels") or config["in_channels"]) * patch
    ffn = config["ffn_dim"]
    text_ffn = ffn if not text_stream or config.get("shared_ffn") else (config.get("text_ffn_dim") or ffn)
    length = n + l  # the joint sequence

    def mm(rows: int, inner: int, cols: int) -> int:
        return 2 * rows * inner * cols

    time_embedding = mm(b, k, d) + mm(b, d, d) + mm(b, d, 6 * d)  # linear_1, linear_2, time_proj
    total = mm(b * n, p_in, d)  # patch embedding
    total += time_embedding + mm(b * s, config["text_dim"], d) + mm(b * s, d, d)  # video σ + prompt projection
    per_block = (
        4 * mm(b * length, d, d)  # self-attention q, k, v, o
        + 2 * mm(b * length, d, length)  # QKᵀ and AV over the joint sequence
        + 2 * mm(b * length, d, d)  # cross-attention q, o
        + 2 * mm(b * s, d, d)  # cross-attention k, v on the prompt states
        + 2 * mm(b * length, d, s)  # cross-attention QKᵀ and AV
        + 2 * mm(b * n, d, ffn)  # video FFN (up, down)
        + 2 * mm(b * l, d, text_ffn)  # text FFN
    )
    total += config["num_layers"] * per_block
    total += mm(b * n, d, p_out)  # video head
    if text_stream:
        total += time_embedding + mm(b * l, d, config["vocab_size"])  # text σ embedding, text head
    return total


def _cpu_flash_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# torch's counter has no formula for the CPU kernel of scaled_dot_product_attention (torch 2.13);
# without it attention, a third of our forward, would count as free.
_EXTRA_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_attention_flops}


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs ``fn()`` executes, as measured by ``torch.utils.flop_counter.FlopCounterMode``."""
    counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS)
    with counter:
        fn()
    return counter.get_total_flops()
