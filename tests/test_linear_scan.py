"""linear_scan: every method against a plain Python loop, values and gradients, real and complex."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqjax.ops.linear_scan import linear_scan, resolve_method

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
