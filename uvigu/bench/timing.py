"""Wall-clock timing of a callable: warm-up runs, then repeats, summarised as median / min / max."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Timing:
    """Seconds per call over ``repeats`` timed calls (after the warm-up ones)."""

    median_s: float
    min_s: float
    max_s: float
    repeats: int


def time_call(
    fn: Callable[[], Any], *, repeats: int = 3, warmup: int = 1, synchronize: Callable[[], None] | None = None
) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed.

    ``synchronize`` (e.g. ``torch.cuda.synchronize``) is called before each clock read, so that
    asynchronous devices are timed to completion.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be at least 1 and warmup at least 0, got {repeats} and {warmup}.")
    sync = synchronize or (lambda: None)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return Timing(statistics.median(times), min(times), max(times), repeats)


def time_interleaved(
    fns: dict[str, Callable[[], Any]],
    *,
    repeats: int = 3,
    warmup: int = 1,
    synchronize: Callable[[], None] | None = None,
) -> dict[str, Timing]:
    """Like :func:`time_call` for several callables, called in turn (a, b, c, a, b, c, …), so that
    load from other processes drifting during the run affects each of them alike and their ratios
    stay meaningful on a shared machine."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be at least 1 and warmup at least 0, got {repeats} and {warmup}.")
    sync = synchronize or (lambda: None)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: Timing(statistics.median(t), min(t), max(t), repeats) for name, t in times.items()}
