"""The scan driver: gradients, remat/unroll equivalence, returned carries, dtypes, initializers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from conftest import CELL_KINDS
from seqjax import make_cell, scan

B, T, I, H = 2, 4, 3, 3
LENGTHS = np.array([T, 2])


def _setup(make_kind_cell, randomize, kind, dtype=jnp.float32, **options):
    cell = make_kind_cell(kind, H, dtype=dtype, param_dtype=dtype, **options)
    params = randomize(cell.init(jax.random.key(0), I), seed=1)
    xs = jnp.asarray(np.random.default_rng(2).normal(size=(B, T, I)), dtype)
    return cell, params, xs


def _loss(cell, lengths, **options):
    """A scalar touching every output and the final carry, with fixed random weights."""
    weights = jnp.asarray(np.random.default_rng(3).normal(size=(B, T, H)))

    def loss(params, xs):
        carry, ys = scan.run(cell, params, xs, lengths=lengths, **options)
        return jnp.sum(ys * weights.astype(ys.dtype)) + sum(jnp.sum(jnp.sin(c)) for c in jax.tree.leaves(carry))

    return loss


def test_gradients_pass_check_grads(kind, make_kind_cell, randomize):
    """With lengths, reversed and rematerialised: the hardest path (the others' gradients are compared below)."""
    with jax.enable_x64(True):
        cell, params, xs = _setup(make_kind_cell, randomize, kind, jnp.float64)
        loss = _loss(cell, jnp.asarray(LENGTHS), reverse=True, remat=True)
        check_grads(loss, (params, xs), order=1, modes=["rev"])
        # Padded inputs cannot influence anything.
        g_xs = jax.grad(loss, argnums=1)(params, xs)
        np.testing.assert_array_equal(g_xs[1, LENGTHS[1]:], 0.0)


# The options are cell-agnostic: one cell with a tuple carry, one with an array carry.
@pytest.mark.parametrize(("kind", "reverse"), [("lstm", True), ("gru_cho", False)])
def test_remat_and_unroll_match_default(kind, reverse, make_kind_cell, randomize):
    cell, params, xs = _setup(make_kind_cell, randomize, kind)
    lengths = jnp.asarray(LENGTHS)
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # noqa: E731
    want = scan.run(cell, params, xs, lengths=lengths, reverse=reverse)
    for options in [dict(remat=True), dict(unroll=3), dict(unroll=True)]:
        jax.tree.map(close, scan.run(cell, params, xs, lengths=lengths, reverse=reverse, **options), want)
    g_want = jax.grad(_loss(cell, lengths, reverse=reverse))(params, xs)
    jax.tree.map(close, jax.grad(_loss(cell, lengths, reverse=reverse, remat=True))(params, xs), g_want)


@pytest.mark.parametrize("reverse", [False, True])
def test_return_carries_last_valid_equals_final(kind, reverse, make_kind_cell, randomize):
    cell, params, xs = _setup(make_kind_cell, randomize, kind)
    lengths = np.array([T, 2])
    final, ys, carries = scan.run(cell, params, xs, lengths=jnp.asarray(lengths), reverse=reverse,
                                  return_carries=True)
    for b, length in enumerate(lengths):
        last = 0 if reverse else length - 1  # the step that read the example's final valid input
        for c_all, c_final in zip(jax.tree.leaves(carries), jax.tree.leaves(final)):
            assert c_all.shape == (B, T, H)
            np.testing.assert_array_equal(c_all[b, last], c_final[b])
            if not reverse:  # padding holds the carry
                np.testing.assert_array_equal(c_all[b, length:], np.broadcast_to(c_final[b], (T - length, H)))
    np.testing.assert_array_equal(ys, scan.run(cell, params, xs, lengths=jnp.asarray(lengths), reverse=reverse)[1])


@pytest.mark.parametrize(("kind", "param_dtype"), [(k, jnp.bfloat16) for k in CELL_KINDS] + [("lstm", jnp.float32)])
def test_bfloat16_runs_close_to_float32(kind, param_dtype, make_kind_cell, randomize):
    cell32, params, xs = _setup(make_kind_cell, randomize, kind)
    cell16 = make_kind_cell(kind, H, dtype=jnp.bfloat16, param_dtype=param_dtype)
    params16 = cell16.init(jax.random.key(0), I)
    assert all(p.dtype == param_dtype for p in jax.tree.leaves(params16))
    params16 = jax.tree.map(lambda p: p.astype(param_dtype), params)
    carry, ys = scan.run(cell16, params16, xs, lengths=jnp.asarray(LENGTHS))
    assert ys.dtype == jnp.bfloat16
    assert all(c.dtype == jnp.bfloat16 for c in jax.tree.leaves(carry))
    _, want = scan.run(cell32, params, xs, lengths=jnp.asarray(LENGTHS))
    np.testing.assert_allclose(np.asarray(ys, np.float32), want, atol=0.1)


cell_name = pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])


@cell_name
@pytest.mark.parametrize("recurrent", ["orthogonal", "normal", "identity"])
@pytest.mark.parametrize("param_dtype", [jnp.float32, jnp.bfloat16])
def test_spectral_norm_sets_each_block(name, recurrent, param_dtype):
    target = 0.7
    cell = make_cell(name, 6, recurrent=recurrent, spectral_norm=target, param_dtype=param_dtype)
    w_h = np.asarray(cell.init(jax.random.key(0), I)["w_h"], np.float64)
    blocks = np.split(w_h, w_h.shape[1] // 6, axis=1)
    tol = 1e-5 if param_dtype == jnp.float32 else 2e-2
    for block in blocks:
        np.testing.assert_allclose(np.linalg.svd(block, compute_uv=False)[0], target, rtol=tol)


@cell_name
@pytest.mark.parametrize("recurrent", ["orthogonal", "identity"])
def test_recurrent_init_blocks_are_orthogonal(name, recurrent):
    w_h = np.asarray(make_cell(name, 6, recurrent=recurrent).init(jax.random.key(0), I)["w_h"], np.float64)
    for block in np.split(w_h, w_h.shape[1] // 6, axis=1):
        np.testing.assert_allclose(block.T @ block, np.eye(6), atol=1e-5)


def test_hoisted_input_projection_matches_in_loop_step(kind, make_kind_cell, randomize, monkeypatch):
    """Accelerators project all inputs before the scan, CPU runs ``step`` inside it: both forms agree."""
    cell, params, xs = _setup(make_kind_cell, randomize, kind)
    lengths = jnp.asarray(LENGTHS)
    results = {}
    for hoist in (False, True):
        monkeypatch.setattr(scan, "hoist_input_projection", lambda hoist=hoist: hoist)
        results[hoist] = scan.run(cell, params, xs, lengths=lengths, reverse=True, return_carries=True)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), results[True], results[False])
