import torch

from uvigu.models.tokenizer import (
    build_word_tokenizer,
    count_tokens,
    decode_text,
    encode_text,
    is_word_level,
    unknown_words,
)

import pytest

WORDS = ["a", "red", "circle", "moves", "to", "the", "right", ",", ".", "while"]


@pytest.fixture(scope="module")
def tok():
    return build_word_tokenizer(WORDS)


def test_special_tokens_come_first(tok):
    assert [tok.pad_token_id, tok.unk_token_id, tok.eos_token_id, tok.mask_token_id] == [0, 1, 2, 3]
    assert len(tok) == 4 + len(WORDS) and is_word_level(tok)


def test_round_trip_with_punctuation_and_case(tok):
    text = "a red circle moves to the right, while a red circle moves."
    ids, mask = encode_text(tok, [text], 24)
    assert ids.shape == (1, 24) and mask.sum() == count_tokens(tok, text) + 1
    assert ids[0, mask[0].sum() - 1] == tok.eos_token_id and (ids[0, mask[0].sum():] == tok.pad_token_id).all()
    assert decode_text(tok, ids[0].tolist()) == text
    assert decode_text(tok, encode_text(tok, ["A RED Circle"], 8)[0][0].tolist()) == "a red circle"


def test_decode_stops_at_end_and_shows_masks(tok):
    ids = [tok.convert_tokens_to_ids("red"), tok.mask_token_id, tok.eos_token_id, tok.convert_tokens_to_ids("circle")]
    assert decode_text(tok, ids, mask_token_id=tok.mask_token_id) == "red _"


def test_unknown_words_are_named_once_in_order(tok):
    assert unknown_words(tok, "a Purple circle, a purple zebra.") == ["purple", "zebra"]
    assert unknown_words(tok, "a red circle.") == []


def test_too_long_text_is_refused(tok):
    with pytest.raises(ValueError, match="at most 3 fit"):
        encode_text(tok, ["a red circle moves"], 4)


def test_saves_and_loads_as_a_hugging_face_tokenizer(tok, tmp_path):
    from transformers import AutoTokenizer

    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded.get_vocab() == tok.get_vocab()
    assert torch.equal(encode_text(loaded, ["a red circle"], 6)[0], encode_text(tok, ["a red circle"], 6)[0])


def test_decode_keeps_at_most_max_tokens_of_text_padding_aside(tok):
    red, circle, moves = (tok.convert_tokens_to_ids(w) for w in ("red", "circle", "moves"))
    ids = [red, tok.pad_token_id, circle, tok.mask_token_id, moves]  # a stream with no end token
    assert decode_text(tok, ids, mask_token_id=tok.mask_token_id, max_tokens=3) == "red circle _"
    assert decode_text(tok, ids, max_tokens=None) == "red circle [MASK] moves"


def test_known_words_are_the_vocabulary_without_special_tokens_or_punctuation():
    from uvigu.models.tokenizer import build_word_tokenizer, known_words

    tokenizer = build_word_tokenizer(["red", "circle", ".", ",", "moves"])
    assert known_words(tokenizer) == ["circle", "moves", "red"]


def test_a_subword_tokenizer_has_no_list_of_known_words():
    from tests.wan.tiny_wan import tiny_tokenizer
    from uvigu.models.tokenizer import known_words

    assert known_words(tiny_tokenizer()) is None
