"""The evidence behind the recurrent defaults: input-projection placement, the backward pass and ``unroll``.

``python -m seqjax.benchmarks.tuning [cell ...]`` times, interleaved with the
Flax linen peer, the seqjax training step and forward pass of each cell at the
standard shapes in these variants:

* ``hoist``: ``xp = input_proj(x)`` for all steps before the scan (forced on),
  differentiated by autodiff;
* ``autodiff``: ``cell.step`` under the scan (the input matmul inside the loop),
  differentiated by JAX's transpose of the scan (``bptt="autodiff"``);
* ``step-uK``: the default, ``cell.step`` under the scan with the hand-derived
  backward (``bptt="fused"``, :mod:`seqjax.cells.fused_bptt`), ``lax.scan(..., unroll=K)``
  for K in 1, 2, 4, 8.

Each line prints the median wall/CPU milliseconds and the speed-ups over Flax
``t_flax / t_variant`` (wall/CPU).
"""

from __future__ import annotations

import sys
from unittest import mock

from seqjax.benchmarks import peers
from seqjax.benchmarks.programs import Program, Shape, inputs, seqjax_recurrent
from seqjax.benchmarks.suite import RECURRENT, SHAPES
from seqjax.benchmarks.timing import time_interleaved
from seqjax.cells import scan
from seqjax.experiment.runtime import keep_freed_memory

UNROLLS = (1, 2, 4, 8)


def variants(cell_name: str, shape: Shape, x) -> dict[str, Program]:
    """The seqjax variants above, plus ``flax``; programs are traced at construction."""
    with mock.patch.object(scan, "hoist_input_projection", lambda: True):
        programs = {"hoist": seqjax_recurrent(cell_name, shape, x)}
    with mock.patch.object(scan, "hoist_input_projection", lambda: False):
        programs["autodiff"] = seqjax_recurrent(cell_name, shape, x, bptt="autodiff")
        programs.update({f"step-u{k}": seqjax_recurrent(cell_name, shape, x, unroll=k) for k in UNROLLS})
    programs["flax"] = peers.flax_recurrent(cell_name, shape, x)
    return programs


def main(cells: list[str], repeats: int = 3) -> None:
    for cell_name in cells:
        for shape in SHAPES:
            programs = variants(cell_name, shape, inputs(shape))
            for measure in ("train_step", "forward"):
                t = time_interleaved({k: getattr(p, measure) for k, p in programs.items()}, repeats=repeats)
                figures = "  ".join(
                    f"{k} {v.wall * 1e3:.1f}/{v.cpu * 1e3:.1f}ms ({t['flax'].wall / v.wall:.2f}x/{t['flax'].cpu / v.cpu:.2f}x)"
                    for k, v in t.items()
                )
                print(f"{cell_name} {shape} {measure}: {figures}", flush=True)


if __name__ == "__main__":
    keep_freed_memory()  # as the seqjax commands do
    main(sys.argv[1:] or list(RECURRENT))
