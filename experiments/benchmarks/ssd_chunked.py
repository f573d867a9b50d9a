"""Timing of Mamba-2's SSD chunked matrix form (``seqjax.ops.ssd.ssd``) against the plain linear scan.

Per head, ``H_t = a_t H_{t-1} + x_t B_t^T``, ``y_t = H_t C_t`` (state ``[P, N]``, scalar ``a_t``). The scan
forms run :func:`~seqjax.ops.linear_scan.linear_scan` (``sequential``, ``associative``) over the whole
``[batch, L, heads, P, N]`` state sequence, then read it out; the SSD form, at chunk sizes ``Q``, computes
the same ``y`` by matrix multiplies inside chunks and the recurrence on chunk states between them. Forward,
and forward+backward (gradient of ``sum(y^2)`` with respect to every input), are timed interleaved in one
process (:func:`~seqjax.benchmarks.timing.time_interleaved`: medians of wall and CPU time); the ratios are
``t / t_sequential`` (below 1: faster than the sequential scan). The default shape is the Mamba-2 layer of
``configs/models/mamba2.yaml`` (width 64, expand 2, head dim 16: 8 heads, state 16) at ``L = 4096``.

Run: ``python experiments/benchmarks/ssd_chunked.py [--batch 4 --length 4096 --chunks 32 64 128 256]``
(``--quick``: ``L = 256``, a smoke run; ``--out DIR`` also writes the table to ``DIR/ssd_chunked.md``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp

from seqjax.benchmarks.timing import time_interleaved
from seqjax.ops.linear_scan import linear_scan
from seqjax.ops.ssd import ssd


# y_t = H_t C_t, H_t = exp(alpha_t) H_{t-1} + x_t B_t^T: the state sequence [batch, L, heads, P, N] materialized
def scanned(x: jax.Array, alpha: jax.Array, b: jax.Array, c: jax.Array, method: str) -> jax.Array:
    """``y [batch, L, heads, P]`` by ``linear_scan(method=method)`` over the whole state sequence."""
    h = linear_scan(jnp.exp(alpha)[..., None, None], x[..., :, None] * b[..., None, :], method=method)
    return jnp.einsum("bthpn,bthn->bthp", h, c)


def forms(chunks: list[int]) -> dict[str, object]:
    """Each form as ``(x, alpha, b, c) -> y``: the two scans, then SSD at every chunk size."""
    out = {m: (lambda *v, m=m: scanned(*v, method=m)) for m in ("sequential", "associative")}
    out.update({f"ssd Q={q}": (lambda *v, q=q: ssd(*v, chunk_size=q)[0]) for q in chunks})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=16)
    parser.add_argument("--state", type=int, default=16)
    parser.add_argument("--chunks", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="L=256, batch 1, 2 heads, 2 repeats (a smoke run)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table to OUT/ssd_chunked.md")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.length, args.heads, args.chunks, args.repeats = 1, 256, 2, [32, 64], 2
    keys = jax.random.split(jax.random.key(0), 4)
    shape = (args.batch, args.length, args.heads)
    x = jax.random.normal(keys[0], (*shape, args.head_dim))
    alpha = -jax.random.uniform(keys[1], shape, minval=1e-3, maxval=0.1)  # log a_t: dt A, a in [0.90, 0.999]
    b, c = (jax.random.normal(k, (*shape, args.state)) / args.state**0.5 for k in keys[2:])
    inputs = (x, alpha, b, c)
    programs, outputs = {}, {}
    for name, f in forms(args.chunks).items():
        forward = jax.jit(f)
        backward = jax.jit(jax.grad(lambda *v, f=f: jnp.sum(f(*v) ** 2), argnums=(0, 1, 2, 3)))
        outputs[name] = forward(*inputs)
        programs[(name, "forward")] = lambda fn=forward: jax.block_until_ready(fn(*inputs))
        programs[(name, "forward+backward")] = lambda fn=backward: jax.block_until_ready(fn(*inputs))
    times = time_interleaved(programs, repeats=args.repeats)
    reference = outputs["sequential"]
    lines = [f"SSD vs linear_scan: batch {args.batch}, L {args.length}, {args.heads} heads, head dim {args.head_dim}, "
             f"state {args.state}, float32, backend {jax.default_backend()}, median of {args.repeats} interleaved "
             "rounds; ratio = t / t_sequential (wall; CPU in brackets)",
             "| form | forward ms | ratio | forward+backward ms | ratio | max abs diff of y vs sequential |",
             "|---|---|---|---|---|---|"]
    for name in outputs:
        cells = []
        for measure in ("forward", "forward+backward"):
            t, ref = times[(name, measure)], times[("sequential", measure)]
            cells += [f"{t.wall * 1e3:.1f}", f"{t.wall / ref.wall:.2f} ({t.cpu / ref.cpu:.2f})"]
        diff = float(jnp.max(jnp.abs(outputs[name] - reference)))
        lines.append(f"| {name} | {' | '.join(cells)} | {diff:.1e} |")
    table = "\n".join(lines)
    print(table)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "ssd_chunked.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
