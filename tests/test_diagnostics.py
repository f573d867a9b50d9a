"""Gradient flow against closed forms: exact geometric decay for a linearised RNN, and the Pascanu bound."""

import numpy as np
import pytest
import jax
import jax.numpy as jnp

import seqjax
from seqjax.cells.diagnostics import gradient_flow, spectral_norm


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
