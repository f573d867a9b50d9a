"""The hand-derived backward pass (seqjax.cells.fused_bptt, seqjax.cells) against autodiff and finite differences."""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import FrozenDict
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

import seqjax
from conftest import CELL_KINDS
from seqjax import scan
from seqjax.cells.fused_bptt import by_name, run_fused

B, T, I, H = 3, 6, 4, 5
FUSED_KINDS = ["rnn_tanh", "rnn_relu", "lstm", "gru_reset_after"]


def _setup(make_kind_cell, randomize, kind):
    cell = make_kind_cell(kind, H, dtype=jnp.float64, param_dtype=jnp.float64)
    params = randomize(cell.init(jax.random.key(0), I), seed=1)
    rng = np.random.default_rng(2)
    xs = jnp.asarray(rng.normal(size=(B, T, I)))
    carry0 = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape)), cell.initial_carry((B,)))
    return cell, params, xs, carry0


def _loss(cell, lengths, reverse, bptt):
    """Touches every output, the final carry (both parts for the LSTM) and depends on the initial carry."""
    weights = jnp.asarray(np.random.default_rng(3).normal(size=(B, T, H)))

    def loss(params, xs, carry0):
        carry, ys = scan.run(cell, params, xs, lengths=lengths, reverse=reverse, initial_carry=carry0, bptt=bptt)
        return jnp.sum(ys * weights) + sum(jnp.sum(jnp.sin(c)) for c in jax.tree.leaves(carry))

    return loss


def test_every_cell_but_cho_has_a_fused_backward(make_kind_cell):
    assert {k for k in CELL_KINDS if make_kind_cell(k, H).bptt is not None} == set(FUSED_KINDS)


@pytest.mark.parametrize("kind", FUSED_KINDS)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, (T, 3, 0)])
def test_fused_gradients_equal_autodiff(kind, reverse, lengths, make_kind_cell, randomize):
    """Gradients wrt params, inputs and the initial carry; a zero length holds the carry throughout."""
    with jax.enable_x64(True):
        cell, params, xs, carry0 = _setup(make_kind_cell, randomize, kind)
        lengths = None if lengths is None else jnp.asarray(lengths)
        fused = _loss(cell, lengths, reverse, "fused")
        autodiff = _loss(cell, lengths, reverse, "autodiff")
        assert float(fused(params, xs, carry0)) == float(autodiff(params, xs, carry0))
        got = jax.grad(fused, argnums=(0, 1, 2))(params, xs, carry0)
        want = jax.grad(autodiff, argnums=(0, 1, 2))(params, xs, carry0)
        jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12), got, want)


@pytest.mark.parametrize("kind", FUSED_KINDS)
def test_fused_gradients_pass_check_grads(kind, make_kind_cell, randomize):
    """Finite differences: an independent reference, with lengths and a reversed scan."""
    with jax.enable_x64(True):
        cell, params, xs, carry0 = _setup(make_kind_cell, randomize, kind)
        check_grads(_loss(cell, jnp.asarray([T, 4, 1]), True, "fused"), (params, xs, carry0), order=1,
                    modes=["rev"])


def test_fused_gradients_under_jit_in_float32(make_kind_cell, randomize):
    cell = make_kind_cell("lstm", H)
    params = randomize(cell.init(jax.random.key(0), I), seed=1)
    xs = jnp.asarray(np.random.default_rng(4).normal(size=(B, T, I)), jnp.float32)
    grads = {
        mode: jax.jit(jax.grad(lambda p, x, m=mode: jnp.sum(scan.run(cell, p, x, bptt=m)[1] ** 2)))(params, xs)
        for mode in ("fused", "autodiff")
    }
    jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6), grads["fused"], grads["autodiff"])
    assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(grads["fused"]))


def test_autodiff_mode_supports_forward_mode(make_kind_cell, randomize):
    cell = make_kind_cell("gru_reset_after", H)
    params = randomize(cell.init(jax.random.key(0), I), seed=1)
    xs = jnp.ones((B, T, I))
    run = lambda x, mode: scan.run(cell, params, x, bptt=mode)[1]  # noqa: E731
    _, tangent = jax.jvp(lambda x: run(x, "autodiff"), (xs,), (jnp.ones_like(xs),))
    _, vjp = jax.vjp(lambda x: run(x, "fused"), xs)
    # <v, J u> = <J^T v, u>: forward mode (autodiff) agrees with the fused reverse mode.
    v = jnp.asarray(np.random.default_rng(5).normal(size=tangent.shape), tangent.dtype)
    np.testing.assert_allclose(jnp.sum(v * tangent), jnp.sum(vjp(v)[0]), rtol=1e-4)


def test_unknown_bptt_mode_is_one_line(make_kind_cell):
    cell = make_kind_cell("lstm", H)
    with pytest.raises(ValueError, match="unknown bptt 'manual'.*'fused', 'autodiff'"):
        scan.run(cell, cell.init(jax.random.key(0), I), jnp.ones((B, T, I)), bptt="manual")


