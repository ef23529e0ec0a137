"""Text ↔ token ids for both the prompt encoder and the text stream.

Small models use a word-level tokenizer (``tokenizers`` WordLevel, wrapped as a Hugging Face
``PreTrainedTokenizerFast`` so it saves, loads and plugs in wherever the pipeline expects a tokenizer);
Wan-scale models use UMT5's SentencePiece tokenizer through the same functions.

Tensor vocabulary: b batch, l text tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

PAD, UNK, END, MASK = "[PAD]", "[UNK]", "[END]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, END, MASK)  # ids 0, 1, 2, 3 in a word-level vocabulary


def build_word_tokenizer(words: Iterable[str]) -> PreTrainedTokenizerFast:
    """A lowercase word-level tokenizer over ``words``; punctuation marks are their own tokens."""
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for word in sorted(set(words) - set(SPECIAL_TOKENS)):
        vocab[word] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation("isolated")]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=PAD, unk_token=UNK, eos_token=END, mask_token=MASK
    )


def is_word_level(tokenizer: PreTrainedTokenizerBase) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend is not None and isinstance(backend.model, models.WordLevel)


def split_words(tokenizer: PreTrainedTokenizerBase, text: str) -> list[str]:
    """The words the tokenizer sees in ``text`` (after normalisation), in order."""
    backend = tokenizer.backend_tokenizer
    normalized = backend.normalizer.normalize_str(text) if backend.normalizer else text
    return [w for w, _ in backend.pre_tokenizer.pre_tokenize_str(normalized)]


def unknown_words(tokenizer: PreTrainedTokenizerBase, text: str) -> list[str]:
    """Words of ``text`` a word-level tokenizer maps to ``[UNK]`` (each once, in order).

    Subword tokenizers (UMT5) know every word, so the list is empty for them.
    """
    if not is_word_level(tokenizer):
        return []
    vocab = tokenizer.get_vocab()
    unknown: list[str] = []
    for word in split_words(tokenizer, text):
        if word not in vocab and word not in unknown:
            unknown.append(word)
    return unknown


def known_words(tokenizer: PreTrainedTokenizerBase) -> list[str] | None:
    """The words a word-level tokenizer knows, sorted, without its special tokens and punctuation
    marks; ``None`` for a subword tokenizer (UMT5), which spells out every word."""
    if not is_word_level(tokenizer):
        return None
    return sorted(word for word in tokenizer.get_vocab() if word not in SPECIAL_TOKENS and any(c.isalnum() for c in word))


def count_tokens(tokenizer: PreTrainedTokenizerBase, text: str) -> int:
    """Number of tokens of ``text`` without special tokens."""
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_text(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (b, length) of ``texts``, each followed by the end token then padding.

    Returns ``(ids, mask)`` where mask (b, length) is True on text and end tokens. Raises
    ``ValueError`` when a text does not fit.
    """
    pad_id, end_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    ids = torch.full((len(texts), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(texts), length), dtype=torch.bool)
    for i, text in enumerate(texts):
        tokens = tokenizer(text, add_special_tokens=False)["input_ids"] + [end_id]
        if len(tokens) > length:
            raise ValueError(
                f"the text is {len(tokens) - 1} tokens long; at most {length - 1} fit. Shorten it: {text[:60]!r}…"
            )
        ids[i, : len(tokens)] = torch.tensor(tokens)
        mask[i, : len(tokens)] = True
    return ids, mask


def decode_text(
    tokenizer: PreTrainedTokenizerBase, ids: Sequence[int], mask_token_id: int | None = None,
    max_tokens: int | None = None,
) -> str:
    """Text of one id sequence: cut at the first end token, drop padding, keep at most ``max_tokens``
    of the rest; ``[MASK]`` shows as ``_``."""
    ids = [int(i) for i in ids]
    end_id = tokenizer.eos_token_id
    if end_id in ids:
        ids = ids[: ids.index(end_id)]
    words: list[str] = []
    special = {tokenizer.pad_token_id, end_id}
    for i in ids:
        if i in special:
            continue
        if mask_token_id is not None and i == mask_token_id:
            words.append("_")
        elif i >= len(tokenizer):
            words.append("_")
        else:
            words.append(tokenizer.convert_ids_to_tokens(i))
    words = words[:max_tokens]
    if is_word_level(tokenizer):
        text = " ".join(words)
        return text.replace(" ,", ",").replace(" .", ".").strip()
    # SentencePiece pieces: let the tokenizer join them (▁ marks word starts)
    return tokenizer.convert_tokens_to_string(words).strip()
