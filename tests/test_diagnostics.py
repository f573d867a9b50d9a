"""Gradient flow against closed forms: exact geometric decay for a linearised RNN, and the Pascanu bound."""

import numpy as np
import pytest
import jax
import jax.numpy as jnp

import seqjax
from seqjax.cells.diagnostics import gradient_flow, safe_norm, spectral_norm


@pytest.mark.parametrize("s", [0.5, 1.5])
def test_linear_regime_decays_exactly_geometrically(s):
    # zero input, zero bias, zero state: tanh'(0) = 1, so dL/da_t = (W_h)^{T-t} v and W_h = s * orthogonal
    cell = seqjax.rnn(16, spectral_norm=s)
    g = np.asarray(gradient_flow(cell, cell.init(jax.random.key(0), 3), jnp.zeros((2, 12, 3))))
    np.testing.assert_allclose(g / g[-1], s ** np.arange(11, -1, -1), rtol=1e-4)


@pytest.mark.parametrize("s", [0.7, 1.0, 2.0])
def test_each_step_back_shrinks_the_signal_by_at_most_the_spectral_norm(s):
    # dL/da_t = tanh'(a_t) * (W_h dL/da_{t+1}) and |tanh'| <= 1  =>  ||dL/da_t|| <= s ||dL/da_{t+1}||
    cell = seqjax.rnn(24, spectral_norm=s, recurrent="normal")
    params = cell.init(jax.random.key(1), 4)
    assert float(spectral_norm(params["w_h"])) == pytest.approx(s, rel=1e-4)
    xs = jax.random.normal(jax.random.key(2), (1, 30, 4))
    g = np.asarray(gradient_flow(cell, params, xs))
    assert (g[:-1] <= s * g[1:] * (1 + 1e-4)).all()


def test_signals_below_float32_squares_are_measured_not_zero():
    # s = 0.5, zero input: the signal 100 steps back is 0.5^100 ~ 7.9e-31 (a float32 normal number) although
    # its square underflows; the norm must still follow s^d exactly (jnp.linalg.norm gave 0 from d ~ 63 on)
    s, T = 0.5, 101
    cell = seqjax.rnn(16, spectral_norm=s)
    g = np.asarray(gradient_flow(cell, cell.init(jax.random.key(0), 3), jnp.zeros((2, T, 3))))
    np.testing.assert_allclose(g / g[-1], s ** np.arange(T - 1, -1, -1), rtol=1e-3)


@pytest.mark.parametrize("scale", [1e-30, 1.0, 1e30])
def test_safe_norm_matches_a_float64_norm_where_squares_under_or_overflow(scale):
    x = np.random.default_rng(0).normal(size=(5, 7)) * scale
    expected = np.linalg.norm(x, axis=-1)  # float64: no under/overflow at these scales
    np.testing.assert_allclose(np.asarray(safe_norm(jnp.asarray(x, jnp.float32))), expected, rtol=1e-5)
