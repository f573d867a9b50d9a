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
import jax.numpy as jnp

from seqjax.models.precision import compute_dtype, param_dtype
from seqjax.models.registry import build_backbone
from seqjax.registry import Registry
from seqjax.tasks.base import Task
from seqjax.typing import Array


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


HEADS: Registry[type] = Registry("head", "seqjax.models.sequence_model")


HEADS.register("regress_last", LastStepHead)


HEADS.register("classify_last", LastStepHead)


HEADS.register("classify_steps", PerStepHead)


def make_head(kind: str, features: int, param_dtype: Any = jnp.float32) -> nn.Module:
    """The head for a task of ``kind`` (one of :data:`seqjax.tasks.TASK_KINDS`)."""
    return HEADS.get(kind)(features, param_dtype=param_dtype)


class SequenceModel(nn.Module):
    """``head(backbone(embed(x), lengths))``; ``vocab=None`` means float inputs."""

    backbone: nn.Module
    head: nn.Module
    vocab: int | None = None
    embed_dim: int = 32
    dtype: Any = None  # the embedding's output dtype; None: param_dtype
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, inputs: Array, lengths: Array | None = None, *, deterministic: bool = True) -> Array:
        dtypes = dict(dtype=self.dtype or self.param_dtype, param_dtype=self.param_dtype)
        x = nn.Embed(self.vocab, self.embed_dim, **dtypes, name="embed")(inputs) if self.vocab else inputs
        y = self.backbone(x, lengths, deterministic=deterministic)
        return self.head(y, lengths)


def build_model(model_name: str, opts: Any, task: Task, embed_dim: int = 32) -> SequenceModel:
    """The model for ``task``: backbone ``model_name`` built from ``opts``, head from ``task.kind``.

    Whether the backbone suits the task is checked once, when the config is validated
    (:func:`seqjax.models.registry.check_task`).
    """
    # a backbone without the precision keys (registered elsewhere) gets float32 embedding and head
    dtypes = dict(dtype=compute_dtype(opts), param_dtype=param_dtype(opts)) if hasattr(opts, "param_dtype") else {}
    return SequenceModel(
        backbone=build_backbone(model_name, opts),
        head=make_head(task.kind, task.output_dim, dtypes.get("param_dtype", jnp.float32)),
        vocab=task.input_vocab,
        embed_dim=embed_dim,
        **dtypes,
    )