@pytest.mark.parametrize("kind", FUSED_KINDS)
def test_bfloat16_compute_keeps_float32_parameter_gradients(kind, make_kind_cell, randomize):
    cell = make_kind_cell(kind, H, dtype=jnp.bfloat16)
    params = randomize(cell.init(jax.random.key(0), I), seed=1)
    xs = jnp.asarray(np.random.default_rng(6).normal(size=(B, T, I)), jnp.float32)

    def grad(mode):
        loss = lambda p: jnp.sum(scan.run(cell, p, xs, lengths=jnp.asarray([T, 3, 5]), bptt=mode)[1]  # noqa: E731
                                 .astype(jnp.float32) ** 2)
        return jax.grad(loss)(params)

    fused, autodiff = grad("fused"), grad("autodiff")
    for k in params:
        assert fused[k].dtype == jnp.float32
        scale = float(jnp.max(jnp.abs(autodiff[k])))
        assert float(jnp.max(jnp.abs(fused[k] - autodiff[k]))) <= 0.05 * scale, k  # bf16 rounding, two orders


def test_fused_backward_under_vmap_and_second_order(make_kind_cell, randomize):
    """Per-example gradients (vmap of grad) and a gradient of a gradient equal autodiff's."""
    with jax.enable_x64(True):
        cell, params, xs, _ = _setup(make_kind_cell, randomize, "lstm")

        def loss(p, x, mode):
            return jnp.sum(jnp.tanh(scan.run(cell, p, x[None], bptt=mode)[1]))

        def second(mode):
            return jax.grad(lambda p: jnp.sum(jax.grad(loss)(p, xs[0], mode)["w_h"] ** 2))(params)

        for mode_fn in (lambda m: jax.vmap(jax.grad(loss), in_axes=(None, 0, None))(params, xs, m), second):
            jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12),
                         mode_fn("fused"), mode_fn("autodiff"))


def _containers(params: dict) -> dict:
    """The same parameters in each container a caller may hand the fused backward."""
    fields = collections.namedtuple("CellParams", sorted(params))
    return {
        "dict": dict(params),
        "FrozenDict": FrozenDict(params),  # what Flax's module.param trees hold (the seq2seq crash)
        "NamedTuple": fields(**params),
        "nested": FrozenDict({**params, "extra": {"unused": jnp.ones((2,)), "t": (jnp.zeros(()),)}}),
    }


@pytest.mark.parametrize("container", ["dict", "FrozenDict", "NamedTuple", "nested"])
@settings(max_examples=4, deadline=None)
@given(kind=st.sampled_from(FUSED_KINDS), transform=st.sampled_from(["none", "jit", "vmap", "remat"]), compute=st.sampled_from(["float32", "bfloat16"]))
def test_fused_cotangents_keep_the_callers_containers(kind, container, transform, compute):
    """Any pytree container in, the same container of gradients out, equal to autodiff of the plain scan."""
    name, options = CELL_KINDS[kind]
    cell = seqjax.make_cell(name, H, dtype=jnp.dtype(compute), **options)
    rng = np.random.default_rng(7)
    base = jax.tree.map(lambda a: jnp.asarray(rng.normal(scale=0.5, size=a.shape), a.dtype),
                        cell.init(jax.random.key(0), I))
    params = _containers(base)[container]
    xs = jnp.asarray(rng.normal(size=(B, T, I)), jnp.float32)

    def fused_loss(p, x):
        carry0 = cell.initial_carry((x.shape[0],))
        _, ys = run_fused(cell.bptt, p, carry0, jnp.swapaxes(x, 0, 1), None)
        return jnp.sum(jnp.tanh(ys.astype(jnp.float32)))

    def autodiff_loss(p, x):
        return jnp.sum(jnp.tanh(scan.run(cell, p, x, bptt="autodiff")[1].astype(jnp.float32)))

    def grad(loss, p):
        if transform == "vmap":  # per-example gradients
            return jax.vmap(jax.grad(loss), in_axes=(None, 0))(p, xs[:, None])
        wrapped = {"none": loss, "jit": jax.jit(loss), "remat": jax.checkpoint(loss)}[transform]
        return jax.grad(wrapped)(p, xs)

    got = grad(fused_loss, params)
    assert jax.tree.structure(got) == jax.tree.structure(params)
    assert [g.dtype for g in jax.tree.leaves(got)] == [p.dtype for p in jax.tree.leaves(params)]
    want = grad(autodiff_loss, base)
    got_named = by_name(got)
    tol = 1e-5 if compute == "float32" else 0.05
    for k, w in want.items():
        scale = float(jnp.max(jnp.abs(w))) or 1.0
        np.testing.assert_allclose(got_named[k], w, atol=tol * scale, rtol=0, err_msg=k)
    if container == "nested":
        assert all(not np.any(np.asarray(g)) for g in jax.tree.leaves(got_named["extra"]))


def test_fused_backward_refuses_a_container_without_names(make_kind_cell):
    cell = make_kind_cell("lstm", H)
    params = cell.init(jax.random.key(0), I)
    with pytest.raises(TypeError, match="mapping or NamedTuple.*got list"):
        run_fused(cell.bptt, list(params.values()), cell.initial_carry((B,)), jnp.ones((T, B, I)), None)
