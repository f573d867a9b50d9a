"""Heads: read the backbone's features ``y [B, T, D]`` out into task outputs, chosen by the task kind.

* ``regress_last`` / ``classify_last``: ``out = W y_{L-1} + b`` with ``L`` = ``lengths`` when given,
  else ``T`` (the last real step of each sequence) -> ``[B, output_dim]`` (values or logits);
* ``classify_steps``: ``out_t = W y_t + b`` at every step -> ``[B, T, output_dim]`` logits
  (sequence labelling or language modelling).

Streaming reads every head out at every step (``head.readout``): for a last-step head ``out_t`` is the
prediction were the sequence to end at ``t``. :class:`SequenceModel` has the backbone's step and chunk
forms with the embedding and that readout around them.

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


class Head(nn.Module):
    """The dense readout ``out_t = W y_t + b`` both heads share (parameters ``out``)."""

    features: int
    param_dtype: Any = jnp.float32

    def setup(self) -> None:
        self.out = nn.Dense(self.features, param_dtype=self.param_dtype)

    def readout(self, y: Array) -> Array:
        """``out_t = W y_t + b`` at every position: ``[..., D] -> [..., features]``."""
        return self.out(y)


class LastStepHead(Head):
    """``out = W y_{L-1} + b``: ``[B, T, D] -> [B, features]``."""

    def __call__(self, y: Array, lengths: Array | None = None) -> Array:
        return self.readout(last_step(y, lengths))


class PerStepHead(Head):
    """``out_t = W y_t + b``: ``[B, T, D] -> [B, T, features]``."""

    def __call__(self, y: Array, lengths: Array | None = None) -> Array:
        return self.readout(y)


HEADS: Registry[type] = Registry("head", "seqjax.models.sequence_model")


HEADS.register("regress_last", LastStepHead)


HEADS.register("classify_last", LastStepHead)


HEADS.register("classify_steps", PerStepHead)


def make_head(kind: str, features: int, param_dtype: Any = jnp.float32) -> nn.Module:
    """The head for a task of ``kind`` (one of :data:`seqjax.tasks.TASK_KINDS`)."""
    return HEADS.get(kind)(features, param_dtype=param_dtype)


class SequenceModel(nn.Module):
    """``head(backbone(embed(x), lengths))``; ``vocab=None`` means float inputs.

    Streaming (a causal backbone; dropout off): ``initial_state(batch)``, ``step(state, x_t) -> (state,
    out_t)`` and ``chunk(state, x) -> (state, out)`` run the backbone's step and chunk forms between the
    embedding and ``head.readout`` (the head at every step).

    >>> import jax
    >>> from seqjax.models.registry import build_backbone, get_backbone
    >>> model = SequenceModel(build_backbone("gru", get_backbone("gru").options(hidden_size=8)),
    ...                       PerStepHead(3), vocab=5, embed_dim=4)
    >>> tokens = jnp.array([[1, 2, 3, 4]])
    >>> variables = model.init(jax.random.key(0), tokens)
    >>> state = model.apply(variables, 1, method=model.initial_state)
    >>> state, first = model.apply(variables, state, tokens[:, 0], method=model.step)
    >>> state, rest = model.apply(variables, state, tokens[:, 1:], method=model.chunk)
    >>> streamed = jnp.concatenate([first[:, None], rest], axis=1)
    >>> bool(jnp.allclose(streamed, model.apply(variables, tokens), atol=1e-6))
    True
    """

    backbone: nn.Module
    head: Head
    vocab: int | None = None
    embed_dim: int = 32
    dtype: Any = None  # the embedding's output dtype; None: param_dtype
    param_dtype: Any = jnp.float32

    def setup(self) -> None:
        if self.vocab:
            self.embed = nn.Embed(self.vocab, self.embed_dim, dtype=self.dtype or self.param_dtype,
                                  param_dtype=self.param_dtype)

    def _features(self, inputs: Array) -> Array:
        return self.embed(inputs) if self.vocab else inputs

    def __call__(
        self, inputs: Array, lengths: Array | None = None, *, deterministic: bool = True, resets: Array | None = None
    ) -> Array:
        """``resets [batch, time]`` (packed sequences, ``True`` at each one's first token) go to the backbone."""
        y = self.backbone(self._features(inputs), lengths, deterministic=deterministic, resets=resets)
        return self.head(y, lengths)

    def initial_state(self, batch_size: int) -> Any:
        """The backbone's state before the first token."""
        return self.backbone.initial_state(batch_size)

    def step(self, state: Any, x_t: Array) -> tuple[Any, Array]:
        """One token ``x_t [batch]`` (ids) or ``[batch, d_in]`` -> ``(state, out_t [batch, output_dim])``."""
        state, y = self.backbone.step(state, self._features(x_t))
        return state, self.head.readout(y)

    def chunk(self, state: Any, x: Array) -> tuple[Any, Array]:
        """A chunk ``x [batch, T]`` (ids) or ``[batch, T, d_in]`` -> ``(state, out [batch, T, output_dim])``."""
        state, y = self.backbone.chunk(state, self._features(x))
        return state, self.head.readout(y)


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
