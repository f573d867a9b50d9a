"""Flax layers: learned initial state, step form vs parallel form, merge modes, widths, dropout, counts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import seqjax
from seqjax import readout, readout_init, scan
from seqjax.cells.diagnostics import count_params
from seqjax.models.recurrent import Bidirectional, Recurrent, StackedRNN

B, T, I = 2, 5, 3


def _xs(seed=0, shape=(B, T, I)):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


two_kinds = pytest.mark.parametrize("kind", ["lstm", "gru_cho"])  # layers are cell-agnostic: tuple and array carry


@two_kinds
def test_learned_init_params_exist_and_set_the_initial_carry(kind, make_kind_cell, randomize):
    cell = make_kind_cell(kind, 4)
    layer = Recurrent(cell, learned_init=True)
    xs = _xs()
    params = layer.init(jax.random.key(0), xs)["params"]
    assert set(params) == {"cell", "initial_carry"}
    stored = params["initial_carry"]
    assert [a.shape for a in jax.tree.leaves(stored)] == [(4,)] * len(jax.tree.leaves(cell.initial_carry(())))
    # Zero at init, so the layer starts out as the plain one.
    np.testing.assert_array_equal(layer.apply({"params": params}, xs), Recurrent(cell).apply({"params": params}, xs))

    params = {"cell": params["cell"], "initial_carry": randomize(stored, seed=3)}
    y = layer.apply({"params": params}, xs)
    assert not np.allclose(y, Recurrent(cell).apply({"params": params}, xs))
    c0 = jax.tree.unflatten(jax.tree.structure(cell.initial_carry(())),
                            [jnp.broadcast_to(params["initial_carry"][k], (B, 4)) for k in sorted(stored)])
    np.testing.assert_allclose(y, scan.run(cell, params["cell"], xs, initial_carry=c0)[1], atol=1e-6)
    grads = jax.grad(lambda p: jnp.sum(layer.apply({"params": p}, xs) ** 2))(params)
    assert all(np.any(g != 0) for g in jax.tree.leaves(grads["initial_carry"]))


@two_kinds
def test_stacked_step_equals_parallel(kind, make_kind_cell, randomize):
    """Token by token from a (random) learned initial state, through two layers of different widths."""
    model = StackedRNN(cells=(make_kind_cell(kind, 4), make_kind_cell(kind, 3)), learned_init=True)
    xs = _xs(1)
    variables = {"params": randomize(model.init(jax.random.key(0), xs)["params"], seed=2)}
    carries, want = model.apply(variables, xs, return_carry=True)

    state = model.apply(variables, B, method="initial_state")
    ys = []
    for t in range(T):
        state, y_t = model.apply(variables, state, xs[:, t], method="step")
        ys.append(y_t)
    np.testing.assert_allclose(jnp.stack(ys, axis=1), want, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), state, carries)


@pytest.mark.parametrize("merge", ["sum", "mean", "callable"])
def test_merge_modes_combine_the_two_directions(merge, randomize):
    cell = seqjax.gru(3)
    xs, lengths = _xs(2), jnp.array([T, 2])
    concat = Bidirectional(cell)
    params = randomize(concat.init(jax.random.key(0), xs)["params"], seed=4)
    y = concat.apply({"params": params}, xs, lengths)
    y_f, y_b = np.asarray(y[..., :3]), np.asarray(y[..., 3:])
    modes = {"sum": ("sum", y_f + y_b), "mean": ("mean", (y_f + y_b) / 2),
             "callable": (lambda a, b: a * b, y_f * y_b)}
    mode, want = modes[merge]
    got = Bidirectional(cell, merge=mode).apply({"params": params}, xs, lengths)
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_array_equal(got[1, 2:], 0.0)


def test_per_layer_widths_and_dropout_between_layers():
    model = StackedRNN(cells=(seqjax.lstm(4), seqjax.rnn(2)), dropout=0.5)
    xs = _xs(3)
    params = model.init(jax.random.key(0), xs)["params"]
    assert params["layers_0"]["cell"]["w_x"].shape == (I, 16)
    assert params["layers_1"]["cell"]["w_x"].shape == (4, 2)
    y_det = model.apply({"params": params}, xs)
    assert y_det.shape == (B, T, 2)
    y_drop = model.apply({"params": params}, xs, deterministic=False, rngs={"dropout": jax.random.key(1)})
    assert not np.allclose(y_drop, y_det)
    # Dropout sits between layers only: a one-layer stack is unaffected.
    single = StackedRNN(cells=(seqjax.lstm(4),), dropout=0.5)
    p1 = single.init(jax.random.key(0), xs)
    np.testing.assert_array_equal(single.apply(p1, xs, deterministic=False, rngs={"dropout": jax.random.key(1)}),
                                  single.apply(p1, xs))


@pytest.mark.parametrize(("hidden", "inputs"), [(4, 3), (7, 2)])
def test_count_params_closed_form_and_order(hidden, inputs):
    H, I_ = hidden, inputs

    def count(cell):
        return count_params(jax.eval_shape(StackedRNN(cells=(cell,)).init, jax.random.key(0), jnp.ones((1, 2, I_))))

    counts = {"rnn": count(seqjax.rnn(H)), "gru": count(seqjax.gru(H)), "lstm": count(seqjax.lstm(H))}
    assert counts == {"rnn": H * (I_ + H + 1), "gru": 3 * H * (I_ + H + 1) + H, "lstm": 4 * H * (I_ + H + 1)}
    assert counts["rnn"] < counts["gru"] < counts["lstm"]
    assert count(seqjax.gru(H, variant="cho")) == 3 * H * (I_ + H + 1)


def test_readout_is_affine(randomize):
    params = randomize(readout_init(jax.random.key(0), 4, 2), seed=5)
    assert {k: v.shape for k, v in params.items()} == {"w_o": (4, 2), "b_o": (2,)}
    h = np.random.default_rng(6).normal(size=(B, T, 4)).astype(np.float32)
    want = np.einsum("bth,ho->bto", h, np.asarray(params["w_o"])) + np.asarray(params["b_o"])
    np.testing.assert_allclose(readout(params, jnp.asarray(h)), want, atol=1e-5)


def test_recurrent_layer_is_the_scan_of_its_cell(randomize):
    """The Flax layer adds parameters only: same numbers as the pure function, reversed included."""
    cell = seqjax.lstm(3)
    xs, lengths = _xs(7), jnp.array([T, 3])
    for reverse in (False, True):
        layer = Recurrent(cell, reverse=reverse)
        params = randomize(layer.init(jax.random.key(0), xs)["params"], seed=8)
        got = layer.apply({"params": params}, xs, lengths, return_carry=True)
        want = scan.run(cell, params["cell"], xs, lengths=lengths, reverse=reverse)
        jax.tree.map(np.testing.assert_array_equal, got, want)
