"""S4D train step: the split-Vandermonde kernel (``seqjax.ops.ssm_kernel.s4d_kernel``) against the direct one.

The direct kernel exponentiates every ``[H, N/2, L]`` term in complex arithmetic,
``K_l = 2 Re(sum_n C_n Bbar_n exp(l log Abar_n))``, summed ``STATE_BLOCK`` modes at a time
(the form before issue 19). Both S4D backbones (``seqjax bench``'s options, width 64) are
timed in interleaved rounds in one process; the median ratio direct / split is printed::

    python experiments/benchmarks/s4d_speed.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import time
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.benchmarks.backbones import backbone_module, module_program
from seqjax.benchmarks.programs import Shape, inputs
from seqjax.ops.ssm_kernel import discretize_diag, state_sum

SHAPES = (Shape(8, 1024, 64, 64), Shape(32, 256, 64, 64), Shape(64, 256, 64, 64))


# K_l = 2 Re(sum_n C_n Bbar_n exp(l log Abar_n)), every [H, n, L] term exponentiated
def direct_kernel(lam, b, c, dt, length, method):
    """The S4D kernel before issue 19: a complex ``exp`` per ``(h, n, l)``."""
    a_bar, b_bar = discretize_diag(lam, b, dt[:, None], method)
    steps = jnp.arange(length)

    def term(cb, log_a):
        return cb[..., None] * jnp.exp(log_a[..., None] * steps)

    return 2.0 * state_sum(term, c * b_bar, jnp.log(a_bar)).real


def train_step(backbone: str, shape: Shape, patch: tuple[str, object] | None = None):
    """The ``seqjax bench`` train step of ``backbone``, compiled with ``patch = (target, replacement)`` applied."""
    with mock.patch(*patch) if patch else mock.MagicMock():
        step = module_program(backbone_module(backbone, shape.hidden), inputs(shape)).train_step
        step()
    return step


def time_once(step, times: list) -> None:
    """Append the seconds of one blocking call of ``step`` to ``times``."""
    start = time.perf_counter()
    jax.block_until_ready(step())
    times.append(time.perf_counter() - start)


def compare(backbone: str, patch: tuple[str, object], labels: tuple[str, str], rounds: int) -> None:
    """Print a table row per shape: the train step with ``patch`` (old) and without (new), interleaved."""
    print(f"| shape (B, T, width) | {labels[0]} (ms) | {labels[1]} (ms) | speedup |")
    print("|---|---|---|---|")
    for shape in SHAPES:
        steps = (train_step(backbone, shape, patch), train_step(backbone, shape))
        times: tuple[list, list] = ([], [])
        for _ in range(rounds):
            for step, record in zip(steps, times):
                time_once(step, record)
        old, new = (float(np.median(t)) * 1e3 for t in times)
        print(f"| {shape.batch}, {shape.time}, {shape.hidden} | {old:.1f} | {new:.1f} | {old / new:.2f}x |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    compare("s4d", ("seqjax.models.ssm.s4d_kernel", direct_kernel), ("direct kernel", "split kernel"), args.rounds)


if __name__ == "__main__":
    main()
