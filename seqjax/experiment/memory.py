"""An up-front memory estimate: refuse a run that cannot fit before anything large is allocated.

Everything is measured abstractly with :func:`jax.eval_shape` (shapes only: no compile, no memory):

* **state** = ``4 x`` the parameter bytes: the weights, their gradients and the optimizer's two
  moments (Adam; SGD and RMSprop keep fewer);
* **activations** = ``FACTOR x batch x time x sum(widths) x 4 bytes``: every weight matrix (a
  parameter with two or more dimensions) writes ``width`` = its last dimension per example and time
  step, which the backward pass keeps; ``FACTOR = 2`` covers the elementwise intermediates around
  each matmul.  ``batch`` is the larger of ``train.batch_size`` and ``train.eval_batch_size``;
  ``time`` is the longest axis 1 of a training batch;
* **data** = the bytes of one training batch plus the fixed validation and test sets, which are
  kept in memory for the whole run.

The estimate is compared with the memory of the device the run uses (the GPU's ``bytes_limit`` when
JAX reports one, the machine's physical memory otherwise).  It is deliberately rough: it catches a
run that needs many times what the machine has (``model.hidden_size=1000000000``,
``train.batch_size=100000000000``) in one line instead of an abort inside XLA; it does not promise
that a run under the limit fits.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import jax

from seqjax.errors import UserError
from seqjax.experiment.workloads import build_workload

FACTOR = 2
STATE_COPIES = 4  # weights, gradients, two optimizer moments
GiB = 2**30


def _bytes(tree: Any) -> int:
    return sum(math.prod(leaf.shape) * leaf.dtype.itemsize for leaf in jax.tree.leaves(tree))


def available_bytes() -> int:
    """The memory of JAX's default device: its ``bytes_limit`` when reported, else the machine's RAM."""
    stats = jax.devices()[0].memory_stats() or {}
    if stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def estimate(cfg: Any) -> dict[str, int]:
    """Estimated bytes of a run's ``state``, ``activations`` and ``data`` (see the module docstring)."""
    workload = build_workload(cfg)
    t = cfg.train
    try:
        with warnings.catch_warnings():  # e.g. int64 indices truncated at absurd sizes: the estimate says it
            warnings.simplefilter("ignore")
            params = jax.eval_shape(workload.init, jax.random.key(0))
            batch = jax.eval_shape(workload.sample_train, 0)
            sets = [jax.eval_shape(lambda n=n, s=s: workload.eval_set(s, n)) for s, n in
                    (("val", t.eval_examples), ("test", t.test_examples))]
    except OverflowError as e:  # a size past int32 somewhere in the model or its data
        raise UserError(f"the model or its data is too large to build ({e}): make model.* or task.* smaller"
                        ) from None
    time = max((leaf.shape[1] for leaf in jax.tree.leaves(batch) if leaf.ndim >= 2), default=1)
    widths = sum(leaf.shape[-1] for leaf in jax.tree.leaves(params) if leaf.ndim >= 2)
    return {
        "state": STATE_COPIES * _bytes(params),
        "activations": FACTOR * max(t.batch_size, t.eval_batch_size) * time * widths * 4,
        "data": _bytes(batch) + sum(map(_bytes, sets)),
    }


def check_fits(cfg: Any) -> None:
    """Raise a one-line :class:`UserError` when :func:`estimate` exceeds :func:`available_bytes`."""
    need, have = estimate(cfg), available_bytes()
    total = sum(need.values())
    if total > have:
        parts = ", ".join(f"{k} {v / GiB:.3g}" for k, v in need.items())
        raise UserError(
            f"this run needs about {total / GiB:.3g} GiB ({parts}) but the device has {have / GiB:.3g} GiB: "
            f"make the model (model.*) or the batches (train.batch_size, train.eval_batch_size, "
            f"train.eval_examples, train.test_examples) smaller"
        )
