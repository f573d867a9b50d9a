"""Heads: read the backbone's features ``y [B, T, D]`` out into task outputs, chosen by the task kind.

* ``regress_last`` / ``classify_last``: ``out = W y_{L-1} + b`` with ``L`` = ``lengths`` when given,
  else ``T`` (the last real step of each sequence) -> ``[B, output_dim]`` (values or logits);
* ``classify_steps``: ``out_t = W y_t + b`` at every step -> ``[B, T, output_dim]`` logits
  (sequence labelling or language modelling).

A head's weights are stored in ``param_dtype``; it computes in the wider of its input's dtype and
``param_dtype`` (Flax's promotion), so a bfloat16 backbone under float32 parameters gives float32
outputs to the loss.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax.registry import Registry

Array = jax.Array


def last_step(y: Array, lengths: Array | None = None) -> Array:
    """``y[b, L_b - 1]`` for each row ``b`` (``L_b = T`` without ``lengths``): ``[B, T, D] -> [B, D]``."""
    if lengths is None:
        return y[:, -1]
    idx = jnp.clip(jnp.asarray(lengths) - 1, 0, y.shape[1] - 1)
    return jnp.take_along_axis(y, idx[:, None, None], axis=1)[:, 0]


class LastStepHead(nn.Module):
    """``out = W y_{L-1} + b``: ``[B, T, D] -> [B, features]``."""

    features: int
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, y: Array, lengths: Array | None = None) -> Array:
        return nn.Dense(self.features, param_dtype=self.param_dtype, name="out")(last_step(y, lengths))


class PerStepHead(nn.Module):
    """``out_t = W y_t + b``: ``[B, T, D] -> [B, T, features]``."""

    features: int
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, y: Array, lengths: Array | None = None) -> Array:
        return nn.Dense(self.features, param_dtype=self.param_dtype, name="out")(y)


HEADS: Registry[type] = Registry("head", "seqjax.models.heads")
HEADS.register("regress_last", LastStepHead)
HEADS.register("classify_last", LastStepHead)
HEADS.register("classify_steps", PerStepHead)


def make_head(kind: str, features: int, param_dtype: Any = jnp.float32) -> nn.Module:
    """The head for a task of ``kind`` (one of :data:`seqjax.tasks.TASK_KINDS`)."""
    return HEADS.get(kind)(features, param_dtype=param_dtype)
