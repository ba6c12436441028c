"""Median wall-clock timing of a zero-argument callable, after a warm-up.

A *sample* times ``inner`` back-to-back calls and divides by ``inner``; ``inner`` is chosen so
that a sample lasts at least :attr:`Budget.min_sample_s` (this amortises the timer for sub-
microsecond calls). Samples are repeated until :attr:`Budget.total_s` is spent, between
:attr:`Budget.min_repeats` and :attr:`Budget.max_repeats` times; the result is their median.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["CLOCKS", "Budget", "Timing", "measure"]

#: The clocks a measurement can use: ``wall`` (``time.perf_counter``, the default) and
#: ``cpu`` (``time.process_time``: the CPU time of every thread of the process, which on a
#: loaded machine leaves out the time other processes hold the CPU; for a child pinned to
#: one CPU it is the time the case ran, runtime threads of a framework included).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


@dataclass(frozen=True)
class Budget:
    """How long to spend measuring one quantity (seconds) and how many samples to take."""

    total_s: float = 1.5
    min_sample_s: float = 0.005
    min_repeats: int = 5
    max_repeats: int = 200
    warmup: int = 2


@dataclass(frozen=True)
class Timing:
    """Median seconds per call over ``repeats`` samples of ``inner`` calls each."""

    median_s: float
    repeats: int
    inner: int


def measure(fn: Callable[[], object], budget: Budget, *, warmup: int | None = None,
            clock: str = "wall") -> Timing:
    """Time ``fn`` per :class:`Budget`; ``fn`` must block until its work is done.

    ``warmup`` overrides :attr:`Budget.warmup` (pass 0 when the caller has already run ``fn``).
    The calibration call counts as a sample when one call fills a sample by itself, so slow
    functions are not run more often than needed.  ``clock`` names one of :data:`CLOCKS`.
    """
    tick = CLOCKS[clock]
    for _ in range(budget.warmup if warmup is None else warmup):
        fn()
    t0 = tick()
    fn()
    one = max(tick() - t0, 1e-9)
    inner = max(1, int(budget.min_sample_s / one))
    sample_s = one * inner
    repeats = int(budget.total_s / sample_s)
    repeats = min(max(repeats, budget.min_repeats), budget.max_repeats)
    samples = [one] if inner == 1 else []
    for _ in range(repeats - len(samples)):
        t0 = tick()
        for _ in range(inner):
            fn()
        samples.append((tick() - t0) / inner)
    return Timing(statistics.median(samples), repeats, inner)
