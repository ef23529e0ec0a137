"""The prompt encoder: token ids → the states the transformer cross-attends to.

Small models use a T5-style encoder (``transformers.T5EncoderModel``) over the word-level tokenizer,
trained with the transformer; Wan-scale models use the pretrained UMT5 encoder. Either way padded
positions are zeroed, as diffusers' ``WanPipeline`` does, so the states of a prompt do not depend
on how far it is padded.

Tensor vocabulary: b batch, s encoder tokens, e encoder width.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase, T5Config, T5EncoderModel


def build_t5_encoder(
    vocab_size: int, *, d_model: int = 128, num_layers: int = 2, num_heads: int = 4, d_ff: int = 256
) -> T5EncoderModel:
    """A small T5 encoder built in code (no download) for word-level vocabularies."""
    config = T5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=d_model // num_heads,
        d_ff=d_ff,
        num_layers=num_layers,
        num_heads=num_heads,
        feed_forward_proj="gated-gelu",
        dropout_rate=0.0,
        relative_attention_num_buckets=16,
        relative_attention_max_distance=32,
        pad_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=0,
    )
    return T5EncoderModel(config)


def encode_prompt(
    text_encoder: T5EncoderModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    max_length: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """States (b, max_length, e) for ``prompts``, zero beyond each prompt's tokens."""
    batch = tokenizer(
        list(prompts),
        padding="max_length",
        max_length=max_length,
        truncation=True,
        add_special_tokens=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    ids = batch["input_ids"].to(device)
    mask = batch["attention_mask"].to(device)
    states = text_encoder(ids, attention_mask=mask).last_hidden_state
    states = states * mask.unsqueeze(-1).to(states.dtype)
    return states if dtype is None else states.to(dtype)
