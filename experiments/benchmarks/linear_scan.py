"""Timing of the linear_scan methods (what ``method="auto"`` should pick on this backend).

Times ``h_t = a_t h_{t-1} + b_t`` forward and forward+backward for each method
on one shape, interleaved and repeated in one process, and prints the median
time of each as a ratio against ``sequential``.

Run: ``python experiments/benchmarks/linear_scan.py [--batch 4 --length 4096 --features 64]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

from seqjax.ops.linear_scan import linear_scan, resolve_method

METHODS = ("sequential", "associative", "chunked")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--chunk-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    shape = (args.batch, args.length, args.features)
    a = jax.random.uniform(jax.random.key(0), shape, minval=0.5, maxval=1.0)
    b = jax.random.normal(jax.random.key(1), shape)
    programs = {}
    for m in METHODS:
        scan = lambda a, b, m=m: linear_scan(a, b, method=m, chunk_size=args.chunk_size)  # noqa: E731
        programs[(m, "forward")] = jax.jit(scan)
        programs[(m, "forward+backward")] = jax.jit(jax.grad(lambda a, b, s=scan: jnp.sum(s(a, b) ** 2), (0, 1)))
    times = {key: [] for key in programs}
    for fn in programs.values():
        jax.block_until_ready(fn(a, b))
    for _ in range(args.repeats):
        for key, fn in programs.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(a, b))
            times[key].append(time.perf_counter() - start)
    print(f"linear_scan {shape}, backend={jax.default_backend()}, auto -> {resolve_method('auto')}")
    print("| method | forward (ms) | ratio | forward+backward (ms) | ratio |")
    print("|---|---|---|---|---|")
    med = {key: statistics.median(t) for key, t in times.items()}
    for m in METHODS:
        f, g = med[(m, "forward")], med[(m, "forward+backward")]
        print(f"| {m} | {f * 1e3:.2f} | {f / med[('sequential', 'forward')]:.2f} | {g * 1e3:.2f} "
              f"| {g / med[('sequential', 'forward+backward')]:.2f} |")


if __name__ == "__main__":
    main()
