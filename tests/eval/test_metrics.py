import math

import pytest

from uvigu.data.shapes import make_example
from uvigu.eval.metrics import bleu4, caption_tokens, cider_d


def test_tokens_are_lowercase_words_without_punctuation():
    assert caption_tokens("A Red circle, while a BLUE square.") == ["a", "red", "circle", "while", "a", "blue", "square"]


def test_bleu_identical_is_one():
    captions = [make_example(i).caption for i in range(20)]
    assert bleu4(captions, [[c] for c in captions]) == pytest.approx(1.0)
    # Case and punctuation do not count.
    assert bleu4(["The cat sat on the mat."], [["the cat sat on the mat"]]) == pytest.approx(1.0)


def test_bleu_hand_computed_precisions():
    # p1 = 5/6, p2 = 3/5, p3 = 2/4, p4 = 1/3; equal lengths, so no brevity penalty.
    expected = (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    assert bleu4(["the cat sat on a mat"], [["the cat sat on the mat"]]) == pytest.approx(expected)


def test_bleu_brevity_penalty_and_closest_reference_length():
    # Every n-gram matches; 5 candidate words against a 6-word reference: BP = exp(1 - 6/5).
    assert bleu4(["the cat sat on the"], [["the cat sat on the mat"]]) == pytest.approx(math.exp(-0.2))
    # References of 4 and 6 words are equally close to 5; the shorter one is used: no penalty.
    assert bleu4(["the cat sat on the"], [["the cat sat on", "the cat sat on the mat"]]) == pytest.approx(1.0)


def test_bleu_clips_repeated_words_and_needs_every_order():
    # 'the' x 6 against 'the cat ...': p1 = 2/6 after clipping, but no bigram matches: 0.
    assert bleu4(["the the the the the the"], [["the cat sat on the mat"]]) == 0.0
    assert bleu4(["a b c"], [["a b c"]]) == 0.0  # shorter than one 4-gram


def test_bleu_is_a_corpus_statistic():
    candidates = ["the cat sat on a mat", "the dog ran in the park"]
    references = [["the cat sat on the mat"], ["the dog ran in the park"]]
    # Sums of matches over totals: p1 = 11/12, p2 = 8/10, p3 = 6/8, p4 = 4/6.
    expected = (11 / 12 * 8 / 10 * 6 / 8 * 4 / 6) ** 0.25
    assert bleu4(candidates, references) == pytest.approx(expected)


def test_cider_hand_computed():
    # Two documents, so idf weights are log 2 for n-grams of one reference set (l below).
    # Item 1 is identical: cosine 1 for unigrams and bigrams, no 3- or 4-grams: 10 * 2/4 = 5.
    # Item 2, 'c e' vs 'c d': unigram cosine l^2 / (sqrt(2) l)^2 = 1/2, no bigram overlap: 1.25.
    assert cider_d(["a b", "c e"], [["a b"], ["c d"]]) == pytest.approx((5.0 + 1.25) / 2)


def test_cider_clips_repetition_and_penalizes_length():
    # 'a b a b' vs 'a b': clipped unigram cosine 2l^2 / (sqrt(8) l * sqrt(2) l) = 1/2, bigram
    # cosine l^2 / (sqrt(5) l * l) = 1/sqrt(5), no 3-grams in the reference; length 4 vs 2.
    penalty = math.exp(-(2**2) / (2 * 6.0**2))
    first = 10 * (0.5 + 1 / math.sqrt(5)) / 4 * penalty
    assert cider_d(["a b a b", "c d"], [["a b"], ["c d"]]) == pytest.approx((first + 5.0) / 2)


def test_cider_identical_is_high_and_unrelated_is_zero():
    examples = [make_example(i) for i in range(30)]
    references = [[ex.caption, ex.prompt] for ex in examples]
    identical = cider_d([ex.caption for ex in examples], references)
    assert identical > 4.0
    # Every clip's own single caption as reference gives the maximum, 10.
    assert cider_d([ex.caption for ex in examples], [[ex.caption] for ex in examples]) == pytest.approx(10.0)
    unrelated = cider_d(["zebra quantum piano melts" for _ in examples], references)
    assert unrelated == pytest.approx(0.0, abs=1e-9)
    # A caption of another clip scores far below the right one.
    shifted = cider_d([examples[(i + 1) % 30].caption for i in range(30)], references)
    assert shifted < identical / 2


@pytest.mark.parametrize("metric", [bleu4, cider_d])
def test_metrics_reject_malformed_input(metric):
    with pytest.raises(ValueError):
        metric(["a b"], [["a b"], ["c d"]])
    with pytest.raises(ValueError):
        metric([], [])
    with pytest.raises(ValueError):
        metric(["a b"], [[]])
