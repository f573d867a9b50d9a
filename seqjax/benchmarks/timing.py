"""Interleaved, repeated wall-clock timing.

Peers are timed *in turn* within each repeat (round ``r`` starts at peer
``r mod n``), so slow drifts of a shared machine hit every peer alike, and the
figure kept is the median over repeats.  Each timed callable must return only
when its work is done (JAX callables block on their result; PyTorch on CPU is
synchronous; CUDA peers synchronize).
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import jax


def blocking(fn: Callable[[], Any]) -> Callable[[], Any]:
    """Wrap a JAX callable so it returns only when its outputs are ready."""

    def run() -> Any:
        return jax.block_until_ready(fn())

    return run


def time_interleaved(
    fns: dict[str, Callable[[], Any]], *, repeats: int = 5, warmup: int = 1
) -> dict[str, float]:
    """Median seconds per call of each callable, timed in rotating order.

    Every callable is first run ``warmup`` times (compilation, caches), then
    ``repeats`` rounds each time every callable once.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            start = time.perf_counter()
            fns[name]()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(s) for name, s in samples.items()}
