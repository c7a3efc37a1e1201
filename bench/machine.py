"""How fast this machine is right now, to read a benchmark's absolute figures against.

The machine is shared and its speed drifts by a factor of two over an hour. Each benchmark prints
the median time of a fixed pure-Python workload beside its figures, so that runs made at different
times can be compared (a figure measured while the reference ran at 80 ms is not one from 40 ms).
"""

from __future__ import annotations

import statistics
import time


def reference_ms(runs: int = 7) -> float:
    """Median milliseconds to sum a million integers in a Python loop."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def describe() -> str:
    return f"machine reference: a 1M-step Python loop takes {reference_ms():.0f} ms (median of 7)"
