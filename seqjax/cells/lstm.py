"""seqjax.cells.lstm.lstm."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from seqjax.cells.base import (
    Cell,
    _affine_input,
    _gated,
    _input_size,
    gate_weights,
    preactivation,
)
from seqjax.cells.fused_bptt import FusedBPTT
from seqjax.typing import Array, Params


class LSTMCarry(NamedTuple):
    """LSTM state: hidden output ``h`` and memory cell ``c``."""

    h: Array
    c: Array


def lstm_update(carry: Any, z: Array) -> tuple[Any, Array, tuple[Array, ...]]:
    """The LSTM update from ``z`` (blocks i, f, g, o) to ``(c_t, h_t)``, and the backward's residuals.

    .. math::  c_t = σ(z_f) ⊙ c_{t-1} + σ(z_i) ⊙ \\tanh(z_g), \\qquad h_t = σ(z_o) ⊙ \\tanh(c_t)
    """
    i, f, g, o = jnp.split(z, 4, axis=-1)
    i, f, g, o = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)
    c = f * carry.c + i * g
    tau = jnp.tanh(c)
    h = o * tau
    return carry._replace(h=h, c=c), h, (carry.c, i, f, g, o, tau)


def lstm_bptt(dtype: Any) -> FusedBPTT:
    """LSTM (blocks i, f, g, o); with ``τ = tanh(c_t)``:

    .. math::
        \\bar o &= g \\odot τ, \\qquad \\bar c = \\bar c_t + g \\odot o \\odot (1 - τ^2) \\\\
        \\bar i &= \\bar c \\odot \\tilde g, \\quad \\bar f = \\bar c \\odot c_{t-1}, \\quad
        \\bar{\\tilde g} = \\bar c \\odot i, \\quad \\bar c_{t-1} = \\bar c \\odot f \\\\
        \\bar z &= [\\bar i\\, σ'_i,\\; \\bar f\\, σ'_f,\\; \\bar{\\tilde g} (1 - \\tilde g^2),\\; \\bar o\\, σ'_o]
    """
    def forward(params, carry, x):
        return lstm_update(carry, preactivation(params, carry.h, x, dtype))

    def backward(params, h_prev, residuals, d_carry, d_y):
        c_prev, i, f, g, o, tau = residuals
        d_h = d_carry.h + d_y
        d_c = d_carry.c + d_h * o * (1.0 - tau * tau)
        dz = (d_c * g * i * (1.0 - i), d_c * c_prev * f * (1.0 - f), d_c * i * (1.0 - g * g),
              d_h * tau * o * (1.0 - o))
        return d_carry._replace(h=jnp.zeros_like(d_h), c=d_c * f), dz, (None,) * 4, {}

    return FusedBPTT(forward=forward, backward=backward, hidden=lambda carry: carry.h,
                     add_hidden=lambda d_carry, d_h: d_carry._replace(h=d_carry.h + d_h))


def lstm(
    hidden_size: int,
    *,
    forget_bias: float = 1.0,
    recurrent: str = "orthogonal",
    spectral_norm: float | None = None,
    dtype: Any = jnp.float32,
    param_dtype: Any = jnp.float32,
) -> Cell:
    """Long short-term memory cell (Hochreiter & Schmidhuber 1997; forget gate of Gers et al. 2000).

    Gates act on ``[h_{t-1}, x_t]``; ``W_h``, ``W_x`` and ``b`` hold the four
    blocks in the order i, f, g, o (PyTorch's order):

    .. math::
        i_t &= \\sigma(W_{hi} h_{t-1} + W_{xi} x_t + b_i) \\\\
        f_t &= \\sigma(W_{hf} h_{t-1} + W_{xf} x_t + b_f) \\\\
        g_t &= \\tanh(W_{hg} h_{t-1} + W_{xg} x_t + b_g) \\\\
        o_t &= \\sigma(W_{ho} h_{t-1} + W_{xo} x_t + b_o) \\\\
        c_t &= f_t \\odot c_{t-1} + i_t \\odot g_t \\\\
        h_t &= o_t \\odot \\tanh(c_t)

    The carry is ``LSTMCarry(h, c)``; the output is ``h_t``.

    Args:
      forget_bias: initial value of ``b_f`` (default 1.0, Jozefowicz et al. 2015).
      recurrent, spectral_norm, dtype, param_dtype: as for :func:`rnn`; the
        recurrent initializer applies to each gate's ``hidden x hidden`` block.
    """
    weights = gate_weights(hidden_size, 4, recurrent=recurrent, spectral_norm=spectral_norm, param_dtype=param_dtype)
    H = hidden_size

    def init(key: Array, input_size: int) -> Params:
        params = weights(key, input_size)
        params["b"] = params["b"].at[H : 2 * H].set(forget_bias)
        return params

    def initial_carry(batch_shape: tuple[int, ...]) -> LSTMCarry:
        zeros = jnp.zeros((*batch_shape, H), dtype)
        return LSTMCarry(h=zeros, c=zeros)

    def update(carry: LSTMCarry, z: Array) -> tuple[LSTMCarry, Array]:
        return lstm_update(carry, z)[:2]

    recur, step = _gated(update, lambda carry: carry.h, dtype)
    return Cell(init=init, initial_carry=initial_carry, input_proj=_affine_input(dtype), recur=recur, step=step,
                input_size=_input_size, hidden_size=H, name="lstm", bptt=lstm_bptt(dtype))
