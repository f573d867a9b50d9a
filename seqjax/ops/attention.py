"""Encoder–decoder attention as pure functions: additive (Bahdanau) and multiplicative (Luong).

A decoder query ``q [B, d_q]`` scores every encoder output ``m_s [B, S, d_m]``; the scores
are normalised over the *valid* source positions ``s < L_b`` only::

    e_s = v^T tanh(W_q q + W_m m_s)          (additive, Bahdanau et al. 2015)
    e_s = q^T W_a m_s                        (multiplicative "general", Luong et al. 2015)
    a_s = exp(e_s) [s < L] / sum_{s' < L} exp(e_{s'})
    ctx = sum_s a_s m_s

Weights on padding are exactly zero and sum to 1 over valid positions.  An
:class:`Attention` bundles ``init`` and ``scores`` like a :class:`~seqjax.cells.base.Cell`, so a
decoder step can run under ``jax.lax.scan`` / ``while_loop`` with an explicit params pytree.
``scores`` accepts queries with extra leading time axes (``q [B, T, d_q]`` gives ``[B, T, S]``)
for the parallel (teacher-forced) form.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from seqjax.errors import check_choice
from seqjax.ops.initializers import input_init
from seqjax.ops.masking import length_mask
from seqjax.typing import Array, Params

ATTENTION_KINDS = ("none", "bahdanau", "luong")


class Attention(NamedTuple):
    """``init(key, query_size, memory_size) -> params``; ``scores(params, q, memory) -> e``."""

    init: Callable[[Array, int, int], Params]
    scores: Callable[[Params, Array, Array], Array]
    name: str


def _time_axes(q: Array) -> int:
    """Number of query axes between batch and features (0 for ``[B, d]``, 1 for ``[B, T, d]``)."""
    return q.ndim - 2


def additive(attention_size: int) -> Attention:
    """Bahdanau attention: ``e_s = v^T tanh(W_q q + W_m m_s)``."""

    def init(key: Array, query_size: int, memory_size: int) -> Params:
        k_q, k_m, k_v = jax.random.split(key, 3)
        return {
            "w_q": input_init(k_q, (query_size, attention_size), jnp.float32),
            "w_m": input_init(k_m, (memory_size, attention_size), jnp.float32),
            "v": input_init(k_v, (attention_size, 1), jnp.float32)[:, 0],
        }

    def scores(params: Params, q: Array, memory: Array) -> Array:
        keys = memory @ params["w_m"]  # [B, S, A]
        query = q @ params["w_q"]  # [B, (T,) A]
        n = _time_axes(q)
        keys = keys.reshape(keys.shape[:1] + (1,) * n + keys.shape[1:])  # [B, (1,) S, A]
        return jnp.tanh(query[..., None, :] + keys) @ params["v"]

    return Attention(init, scores, "bahdanau")


def multiplicative() -> Attention:
    """Luong "general" attention: ``e_s = q^T W_a m_s``."""

    def init(key: Array, query_size: int, memory_size: int) -> Params:
        return {"w_a": input_init(key, (query_size, memory_size), jnp.float32)}

    def scores(params: Params, q: Array, memory: Array) -> Array:
        query = q @ params["w_a"]  # [B, (T,) d_m]
        flat = query.reshape(query.shape[0], -1, query.shape[-1])  # [B, T', d_m]
        e = jnp.einsum("btd,bsd->bts", flat, memory)
        return e.reshape(q.shape[:-1] + memory.shape[1:2])

    return Attention(init, scores, "luong")


def make_attention(kind: str, attention_size: int) -> Attention:
    """``"bahdanau"`` (additive, width ``attention_size``) or ``"luong"`` (multiplicative)."""
    check_choice("attention", kind, ("bahdanau", "luong"))
    return additive(attention_size) if kind == "bahdanau" else multiplicative()


def source_mask(lengths: Array | None, source_len: int, batch: int) -> Array:
    """``[B, S]`` booleans ``s < L_b`` (all true when ``lengths`` is None)."""
    if lengths is None:
        return jnp.ones((batch, source_len), bool)
    return length_mask(lengths, source_len)


def masked_softmax(scores: Array, mask: Array) -> Array:
    """``a_s = exp(e_s) [mask_s] / sum_{s'} exp(e_{s'}) [mask_{s'}]`` over the last axis.

    ``mask [B, S]`` broadcasts over any query axes of ``scores [B, (T,) S]``; masked
    positions get exactly 0.  A row with no valid position gets all zeros.
    """
    m = mask.reshape(mask.shape[:1] + (1,) * (scores.ndim - 2) + mask.shape[1:])
    e = jnp.where(m, scores, -jnp.inf)
    e_max = jnp.max(e, axis=-1, keepdims=True)
    p = jnp.where(m, jnp.exp(e - jnp.where(jnp.isfinite(e_max), e_max, 0.0)), 0.0)
    return p / jnp.maximum(p.sum(-1, keepdims=True), jnp.finfo(p.dtype).tiny)


def attend(
    attention: Attention, params: Params, q: Array, memory: Array, mask: Array
) -> tuple[Array, Array]:
    """``(ctx, a)``: ``a = masked_softmax(scores(q, m))``, ``ctx = sum_s a_s m_s``.

    Shapes: ``q [B, (T,) d_q]``, ``memory [B, S, d_m]``, ``mask [B, S]`` ->
    ``ctx [B, (T,) d_m]``, ``a [B, (T,) S]``.
    """
    a = masked_softmax(attention.scores(params, q, memory), mask)
    flat = a.reshape(a.shape[0], -1, a.shape[-1])
    ctx = jnp.einsum("bts,bsd->btd", flat, memory).reshape(a.shape[:-1] + memory.shape[-1:])
    return ctx, a


def sinusoidal(positions: Array, d_model: int) -> Array:
    """``PE[t, 2i] = sin(t w_i)``, ``PE[t, 2i+1] = cos(t w_i)``, ``w_i = 10000^{-2i/d}``: ``[..., d_model]``."""
    i = jnp.arange(d_model // 2 + d_model % 2)
    angles = positions[..., None].astype(jnp.float32) * 10000.0 ** (-2.0 * i / d_model)
    pe = jnp.stack([jnp.sin(angles), jnp.cos(angles)], axis=-1).reshape(*angles.shape[:-1], -1)
    return pe[..., :d_model]


def rotary(x: Array, positions: Array) -> Array:
    """Rotate pairs ``(x_{2i}, x_{2i+1})`` by ``t * 10000^{-2i/d_h}``; ``x [B, T, H, d_h]``, ``positions [B, T]``."""
    d = x.shape[-1]
    angles = positions[..., None].astype(jnp.float32) * 10000.0 ** (-jnp.arange(0, d, 2) / d)  # [B, T, d/2]
    cos, sin = jnp.cos(angles)[:, :, None], jnp.sin(angles)[:, :, None]
    cos, sin = cos.astype(x.dtype), sin.astype(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return jnp.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1).reshape(x.shape)
