"""linear_scan: every method against a plain Python loop, values and gradients, real and complex."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqjax.ops.linear_scan import linear_scan, log_linear_scan, resolve_method

METHODS = ["associative", "sequential", "chunked", "auto"]


def loop_reference(a, b, h0):
    """``h_t = a_t h_{t-1} + b_t``, one Python iteration per step, in NumPy."""
    h, out = h0, []
    for t in range(b.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return np.stack(out, axis=1)


def draw(rng, shape, complex_):
    x = rng.normal(size=shape)
    return (x + 1j * rng.normal(size=shape)) if complex_ else x


def draw_case(shape, complex_, seed):
    """``(a, b, h0, w)`` in float32/complex64 with ``|a| < 1`` on average; ``w`` weights a loss."""
    batch, time, feats = shape
    rng = np.random.default_rng(seed)
    full = (batch, time, *feats)
    dtype = np.complex64 if complex_ else np.float32
    a = 0.8 * draw(rng, full, complex_) / np.sqrt(2 if complex_ else 1)
    b, h0, w = (draw(rng, s, complex_) for s in (full, (batch, *feats), full))
    return tuple(x.astype(dtype) for x in (a, b, h0, w))


shapes = st.tuples(
    st.integers(1, 3),  # batch
    st.integers(1, 13),  # time
    st.lists(st.integers(1, 3), min_size=0, max_size=2),  # feature dims
)


@pytest.mark.parametrize("complex_", [False, True])
@settings(max_examples=5, deadline=None)
@given(shape=shapes, chunk=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_methods_match_python_loop(shape, complex_, chunk, seed):
    a, b, h0, _ = draw_case(shape, complex_, seed)
    want = loop_reference(a.astype(np.complex128), b.astype(np.complex128), h0.astype(np.complex128))
    run_all = jax.jit(lambda a, b, h0: [linear_scan(a, b, h0, method=m, chunk_size=chunk) for m in METHODS])
    for method, got in zip(METHODS, run_all(a, b, h0)):
        assert got.dtype == b.dtype
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-4, err_msg=method)


def adjoint_reference(a, b, h0, w):
    """Gradients of ``L = sum_t Re(conj(W_t) h_t)`` by the adjoint recurrence, in NumPy.

    ``mu_t = conj(W_t) + a_{t+1} mu_{t+1}``; then ``dL/db_t = mu_t``,
    ``dL/da_t = mu_t h_{t-1}``, ``dL/dh0 = a_0 mu_0`` (JAX's convention for
    complex inputs: the derivative ``2 dL/dz`` of a holomorphic dependence).
    """
    h = loop_reference(a, b, h0)
    h_prev = np.concatenate([h0[:, None], h[:, :-1]], axis=1)
    mu = np.zeros_like(h)
    nxt = np.zeros_like(h[:, 0])
    for t in reversed(range(b.shape[1])):
        nxt = np.conj(w[:, t]) + (a[:, t + 1] * nxt if t + 1 < b.shape[1] else 0)
        mu[:, t] = nxt
    return mu * h_prev, mu, a[:, 0] * mu[:, 0]


@pytest.mark.parametrize("complex_", [False, True])
@settings(max_examples=3, deadline=None)
@given(shape=shapes, chunk=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_gradients_match_adjoint(shape, complex_, chunk, seed):
    a, b, h0, w = draw_case(shape, complex_, seed)
    want = adjoint_reference(*(x.astype(np.complex128) for x in (a, b, h0, w)))

    def grads(a, b, h0):
        def loss(method):
            return lambda a, b, h0: jnp.sum(jnp.real(jnp.conj(w) * linear_scan(a, b, h0, method=method, chunk_size=chunk)))

        return [jax.grad(loss(m), argnums=(0, 1, 2))(a, b, h0) for m in METHODS]

    for method, got in zip(METHODS, jax.jit(grads)(a, b, h0)):
        for g, r in zip(got, want):
            np.testing.assert_allclose(np.asarray(g), r, rtol=1e-4, atol=1e-4, err_msg=method)


def test_zero_initial_state_and_broadcast_a():
    """``h0=None`` means zeros; a scalar-per-step ``a [B, T, 1]`` broadcasts over features."""
    rng = np.random.default_rng(0)
    a, b = rng.uniform(size=(2, 7, 1)).astype(np.float32), rng.normal(size=(2, 7, 3)).astype(np.float32)
    want = loop_reference(np.broadcast_to(a, b.shape), b, np.zeros((2, 3)))
    run_all = jax.jit(lambda a, b: [linear_scan(a, b, method=m, chunk_size=3) for m in METHODS])
    for got in run_all(a, b):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_bad_method_and_auto():
    with pytest.raises(ValueError, match="unknown linear_scan method 'fast'"):
        linear_scan(jnp.ones((1, 2)), jnp.ones((1, 2)), method="fast")
    assert resolve_method("auto") == ("sequential" if jax.default_backend() == "cpu" else "associative")


# --- resets, lengths and the log-space form (issue 17) ---------------------------------------------------------


def masked_loop(a, b, h0, resets, lengths):
    """NumPy: ``h_t = a_t h_{t-1} + b_t`` with ``a_t = 0`` at resets; past ``lengths`` h held, output 0."""
    h, out = h0.copy(), np.zeros_like(b)
    for i in range(b.shape[0]):
        for t in range(lengths[i]):
            h[i] = (0 if resets[i, t] else a[i, t]) * h[i] + b[i, t]
            out[i, t] = h[i]
    return out, h


def draw_masked(kind, seed, batch=3, time=9, feats=(2,)):
    """``(a, b, h0, resets, lengths)`` in float64 / complex128; for ``kind="log"`` positive ``a, b, h0``."""
    rng = np.random.default_rng(seed)
    full = (batch, time, *feats)
    if kind == "log":
        a, b, h0 = rng.uniform(0.2, 1.0, full), rng.uniform(0.1, 2.0, full), rng.uniform(0.1, 2.0, (batch, *feats))
    else:
        a, b, h0, _ = (x.astype(np.complex128 if kind == "complex" else np.float64)
                       for x in draw_case((batch, time, feats), kind == "complex", seed))
    resets = rng.uniform(size=(batch, time)) < 0.25
    lengths = rng.integers(1, time + 1, size=batch)
    lengths[0] = time
    return a, b, h0, resets, lengths


def run_kind(kind, a, b, h0, method, resets, lengths, chunk=4):
    """``(h, h_last)`` in linear space from the scan under test."""
    if kind != "log":
        return linear_scan(a, b, h0, method=method, chunk_size=chunk, resets=resets, lengths=lengths,
                           return_state=True)
    log_h, log_last = log_linear_scan(jnp.log(a), jnp.log(b), jnp.log(h0), method=method, chunk_size=chunk,
                                      resets=resets, lengths=lengths, return_state=True)
    return jnp.exp(log_h), jnp.exp(log_last)


KINDS = ["real", "complex", "log"]
CONCRETE = ["associative", "sequential", "chunked"]  # "auto" is one of them


@pytest.mark.parametrize("kind", KINDS)
def test_resets_and_lengths_match_numpy_loop(kind):
    """All three methods, with resets, lengths and an initial state, against the NumPy loop (float64, 1e-12)."""
    with jax.enable_x64(True):
        a, b, h0, resets, lengths = draw_masked(kind, seed=1)
        want, want_last = masked_loop(a, b, h0, resets, lengths)
        run = jax.jit(lambda *xs: [run_kind(kind, *xs[:3], m, *xs[3:]) for m in CONCRETE])
        for method, (got, last) in zip(CONCRETE, run(a, b, h0, resets, lengths)):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=method)
            np.testing.assert_allclose(last, want_last, rtol=1e-12, atol=1e-12, err_msg=method)


def sequential_reference(a, b, h0, resets, lengths):
    """The same equations as :func:`masked_loop`, one ``jnp`` step per token (differentiable by ``jax.grad``)."""
    h, out = h0, []
    for t in range(b.shape[1]):
        keep = (t < lengths).reshape(-1, *([1] * (b.ndim - 2)))
        a_t = jnp.where(resets[:, t].reshape(keep.shape), 0.0, a[:, t])
        h = jnp.where(keep, a_t * h + b[:, t], h)
        out.append(jnp.where(keep, h, 0.0))
    return jnp.stack(out, 1), h


@pytest.mark.parametrize("kind", KINDS)
def test_masked_gradients_match_grad_of_sequential_reference(kind):
    """``jax.grad`` through every method equals ``jax.grad`` of the per-token reference (float64)."""
    with jax.enable_x64(True):
        a, b, h0, resets, lengths = draw_masked(kind, seed=2)
        w = np.random.default_rng(3).normal(size=b.shape)

        def loss(run):
            def value(a, b, h0):
                h, last = run(a, b, h0)
                return jnp.sum(jnp.real(w * h)) + jnp.sum(jnp.real(jnp.cos(last)))
            return value

        if kind == "log":  # differentiate with respect to log a, log b, log h0
            a, b, h0 = np.log(a), np.log(b), np.log(h0)
            ref = loss(lambda *xs: sequential_reference(*map(jnp.exp, xs), resets, lengths))
        else:
            ref = loss(lambda *xs: sequential_reference(*xs, resets, lengths))
        want = jax.grad(ref, argnums=(0, 1, 2))(a, b, h0)

        def under_test(method):
            if kind == "log":
                return lambda *xs: tuple(map(jnp.exp, log_linear_scan(
                    *xs, method=method, chunk_size=4, resets=resets, lengths=lengths, return_state=True)))
            return lambda *xs: run_kind(kind, *xs, method, resets, lengths)

        grads = jax.jit(lambda *xs: [jax.grad(loss(under_test(m)), argnums=(0, 1, 2))(*xs) for m in CONCRETE])
        for method, got in zip(CONCRETE, grads(a, b, h0)):
            for g, r in zip(got, want):
                assert np.isfinite(np.asarray(g)).all(), method
                np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-10, err_msg=method)


@settings(max_examples=4, deadline=None)
@given(cuts=st.lists(st.integers(1, 5), min_size=1, max_size=4), log=st.booleans(), seed=st.integers(0, 2**16))
def test_resets_equal_segments_run_alone(cuts, log, seed):
    """A packed row with resets at segment starts equals each segment scanned alone from the empty state."""
    rng = np.random.default_rng(seed)
    time = sum(cuts)
    a, b = rng.uniform(0.2, 1.0, (1, time, 2)).astype(np.float32), rng.uniform(0.1, 2, (1, time, 2)).astype(np.float32)
    resets = np.zeros((1, time), bool)
    resets[0, np.cumsum([0, *cuts[:-1]])] = True
    scan = (lambda a, b, h0=None, **kw: jnp.exp(log_linear_scan(jnp.log(a), jnp.log(b), h0, **kw))) if log else linear_scan
    h0 = np.full((1, 2), 3.0, np.float32)  # dropped by the reset at t = 0
    packed = scan(a, b, np.log(h0) if log else h0, resets=resets, method="associative")
    starts = np.cumsum([0, *cuts])
    alone = np.concatenate([scan(a[:, s:e], b[:, s:e], method="sequential") for s, e in zip(starts, starts[1:])], 1)
    np.testing.assert_allclose(packed, alone, rtol=1e-5, atol=1e-6)
