"""How far a training run has come, in words for its log lines."""

from __future__ import annotations


def time_left(steps_left: int, steps_per_s: float) -> str:
    """"about 1 h 31 min left" at the recent rate of ``steps_per_s``; "" when it cannot be told."""
    if steps_left <= 0 or not steps_per_s > 0:
        return ""
    seconds = steps_left / steps_per_s
    if seconds < 90:
        return f"about {max(1, round(seconds))} s left"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"about {minutes} min left"
    return f"about {minutes // 60} h {minutes % 60:02d} min left"
