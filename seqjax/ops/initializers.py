"""Weight initializers for recurrent cells.

``recurrent_init`` builds ``W_h = [W_1 | ... | W_G]`` (``[hidden, G*hidden]``),
one ``hidden x hidden`` block per gate, and can set each block's largest
singular value ``||W_g||_2`` exactly — the quantity that decides whether
gradients vanish (``||W_h||_2 < 1/gamma``) or may explode (Pascanu et al. 2013).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from seqjax.errors import check_choice

RECURRENT_INITS = ("orthogonal", "normal", "identity")


def input_init(key: jax.Array, shape: tuple[int, int], dtype: Any) -> jax.Array:
    """LeCun normal: ``W_x ~ N(0, 1/fan_in)``."""
    return jax.nn.initializers.lecun_normal()(key, shape, dtype)


def _block(key: jax.Array, n: int, kind: str, dtype: Any) -> jax.Array:
    if kind == "orthogonal":
        return jax.nn.initializers.orthogonal()(key, (n, n), dtype)
    if kind == "normal":
        return jax.random.normal(key, (n, n), dtype) / jnp.sqrt(n).astype(dtype)
    return jnp.eye(n, dtype=dtype)


def set_spectral_norm(w: jax.Array, target: float) -> jax.Array:
    """Rescale ``w`` so that its largest singular value ``sigma_max(w) = target``."""
    sigma = jnp.linalg.norm(w.astype(jnp.float32), ord=2)
    return (w * (target / sigma)).astype(w.dtype)


def recurrent_init(
    key: jax.Array,
    hidden_size: int,
    gates: int,
    dtype: Any,
    *,
    kind: str = "orthogonal",
    spectral_norm: float | None = None,
) -> jax.Array:
    """``W_h`` of shape ``[hidden, gates*hidden]``, each gate block drawn by ``kind``.

    With ``spectral_norm=s`` every block is rescaled to ``sigma_max = s``.
    """
    check_choice("recurrent initializer", kind, RECURRENT_INITS)
    # Draw in at least float32: LAPACK's QR (orthogonal) has no bfloat16/float16 kernel.
    draw_dtype = jnp.promote_types(dtype, jnp.float32)
    blocks = []
    for k in jax.random.split(key, gates):
        w = _block(k, hidden_size, kind, draw_dtype)
        if spectral_norm is not None:
            w = set_spectral_norm(w, spectral_norm)
        blocks.append(w.astype(dtype))
    return jnp.concatenate(blocks, axis=1)
