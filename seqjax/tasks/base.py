"""The task contract: a pure, jit-able generator ``key -> batch`` and what it is scored by.

A batch is a dict: ``"inputs"`` (float ``[B, T, F]`` or int tokens ``[B, T]``), ``"targets"`` and, for
per-step tasks, ``"mask"`` (``[B, T]`` float loss weights).  The model's head is chosen by ``kind``:

* ``"regress_last"``: outputs ``[B, output_dim]`` read at the last step; loss = MSE;
* ``"classify_last"``: logits ``[B, output_dim]`` at the last step; loss = cross-entropy;
* ``"classify_steps"``: logits ``[B, T, output_dim]`` at every step; loss = masked mean cross-entropy.

``metrics(outputs, batch)`` returns a dict that includes ``"loss"``; ``baseline`` holds the same
metrics for the best memoryless predictor, to be reported beside the model's.  A synthetic task draws
every split from a key; a file-backed one (:mod:`seqjax.tasks.arrays`) also has ``fixed_set(split, n)``,
its held-out ``"val"`` / ``"test"`` examples.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

Array = jax.Array
Batch = dict[str, Array]
TASK_KINDS = ("regress_last", "classify_last", "classify_steps")


class Task(NamedTuple):
    name: str
    sample: Callable[[Array, int], Batch]
    kind: str
    input_vocab: int | None  # token inputs [B, T] in [0, input_vocab); None: float inputs [B, T, input_dim]
    input_dim: int
    output_dim: int  # regression width, or number of classes
    seq_len: int  # the dependency length the task probes (for receptive-field checks)
    baseline: dict[str, float]
    metrics: Callable[[Array, Batch], dict[str, Array]]
    requires_causal_model: bool = False  # a target also appears among the *later* inputs: only a causal model is fair
    fixed_set: Callable[[str, int], Batch] | None = None  # file-backed: (split, n) -> held-out examples


class TaskSpec(NamedTuple):
    options: type  # a dataclass: the typed schema of this task's config keys
    make: Callable[[Any], Task]


def _at_least_float32(x: Array) -> Array:
    """Losses in float32 for bfloat16 outputs, and in float64 for a float64 model (no rounding down)."""
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def regression_metrics(preds: Array, batch: Batch) -> dict[str, Array]:
    """``mse = mean((y_hat - y)^2)``; ``solved`` = fraction with squared error < 0.04 (Pascanu et al. 2013)."""
    squared = jnp.square(_at_least_float32(preds) - batch["targets"])
    mse = jnp.mean(squared)
    return {"loss": mse, "mse": mse, "solved": jnp.mean(squared.sum(-1) < 0.04)}


def classification_metrics(logits: Array, batch: Batch) -> dict[str, Array]:
    """``ce = mean_b CE(logits_b, y_b)`` over logits ``[B, C]``; ``accuracy`` = fraction with ``argmax = y``.

    >>> batch = {"targets": jnp.array([0, 1])}
    >>> {k: round(float(v), 4) for k, v in classification_metrics(jnp.array([[2.0, 0.0], [2.0, 0.0]]), batch).items()}
    {'loss': 1.1269, 'ce': 1.1269, 'accuracy': 0.5}
    """
    ce = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(_at_least_float32(logits), batch["targets"]))
    accuracy = jnp.mean((jnp.argmax(logits, -1) == batch["targets"]).astype(jnp.float32))
    return {"loss": ce, "ce": ce, "accuracy": accuracy}


def prior_baseline(labels: np.ndarray, num_classes: int) -> dict[str, float]:
    """The memoryless classifier predicting the class frequencies ``p`` of ``labels``: cross-entropy
    ``H(p) = -sum_c p_c ln p_c``, accuracy ``max_c p_c``.

    >>> {k: round(v, 4) for k, v in prior_baseline(np.array([0, 0, 0, 1]), 3).items()}
    {'loss': 0.5623, 'ce': 0.5623, 'accuracy': 0.75}
    """
    p = np.bincount(labels, minlength=num_classes) / len(labels)
    entropy = float(-np.sum(p[p > 0] * np.log(p[p > 0])))
    return {"loss": entropy, "ce": entropy, "accuracy": float(p.max())}


def step_classification_metrics(logits: Array, batch: Batch) -> dict[str, Array]:
    """``ce = sum_t m_t CE(logits_t, y_t) / sum_t m_t``; ``accuracy`` over the same weights."""
    mask = batch["mask"]
    ce = optax.softmax_cross_entropy_with_integer_labels(_at_least_float32(logits), batch["targets"])
    correct = (jnp.argmax(logits, -1) == batch["targets"]).astype(jnp.float32)
    total = jnp.maximum(mask.sum(), 1.0)
    ce_mean = (ce * mask).sum() / total
    return {"loss": ce_mean, "ce": ce_mean, "accuracy": (correct * mask).sum() / total}
