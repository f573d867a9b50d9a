"""Each cell's step with its residuals, and the step's hand-derived backward, for :mod:`seqjax.bptt`.

Notation: ``ā = ∂L/∂a``; ``g = h̄_t + ȳ_t`` is the total gradient reaching the
step's new hidden state (through the carry and through the output).  Every
backward returns ``(c̄_{t-1}^direct, z̄^x, z̄^h, p̄)`` as :class:`~seqjax.bptt.FusedBPTT`
describes; the path through ``h_{t-1} W_h`` is added by the driver.  The
derivatives use ``σ' = σ(1 - σ)`` and ``tanh' = 1 - tanh²``.  The forward
computes exactly what the cell's ``step`` computes (the same operations).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from seqjax.bptt import FusedBPTT

Array = jax.Array
Params = dict[str, Array]
ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}  # the Elman RNN's choices of φ


def _array_hidden() -> tuple[Callable[[Array], Array], Callable[[Array, Array], Array]]:
    return (lambda h: h), (lambda d_c, d_h: d_c + d_h)


def preactivation(params: Params, h: Array, x: Array, dtype: Any) -> Array:
    """``z = [h, x] [W_h; W_x] + b``: one matmul (the cells' ``step``)."""
    w = jnp.concatenate([params["w_h"], params["w_x"]], axis=0).astype(dtype)
    return jnp.concatenate([h, x.astype(dtype)], axis=-1) @ w + params["b"].astype(dtype)


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

    return FusedBPTT(forward, backward, *_array_hidden())


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

    return FusedBPTT(forward, backward, lambda carry: carry.h,
                     lambda d_carry, d_h: d_carry._replace(h=d_carry.h + d_h))


def gru_reset_after_update(params: Params, h: Array, xp: Array, dtype: Any) -> tuple[Array, Array, tuple[Array, ...]]:
    """The reset-after GRU update from ``xp = x W_x + b`` (blocks r, z, n), and the backward's residuals.

    .. math::
        r = σ(x_r + h W_{hr}), \\quad z = σ(x_z + h W_{hz}), \\quad
        n = \\tanh(x_n + r ⊙ (h W_{hn} + b_{hn})), \\quad h_t = (1 - z) ⊙ n + z ⊙ h
    """
    x_r, x_z, x_n = jnp.split(xp, 3, axis=-1)
    h_r, h_z, h_n = jnp.split(h @ params["w_h"].astype(dtype), 3, axis=-1)
    r, z = jax.nn.sigmoid(x_r + h_r), jax.nn.sigmoid(x_z + h_z)
    a = h_n + params["b_hn"].astype(dtype)
    n = jnp.tanh(x_n + r * a)
    h_new = (1.0 - z) * n + z * h
    return h_new, h_new, (r, z, n, a)


def gru_reset_after_bptt(input_proj: Callable[[Params, Array], Array], dtype: Any) -> FusedBPTT:
    """Reset-after GRU (blocks r, z, n), with ``a = W_{hn} h_{t-1} + b_{hn}``:

    .. math::
        \\bar z_t &= g \\odot (h_{t-1} - n), \\qquad \\bar n = g \\odot (1 - z_t) \\odot (1 - n^2) \\\\
        \\bar r &= \\bar n \\odot a\\, σ'_r, \\qquad \\bar{h}_{t-1}^{\\mathrm{direct}} = g \\odot z_t \\\\
        \\bar z^x &= [\\bar r,\\; \\bar z_t σ'_z,\\; \\bar n], \\qquad
        \\bar z^h = [\\bar r,\\; \\bar z_t σ'_z,\\; \\bar n \\odot r], \\qquad \\bar b_{hn} = \\bar n \\odot r
    """

    def forward(params, h, x):
        return gru_reset_after_update(params, h, input_proj(params, x), dtype)

    def backward(params, h_prev, residuals, d_h, d_y):
        r, z, n, a = residuals
        g = d_h + d_y
        d_n = g * (1.0 - z) * (1.0 - n * n)
        d_r = d_n * a * r * (1.0 - r)
        d_z = g * (h_prev - n) * z * (1.0 - z)
        d_a = d_n * r
        return g * z, (d_r, d_z, d_n), (None, None, d_a), {"b_hn": d_a}

    return FusedBPTT(forward, backward, *_array_hidden())
