"""Truncated backpropagation through time (``train.tbptt: K``): long streams trained in windows of ``K`` steps.

A training *episode* is one batch of streams ``task.sample(...)`` of ``T`` steps (``T`` a multiple of
``K``), cut into ``n = T / K`` consecutive windows.  Training step ``s`` takes window ``w = s mod n`` of
episode ``e = s div n`` -- still a pure function of ``s`` -- and runs the model's chunk form over it
from the carry the previous window left, ``stop_gradient``-ed, so gradients flow back at most ``K``
steps and memory is that of ``K`` steps however long the stream.  At ``w = 0`` a new episode starts and
the carry is reset to the model's initial state.  The carry lives in the training state, so it is
checkpointed and a resumed run continues each stream exactly where it stopped.  With ``K = T`` (one
window) the gradients are those of full BPTT.

The chunk form runs without dropout, so ``train.tbptt`` refuses a model with dropout.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from seqjax.errors import UserError
from seqjax.typing import Array, Batch, Params

START = "start"  # the window's [batch] flag: the first window of an episode (reset the carry)


def stream_length(sample: Callable[[jax.Array, int], Batch]) -> int:
    """``T``: the time axis of the task's ``inputs`` (found by tracing, no compute)."""
    return int(jax.eval_shape(lambda key: sample(key, 1), jax.random.key(0))["inputs"].shape[1])


def check_windows(window: int, length: int, dropout: float) -> None:
    """One-line :class:`UserError` unless windows of ``window`` steps tile streams of ``length`` without dropout."""
    if length % window:
        raise UserError(f"train.tbptt={window} must divide the task's stream length {length} into whole "
                        "windows: pick a divisor, or change task.seq_len")
    if dropout:
        raise UserError(f"train.tbptt runs the model's chunk form, which has no dropout: set model.dropout=0 "
                        f"(got {dropout})")


def window_sampler(episode: Callable[[Array], Batch], length: int, window: int) -> Callable[[Array], Batch]:
    """``step -> batch``: window ``step mod n`` of ``episode(step div n)`` (every ``[batch, T, ...]`` leaf cut on
    time), with ``START [batch]`` set on an episode's first window.

    >>> sample = window_sampler(lambda e: {"inputs": jnp.arange(6)[None] + 10 * e}, length=6, window=2)
    >>> [(b["inputs"].tolist(), b[START].tolist()) for b in map(sample, jnp.arange(4))]
    [([[0, 1]], [True]), ([[2, 3]], [False]), ([[4, 5]], [False]), ([[10, 11]], [True])]
    """
    per_episode = length // window

    def sample(step: Array) -> Batch:
        batch = episode(step // per_episode)
        w = step % per_episode
        cut = {k: jax.lax.dynamic_slice_in_dim(v, w * window, window, axis=1) for k, v in batch.items()}
        return {**cut, START: jnp.full(jax.tree.leaves(batch)[0].shape[:1], w == 0)}

    return sample


def window_loss(model: Any, metrics: Callable[[Array, Batch], dict[str, Array]]) -> Callable:
    """``(params, window, carry) -> (loss, (metrics, carry'))``: the chunk form of ``model`` over ``window``
    from ``carry`` (its initial state where ``window[START]``), ``carry'`` stop-gradient."""

    def loss(params: Params, window: Batch, carry: Any) -> tuple[Array, tuple[dict[str, Array], Any]]:
        variables = {"params": params}
        fresh = model.apply(variables, window[START].shape[0], method=model.initial_state)
        start = window[START]
        carry = jax.tree.map(lambda f, c: jnp.where(start.reshape((-1,) + (1,) * (f.ndim - 1)), f, c), fresh, carry)
        carry, outputs = model.apply(variables, carry, window["inputs"], method=model.chunk)
        values = metrics(outputs, window)
        return values["loss"], (values, jax.lax.stop_gradient(carry))

    return loss


def zero_carry(model: Any, params_shape: Any, batch_size: int) -> Any:
    """Zeros shaped like ``model``'s state for ``batch_size`` streams (replaced at the first window)."""
    shapes = jax.eval_shape(lambda p: model.apply({"params": p}, batch_size, method=model.initial_state), params_shape)
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
