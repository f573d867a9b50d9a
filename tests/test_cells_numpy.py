"""Every cell against its equations written out again in NumPy (tests/reference_numpy.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import reference_numpy as ref
from seqjax import LSTMCarry, lstm, scan

B, T, I, H = 3, 6, 4, 5


def _np(tree):
    return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def _random_carry(kind, seed):
    rng = np.random.default_rng(seed)
    draw = lambda: rng.normal(size=(B, H)).astype(np.float32)  # noqa: E731
    return (draw(), draw()) if kind == "lstm" else draw()


def _as_seqjax_carry(kind, carry):
    return LSTMCarry(*map(jnp.asarray, carry)) if kind == "lstm" else jnp.asarray(carry)


def _example(carry, b):
    return jax.tree.map(lambda a: np.asarray(a, np.float64)[b], carry)


def test_single_step_matches_numpy(kind, make_kind_cell, randomize):
    cell = make_kind_cell(kind, H)
    params = randomize(cell.init(jax.random.key(0), I), seed=1)
    carry = _random_carry(kind, seed=2)
    x = np.random.default_rng(3).normal(size=(B, I)).astype(np.float32)

    new_carry, h = cell.step(params, _as_seqjax_carry(kind, carry), jnp.asarray(x))

    for b in range(B):
        want = ref.step_fn(kind)(_np(params), _example(carry, b), x[b].astype(np.float64))
        np.testing.assert_allclose(h[b], ref.output_of(kind, want), atol=1e-5)
        np.testing.assert_allclose(np.asarray(jax.tree.leaves(new_carry))[:, b], np.reshape(want, (-1, H)), atol=1e-5)


@pytest.mark.parametrize("reverse", [False, True])
def test_sequence_matches_numpy(kind, reverse, make_kind_cell, randomize):
    cell = make_kind_cell(kind, H)
    params = randomize(cell.init(jax.random.key(0), I), seed=4)
    carry0 = _random_carry(kind, seed=5)
    xs = np.random.default_rng(6).normal(size=(B, T, I)).astype(np.float32)

    carry, ys = scan.run(cell, params, jnp.asarray(xs), initial_carry=_as_seqjax_carry(kind, carry0), reverse=reverse)

    assert ys.shape == (B, T, H)
    for b in range(B):
        want_carry, want_ys = ref.run_sequence(
            kind, _np(params), xs[b].astype(np.float64), _example(carry0, b), reverse=reverse
        )
        np.testing.assert_allclose(ys[b], want_ys, atol=1e-5)
        np.testing.assert_allclose(np.asarray(jax.tree.leaves(carry))[:, b], np.reshape(want_carry, (-1, H)), atol=1e-5)


def test_step_is_recur_after_input_proj(kind, make_kind_cell, randomize):
    cell = make_kind_cell(kind, H)
    params = randomize(cell.init(jax.random.key(0), I), seed=7)
    carry = _as_seqjax_carry(kind, _random_carry(kind, seed=8))
    x = jnp.asarray(np.random.default_rng(9).normal(size=(B, I)), jnp.float32)
    split = cell.recur(params, carry, cell.input_proj(params, x))
    # the same equations; rnn/lstm's step does [h, x] [W_h; W_x] as one matmul, so equal up to rounding
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), cell.step(params, carry, x), split)


@pytest.mark.parametrize("forget_bias", [1.0, 2.5])
def test_lstm_forget_bias_init(forget_bias):
    b = np.asarray(lstm(H, forget_bias=forget_bias).init(jax.random.key(0), I)["b"])
    i, f, g, o = np.split(b, 4)
    np.testing.assert_array_equal(f, np.full(H, forget_bias))
    np.testing.assert_array_equal(np.concatenate([i, g, o]), np.zeros(3 * H))
