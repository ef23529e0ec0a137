"""Caption metrics, written here so evaluation needs no downloads.

* `bleu4`: corpus BLEU-4 (Papineni et al. 2002) with uniform weights, clipped n-gram counts
  and the brevity penalty against the closest reference length; no smoothing, so a corpus
  without a single matching 4-gram scores 0.
* `cider_d`: CIDEr-D (Vedantam et al. 2015) as the COCO caption evaluation code computes it:
  tf-idf weighted n-grams 1..4 with document frequencies over the reference sets, clipped
  cosine similarity, gaussian length penalty (sigma 6), averaged over references, x10.

Tokens: lowercase, punctuation dropped, split on whitespace (as COCO's tokenizer leaves them).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Sequence

_MAX_N = 4
_CIDER_SIGMA = 6.0


def caption_tokens(text: str) -> list[str]:
    """Lowercase words with punctuation removed."""
    return re.sub(r"[^\w\s]", " ", text.lower()).split()


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _check(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    if len(candidates) != len(references):
        raise ValueError(f"got {len(candidates)} candidates but {len(references)} reference lists")
    if not candidates:
        raise ValueError("need at least one candidate caption")
    if any(len(refs) == 0 for refs in references):
        raise ValueError("every candidate needs at least one reference caption")


def bleu4(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU-4 in [0, 1] of candidates[i] against the list references[i]."""
    _check(candidates, references)
    matches, totals = [0] * _MAX_N, [0] * _MAX_N
    cand_len = ref_len = 0
    for cand, refs in zip(candidates, references):
        c = caption_tokens(cand)
        rs = [caption_tokens(r) for r in refs]
        cand_len += len(c)
        # Closest reference length; ties go to the shorter one.
        ref_len += min((abs(len(r) - len(c)), len(r)) for r in rs)[1]
        for n in range(1, _MAX_N + 1):
            counts = _ngrams(c, n)
            max_ref: Counter = Counter()
            for r in rs:
                max_ref |= _ngrams(r, n)
            matches[n - 1] += sum(min(k, max_ref[g]) for g, k in counts.items())
            totals[n - 1] += max(len(c) - n + 1, 0)
    if cand_len == 0 or min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / _MAX_N
    brevity = 1.0 if cand_len > ref_len else math.exp(1.0 - ref_len / cand_len)
    return brevity * math.exp(log_precision)


def _tfidf(counts: list[Counter], doc_freq: Counter, log_docs: float) -> tuple[list[dict], list[float]]:
    vectors, norms = [], []
    for n_counts in counts:
        vec = {g: tf * (log_docs - math.log(max(1.0, doc_freq[g]))) for g, tf in n_counts.items()}
        vectors.append(vec)
        norms.append(math.sqrt(sum(v * v for v in vec.values())))
    return vectors, norms


def cider_d(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus CIDEr-D (mean over candidates) of candidates[i] against references[i].

    Document frequencies come from the reference sets of this corpus, so the score of a single
    candidate is 0 (log of one document); score a corpus of several clips.
    """
    _check(candidates, references)
    ref_counts = [[[_ngrams(caption_tokens(r), n) for n in range(1, _MAX_N + 1)] for r in refs] for refs in references]
    doc_freq: Counter = Counter()
    for refs in ref_counts:
        doc_freq.update({g for ref in refs for n_counts in ref for g in n_counts})
    log_docs = math.log(float(len(references)))
    total = 0.0
    for cand, refs in zip(candidates, ref_counts):
        c_tokens = caption_tokens(cand)
        c_vec, c_norm = _tfidf([_ngrams(c_tokens, n) for n in range(1, _MAX_N + 1)], doc_freq, log_docs)
        score = [0.0] * _MAX_N
        for ref in refs:
            r_vec, r_norm = _tfidf(ref, doc_freq, log_docs)
            delta = len(c_tokens) - sum(ref[0].values())
            penalty = math.exp(-(delta**2) / (2 * _CIDER_SIGMA**2))
            for n in range(_MAX_N):
                # CIDEr-D clips candidate weights at the reference's to stop repetition gaming.
                dot = sum(min(v, r_vec[n].get(g, 0.0)) * r_vec[n].get(g, 0.0) for g, v in c_vec[n].items())
                if c_norm[n] != 0 and r_norm[n] != 0:
                    dot /= c_norm[n] * r_norm[n]
                score[n] += dot * penalty
        total += sum(score) / _MAX_N / len(refs) * 10.0
    return total / len(candidates)


__all__ = ["bleu4", "caption_tokens", "cider_d"]
