"""Masks for padded and packed batches: which positions of each sequence are real, holding state past the
end, and restarting it where a packed sequence begins.

A padded batch stores sequence ``b`` in positions ``t < lengths[b]``; a packed one marks the first token of
each of its sequences with ``resets[b, t] = True``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from seqjax.typing import Array


# valid[b, t] = t < lengths[b]
def length_mask(lengths: Array, steps: int) -> Array:
    """``[batch, steps]`` booleans: position ``t`` of sequence ``b`` is real (``t < lengths[b]``).

    >>> length_mask(jnp.array([1, 3]), 3).astype(int)
    Array([[1, 0, 0],
           [1, 1, 1]], dtype=int32)
    """
    return jnp.arange(steps)[None, :] < jnp.asarray(lengths)[:, None]


def hold_where(mask_t: Array | None, new: Any, old: Any) -> Any:
    """``new`` where ``mask_t[b]``, else ``old``, leaf by leaf (``new`` when there is no mask)."""
    if mask_t is None:
        return new
    return jax.tree.map(lambda n, o: jnp.where(mask_t.reshape(mask_t.shape + (1,) * (n.ndim - 1)), n, o), new, old)


def zero_where_padded(mask_t: Array | None, tree: Any) -> Any:
    """``tree`` where ``mask_t[b]``, else zeros, leaf by leaf (``tree`` when there is no mask)."""
    return tree if mask_t is None else hold_where(mask_t, tree, jax.tree.map(jnp.zeros_like, tree))


def restart_where(restart_t: Array | None, fresh: Any, carry: Any) -> Any:
    """``fresh`` where ``restart_t[b]``, else ``carry``, leaf by leaf (``carry`` when there are no restarts).

    >>> restart_where(jnp.array([True, False]), jnp.zeros((2, 1)), jnp.ones((2, 1)))[:, 0]
    Array([0., 1.], dtype=float32)
    """
    return carry if restart_t is None else hold_where(restart_t, fresh, carry)


# first[b, t] = max{s <= t : resets[b, s]}  (-1 where no reset at or before t: the row's start, or a carried state)
def segment_starts(resets: Array) -> Array:
    """``[batch, time]`` index of the packed sequence's first token at each position (``-1`` before any reset).

    >>> segment_starts(jnp.array([[False, True, False, True, False]]))
    Array([[-1,  1,  1,  3,  3]], dtype=int32)
    """
    steps = resets.shape[1]
    return jax.lax.cummax(jnp.where(resets, jnp.arange(steps, dtype=jnp.int32), -1), axis=1)


# same[b, t, s] = (sum_{u <= t} resets[b, u] = sum_{u <= s} resets[b, u])
def same_sequence(resets: Array) -> Array:
    """``[batch, T, T]`` booleans: positions ``t`` and ``s`` lie in the same packed sequence.

    >>> same_sequence(jnp.array([[True, False, True]]))[0].astype(int)
    Array([[1, 1, 0],
           [1, 1, 0],
           [0, 0, 1]], dtype=int32)
    """
    ids = jnp.cumsum(jnp.asarray(resets, jnp.int32), axis=1)
    return ids[:, :, None] == ids[:, None, :]


def attention_mask(q_pos: Array, k_pos: Array, lengths: Array | None, causal: bool) -> Array:
    """``[B, T_q, T_k]`` booleans: key visible to query (``k <= q`` if causal; ``k < length``)."""
    mask = jnp.ones((q_pos.shape[0], q_pos.shape[1], k_pos.shape[-1]), bool)
    if causal:
        mask = mask & (k_pos[:, None, :] <= q_pos[:, :, None])
    if lengths is not None:
        mask = mask & (k_pos[:, None, :] < lengths[:, None, None])
    return mask
