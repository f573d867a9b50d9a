"""Masked softmax attention by the compiled CPU kernel ``csrc/attention.cc``, with its own backward pass.

Per batch row and head, float32, ``scale = 1 / sqrt(d_h)``::

    y_t = sum_s softmax_s(scale q_t . k_s, over the keys s with mask_ts) v_s      (0 where no key is visible)

The kernel never holds the ``[T, S]`` weights: it keeps each query's softmax statistics (max and
normalizer, ``[batch, H, T]``) and recomputes the weights in the backward pass, as FlashAttention does; keys a
query block cannot see (a causal mask's upper triangle, padding, other packed sequences) are skipped.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.ops import native
from seqjax.typing import Array

SYMBOLS = ("AttentionForward", "AttentionBackward")
# flops per (batch, head, query, key) pair as the dense JAX form counts them, per unit of d_h (the products: q.k
# and p v forward; q.k again, dy.v, and the dq, dk, dv updates backward) and per pair (scale, max, exp, sum;
# and p (dp - delta)): the kernel skips the pairs the mask hides, so a causal mask does about half of this
FLOPS_PER_PAIR = {"seqjax_AttentionForward": (4, 5), "seqjax_AttentionBackward": (10, 6)}


def kernel_flops(target: str, shapes: list[tuple[int, ...]]) -> float | None:
    """The flops of one call of the kernel ``target`` on arguments of ``shapes`` (``q [batch, T, H, d_h], k [batch,
    S, H, d_h], ...``), counted densely; ``None`` for another target.

    >>> kernel_flops("seqjax_AttentionForward", [(1, 4, 2, 8), (1, 4, 2, 8)])  # 32 pairs, (4 * 8 + 5) each
    1184.0
    """
    if target not in FLOPS_PER_PAIR:
        return None
    (batch, queries, heads, dim), keys = shapes[0], shapes[1][1]
    per_dim, per_pair = FLOPS_PER_PAIR[target]
    return float(batch * heads * queries * keys * (per_dim * dim + per_pair))


def available(*arrays: Array) -> bool:
    """Whether the kernel runs here: float32 inputs, kernels :func:`~seqjax.ops.native.enabled` and one that built."""
    return (all(jnp.result_type(x) == jnp.float32 for x in arrays) and native.enabled()
            and native.register("attention", *SYMBOLS))


def _scale(q: Array) -> np.float32:
    return np.float32(1.0 / np.sqrt(q.shape[-1]))


def _forward(q: Array, k: Array, v: Array, mask: Array) -> tuple[Array, ...]:
    stats = jax.ShapeDtypeStruct((q.shape[0], q.shape[2], q.shape[1]), q.dtype)  # [batch, H, T]
    return native.call("attention", SYMBOLS, "AttentionForward", [q, stats, stats], q, k, v, mask,
                       scale=_scale(q))


@jax.custom_vjp
def attention_native(q: Array, k: Array, v: Array, mask: Array) -> Array:
    """``y [batch, T, H, d_h]`` of ``q [batch, T, H, d_h]`` over ``k, v [batch, S, H, d_h]`` where ``mask [batch,
    T, S]`` (bool); float32.

    >>> import jax.numpy as jnp
    >>> if available(jnp.zeros(1)):
    ...     zeros, v = jnp.zeros((1, 3, 1, 1)), jnp.arange(3.0).reshape(1, 3, 1, 1)
    ...     y = attention_native(zeros, zeros, v, jnp.tril(jnp.ones((1, 3, 3), bool)))
    ...     print(y[0, :, 0, 0].tolist())   # equal weights over the visible keys: means of 0, 1, 2
    [0.0, 0.5, 1.0]
    """
    return _forward(q, k, v, mask)[0]


def _fwd(q, k, v, mask):
    y, m, l_inv = _forward(q, k, v, mask)
    return y, (q, k, v, mask, y, m, l_inv)


def _bwd(residuals, dy):
    q, k, v, mask, y, m, l_inv = residuals
    dq, dk, dv = native.call("attention", SYMBOLS, "AttentionBackward", [q, k, v], q, k, v, mask, y, m, l_inv, dy,
                             scale=_scale(q))
    return dq, dk, dv, None


attention_native.defvjp(_fwd, _bwd)
