"""Diagnostics: parameter counts, spectral norms and gradient flow through time.

Gradient flow: for a loss ``L(h_T)`` of the last state, the backpropagated signal reaching step ``t``
is ``dL/da_t`` where ``a_t = input_proj(x_t)`` is the step's pre-activation input.  For an Elman RNN,

.. math::  \\frac{\\partial h_T}{\\partial h_t} = \\prod_{k=t+1}^{T} \\mathrm{diag}(\\phi'(z_k)) W_h^\\top,

so ``||dh_T/dh_t||_2 <= (gamma ||W_h||_2)^{T-t}`` with ``gamma = max |phi'|`` (1 for tanh): gradients
vanish when ``||W_h||_2 < 1/gamma`` (Pascanu, Mikolov & Bengio 2013).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.cells.base import Cell, hidden_of
from seqjax.typing import Params


def count_params(params: Any) -> int:
    """Total number of scalar parameters in a pytree (a complex leaf counts its real and imaginary parts)."""
    return int(sum(np.size(x) * (2 if np.iscomplexobj(x) else 1) for x in jax.tree.leaves(params)))


def spectral_norm(w: jax.Array) -> jax.Array:
    """Largest singular value ``sigma_max(W) = ||W||_2``."""
    return jnp.linalg.norm(w, ord=2)


def safe_norm(x: jax.Array, axis: int = -1) -> jax.Array:
    """Euclidean norm along ``axis`` without underflow: scaled by the largest entry before squaring.

    .. math::  \\|x\\|_2 = m \\sqrt{\\textstyle\\sum_i (x_i / m)^2}, \\qquad m = \\max_i |x_i| \\quad (0 \\text{ if } m = 0)

    ``jnp.linalg.norm`` squares first, so entries below about 1e-19 (whose squares are below float32's
    smallest normal number, flushed to zero on CPU) give a norm of 0 although the vector is far from it.

    >>> x = jnp.full((4,), 1e-21, jnp.float32)
    >>> float(jnp.linalg.norm(x)), round(float(safe_norm(x)) / 2e-21, 6)
    (0.0, 1.0)
    """
    m = jnp.max(jnp.abs(x), axis=axis, keepdims=True)
    scale = jnp.where(m > 0, m, 1.0)
    return jnp.squeeze(m, axis) * jnp.sqrt(jnp.sum(jnp.square(x / scale), axis=axis))


def gradient_flow(cell: Cell, params: Params, xs: jax.Array, direction: jax.Array | None = None) -> jax.Array:
    """``||dL/da_t||_2`` for every step ``t``, averaged over the batch: shape ``[time]``.

    ``L = <v, h_T>`` with ``v = direction`` (default: all ones / sqrt(hidden)), ``a_t`` the hoisted
    input projection of step ``t``.  The ratio between steps measures how fast the gradient vanishes
    or explodes with distance ``T - t``.  Norms are taken by :func:`safe_norm`, so signals far below
    ``1e-19`` (hundreds of steps of vanishing) are measured, not rounded to 0.
    """
    carry0 = cell.initial_carry((xs.shape[0],))
    xp = cell.input_proj(params, xs)
    v = jnp.ones((cell.hidden_size,)) / np.sqrt(cell.hidden_size) if direction is None else direction

    def loss(xp):
        def body(c, xp_t):
            c, _ = cell.recur(params, c, xp_t)
            return c, None

        c, _ = jax.lax.scan(body, carry0, jnp.swapaxes(xp, 0, 1))
        return jnp.sum(hidden_of(c) @ v)

    grads = jax.grad(loss)(xp)  # [B, T, G*H]
    return jnp.mean(safe_norm(grads, axis=-1), axis=0)
