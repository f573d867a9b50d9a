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
from typing import Any, Callable, NamedTuple

import jax

from seqjax.errors import check_positive


class Timing(NamedTuple):
    """Median seconds per call: ``wall`` clock, and ``cpu`` time of this process (all its threads).

    On a shared machine the wall clock also counts time spent waiting for a
    core; the process CPU time does not (but counts threads spinning).
    """

    wall: float
    cpu: float


def blocking(fn: Callable[[], Any]) -> Callable[[], Any]:
    """Wrap a JAX callable so it returns only when its outputs are ready."""

    def run() -> Any:
        return jax.block_until_ready(fn())

    return run


def time_interleaved(
    fns: dict[str, Callable[[], Any]], *, repeats: int = 5, warmup: int = 1
) -> dict[str, Timing]:
    """Median wall and CPU seconds per call of each callable, timed in rotating order.

    Every callable is first run ``warmup`` times (compilation, caches), then
    ``repeats`` rounds each time every callable once.
    """
    check_positive("repeats", repeats, integer=True)
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            start, start_cpu = time.perf_counter(), time.process_time()
            fns[name]()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {name: Timing(statistics.median(wall[name]), statistics.median(cpu[name])) for name in names}
