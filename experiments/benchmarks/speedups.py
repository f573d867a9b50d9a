"""Train steps before and after an optimization, interleaved in one process (issue 19)::

    python experiments/benchmarks/speedups.py s4d|mamba|transformer [--rounds 7] [--out FOLDER]

* ``s4d``: the split-Vandermonde kernel (``seqjax.ops.ssm_kernel.s4d_kernel``) against the direct one, which
  exponentiates every ``[H, N/2, L]`` term in complex arithmetic, ``K_l = 2 Re(sum_n C_n Bbar_n exp(l log
  Abar_n))``, summed ``STATE_BLOCK`` modes at a time (the form before issue 19);
* ``mamba``: the compiled selective scan (``scan_method="native"``, the CPU default) against the JAX
  sequential scan (``"sequential"``, the default before it);
* ``transformer``: the compiled attention (``seqjax.ops.attention_native``, the CPU default for float32) against
  the JAX form (``SelfAttention.heads`` in query blocks of 128, the default before it).

Both backbones (``seqjax bench``'s options, width 64) are timed in interleaved rounds, with the allocator setting
the ``seqjax`` commands apply (:func:`~seqjax.experiment.runtime.keep_freed_memory`); the median of each and
their ratio, old / new, are printed per shape (``--quick``: one small shape, two rounds, a smoke run) and, with
``--out``, written to ``FOLDER/<s4d|mamba|transformer>.md``.
"""

from __future__ import annotations

import argparse
import pathlib
from unittest import mock

import jax
import jax.numpy as jnp

from seqjax.benchmarks.backbones import backbone_module, module_program
from seqjax.benchmarks.programs import Shape, inputs
from seqjax.benchmarks.timing import blocking, time_interleaved
from seqjax.experiment.runtime import keep_freed_memory
from seqjax.ops.ssm_kernel import discretize_diag, state_sum

SHAPES = {"s4d": (Shape(8, 1024, 64, 64), Shape(32, 256, 64, 64), Shape(64, 256, 64, 64)),
          "mamba": (Shape(8, 1024, 64, 64), Shape(32, 256, 64, 64), Shape(32, 1024, 64, 64)),
          "transformer": (Shape(32, 256, 64, 64), Shape(32, 1024, 64, 64))}
QUICK = (Shape(2, 64, 16, 16),)


# K_l = 2 Re(sum_n C_n Bbar_n exp(l log Abar_n)), every [H, n, L] term exponentiated
def direct_kernel(lam, b, c, dt, length, method):
    """The S4D kernel before issue 19: a complex ``exp`` per ``(h, n, l)``."""
    a_bar, b_bar = discretize_diag(lam, b, dt[:, None], method)
    steps = jnp.arange(length)

    def term(cb, log_a):
        return cb[..., None] * jnp.exp(log_a[..., None] * steps)

    return 2.0 * state_sum(term, c * b_bar, jnp.log(a_bar)).real


def train_step(backbone: str, shape: Shape, patch: tuple[str, object] | None = None, **options):
    """The ``seqjax bench`` train step of ``backbone`` with ``options``, compiled with ``patch = (target,
    replacement)`` applied."""
    with mock.patch(*patch) if patch else mock.MagicMock():
        step = module_program(backbone_module(backbone, shape.hidden, **options), inputs(shape)).train_step
        step()
    return step


def compare(backbone: str, old: dict, labels: tuple[str, str], shapes: tuple[Shape, ...], rounds: int,
            emit=print) -> None:
    """Print a table row per shape: the train step with ``old`` (``train_step``'s patch or options) and the
    default (new), interleaved."""
    emit(f"| shape (B, T, width) | {labels[0]} (ms) | {labels[1]} (ms) | speedup |")
    emit("|---|---|---|---|")
    for shape in shapes:
        steps = {"before": train_step(backbone, shape, **old), "after": train_step(backbone, shape)}
        times = time_interleaved({k: blocking(step) for k, step in steps.items()}, repeats=rounds, warmup=0)
        before, after = times["before"].wall * 1e3, times["after"].wall * 1e3
        emit(f"| {shape.batch}, {shape.time}, {shape.hidden} | {before:.1f} | {after:.1f} | {before / after:.2f}x |")


def main() -> None:
    keep_freed_memory()  # as `seqjax train` and `seqjax bench` run
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("which", choices=sorted(SHAPES))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="one small shape, two rounds")
    parser.add_argument("--out", type=pathlib.Path, help="also write the table to OUT/<which>.md")
    args = parser.parse_args()
    old, labels = {"s4d": (dict(patch=("seqjax.models.ssm.s4d_kernel", direct_kernel)),
                           ("direct kernel", "split kernel")),
                   "mamba": (dict(scan_method="sequential"), ("JAX scan", "compiled scan")),
                   "transformer": (dict(patch=("seqjax.ops.attention_native.available", lambda *arrays: False)),
                                   ("JAX attention", "compiled attention"))}[args.which]
    shapes, rounds = (QUICK, 2) if args.quick else (SHAPES[args.which], args.rounds)
    lines: list[str] = []

    def emit(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    emit(f"{args.which}: JAX {jax.__version__} on {jax.default_backend()}, median of {rounds} interleaved rounds")
    compare(args.which, old, labels, shapes, rounds, emit)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{args.which}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
