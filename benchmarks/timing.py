"""Timing shared by the benchmarks: the best of repeats, which load on a shared machine inflates least."""

import time

import numpy as np


def best_of(function, repeats: int = 5):
    """(min seconds, median seconds, result of the last call) over ``repeats`` calls of ``function``."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), float(np.median(times)), result
