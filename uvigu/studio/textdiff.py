"""Word-level difference between the model's caption and the user's edit of it."""

from __future__ import annotations

import difflib


def word_diff(before: str, after: str) -> list[tuple[str, str | None]]:
    """Spans of ``after`` against ``before``: ``(words, "+")`` added, ``(words, "-")`` removed,
    ``(words, None)`` unchanged. Spans join with single spaces to reproduce both texts."""
    old, new = before.split(), after.split()
    spans: list[tuple[str, str | None]] = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            spans.append((" ".join(old[i1:i2]), None))
            continue
        if tag in ("delete", "replace"):
            spans.append((" ".join(old[i1:i2]), "-"))
        if tag in ("insert", "replace"):
            spans.append((" ".join(new[j1:j2]), "+"))
    return spans
