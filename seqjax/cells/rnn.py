"""seqjax.cells.rnn.rnn."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from seqjax.cells.base import (
    Cell,
    _affine_input,
    _gated,
    _input_size,
    _zeros_carry,
    gate_weights,
    hidden_carry_bptt,
    preactivation,
)
from seqjax.cells.fused_bptt import FusedBPTT
from seqjax.errors import check_choice
from seqjax.typing import Array

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}  # the Elman RNN's choices of φ


def rnn_bptt(activation: str, dtype: Any) -> FusedBPTT:
    """Elman RNN, ``h_t = φ(z_t)``: ``z̄ = g ⊙ φ'(z)``, with ``tanh' = 1 - h_t²`` and ``relu' = [h_t > 0]``."""
    act = ACTIVATIONS[activation]

    def forward(params, h, x):
        h = act(preactivation(params, h, x, dtype))
        return h, h, (h,)

    def backward(params, h_prev, residuals, d_h, d_y):
        (h,) = residuals
        g = d_h + d_y
        dz = g * (1.0 - h * h) if activation == "tanh" else jnp.where(h > 0, g, jnp.zeros_like(g))
        return jnp.zeros_like(h), (dz,), (None,), {}

    return hidden_carry_bptt(forward, backward)


def rnn(
    hidden_size: int,
    *,
    activation: str = "tanh",
    recurrent: str = "orthogonal",
    spectral_norm: float | None = None,
    dtype: Any = jnp.float32,
    param_dtype: Any = jnp.float32,
) -> Cell:
    """Elman RNN cell.

    .. math::  h_t = \\phi(W_h h_{t-1} + W_x x_t + b), \\qquad \\phi \\in \\{\\tanh, \\mathrm{relu}\\}

    Args:
      hidden_size: width of ``h``.
      activation: ``"tanh"`` (default) or ``"relu"``.
      recurrent: initializer of ``W_h``: ``"orthogonal"``, ``"normal"`` (variance
        ``1/hidden``) or ``"identity"`` (IRNN, Le et al. 2015).
      spectral_norm: if set, ``W_h`` is rescaled so its largest singular value
        equals this number (for vanishing/exploding-gradient studies).
      dtype: computation dtype.  param_dtype: parameter storage dtype.
    """
    check_choice("activation", activation, ACTIVATIONS)
    init = gate_weights(hidden_size, 1, recurrent=recurrent, spectral_norm=spectral_norm, param_dtype=param_dtype)
    act = ACTIVATIONS[activation]

    def update(h: Array, z: Array) -> tuple[Array, Array]:
        h = act(z)
        return h, h

    recur, step = _gated(update, lambda h: h, dtype)
    return Cell(init=init, initial_carry=_zeros_carry(hidden_size, dtype), input_proj=_affine_input(dtype),
                recur=recur, step=step,
                input_size=_input_size, hidden_size=hidden_size, name="rnn", bptt=rnn_bptt(activation, dtype))
