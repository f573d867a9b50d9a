"""Mamba: selective scan vs a NumPy per-step loop, chunked/remat gradients, step form, init, memory."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from step_form import run_steps

from seqjax.errors import UserError
from seqjax.benchmarks.memory import compiled_memory
from seqjax.models.mamba import MambaBlock
from seqjax.ops.selective_scan import selective_scan
from seqjax.models.mamba import MambaOptions
from seqjax.models.registry import build_backbone


def numpy_selective_scan(u, dt, a, b, c, d):
    """x_t = exp(dt_t A) x_{t-1} + dt_t B_t u_t,  y_t = C_t x_t + D u_t, one step at a time in float64."""
    batch, steps, channels = u.shape
    x = np.zeros((batch, channels, a.shape[1]))
    ys = []
    for t in range(steps):
        x = np.exp(dt[:, t, :, None] * a) * x + (dt[:, t] * u[:, t])[:, :, None] * b[:, t, None, :]
        ys.append(np.einsum("bdn,bn->bd", x, c[:, t]) + d * u[:, t])
    return np.stack(ys, 1), x


def random_inputs(seed=0, batch=2, steps=13, channels=3, state=4):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(batch, steps, channels))
    dt = np.log1p(np.exp(rng.normal(size=(batch, steps, channels)) - 1.0))  # softplus: positive
    a = -np.tile(np.arange(1, state + 1, dtype=float), (channels, 1)) * rng.uniform(0.5, 1.5, (channels, state))
    b, c = rng.normal(size=(batch, steps, state)), rng.normal(size=(batch, steps, state))
    d = rng.normal(size=channels)
    return u, dt, a, b, c, d


@pytest.mark.parametrize("chunk_size,method", [(None, "associative"), (5, "sequential"), (4, "associative"), (1, "auto")])
def test_selective_scan_matches_numpy_loop(chunk_size, method):
    inputs = random_inputs()
    want_y, want_x = numpy_selective_scan(*inputs)
    y, x = jax.jit(lambda *xs: selective_scan(*xs, chunk_size=chunk_size, method=method))(
        *(jnp.asarray(v, jnp.float32) for v in inputs))
    scale = np.abs(want_y).max()
    np.testing.assert_allclose(y, want_y, rtol=1e-4, atol=1e-4 * scale)
    np.testing.assert_allclose(x, want_x, rtol=1e-4, atol=1e-4 * np.abs(want_x).max())


def test_chunked_remat_gradients_equal_single_pass():
    inputs = tuple(jnp.asarray(v, jnp.float32) for v in random_inputs(seed=1, steps=11))
    w = jax.random.normal(jax.random.key(0), inputs[0].shape)

    def loss(chunk_size, remat, method):
        return lambda *xs: jnp.sum(w * selective_scan(*xs, chunk_size=chunk_size, remat=remat, method=method)[0])

    argnums = tuple(range(6))
    want = jax.jit(jax.grad(loss(None, False, "sequential"), argnums))(*inputs)
    got = jax.jit(jax.grad(loss(4, True, "associative"), argnums))(*inputs)
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4 * float(jnp.abs(r).max()))


@pytest.mark.parametrize("chunk_size", [None, 4, 1])
def test_sequential_gradients_equal_associative_with_initial_state(chunk_size):
    """Gradients of the sequential (fused) scan equal those of the associative one, ``h0`` and ``x_L`` included."""
    inputs = tuple(jnp.asarray(v, jnp.float32) for v in random_inputs(seed=2, steps=10))
    h0 = jax.random.normal(jax.random.key(1), (2, 3, 4))
    w = jax.random.normal(jax.random.key(0), inputs[0].shape)

    def loss(method):
        def f(h0, *xs):
            y, x = selective_scan(*xs, h0=h0, chunk_size=chunk_size, method=method)
            return jnp.sum(w * y) + jnp.sum(x**2)
        return jax.jit(jax.grad(f, tuple(range(7))))

    for g, r in zip(loss("sequential")(h0, *inputs), loss("associative")(h0, *inputs)):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5 * float(jnp.abs(r).max()))


def test_initialization():
    block = MambaBlock(d_model=8, d_state=5, expand=2)
    params = block.init(jax.random.key(0), jnp.ones((1, 4, 8)))["params"]
    np.testing.assert_allclose(-jnp.exp(params["A_log"]), -np.tile(np.arange(1, 6), (16, 1)), rtol=1e-6)
    dt = jax.nn.softplus(params["dt_proj"]["bias"])
    assert jnp.all(dt >= 1e-3 * (1 - 1e-5)) and jnp.all(dt <= 0.1 * (1 + 1e-5))
    np.testing.assert_array_equal(params["D"], np.ones(16))
    assert params["conv"]["kernel"].shape == (4, 1, 16)  # depthwise


@pytest.mark.parametrize("chunk_size,method", [(4, "auto"), (None, "associative")])
def test_step_form_reproduces_parallel_outputs(chunk_size, method):
    model = build_backbone("mamba", MambaOptions(d_model=8, n_layers=2, d_state=4, chunk_size=chunk_size,
                                                  scan_method=method))
    x = jax.random.normal(jax.random.key(3), (2, 15, 5))
    params = model.init(jax.random.key(0), x)
    y = model.apply(params, x)
    state = model.apply(params, 2, method=model.initial_state)
    assert state[0][0].shape == (2, 3, 16) and state[0][1].shape == (2, 16, 4)  # (conv_state, ssm_state)
    np.testing.assert_allclose(run_steps(model, params, x), y, rtol=1e-4, atol=1e-4)


def test_training_never_holds_the_full_state_sequence():
    """Doubling L adds far less than one [batch, L, d_inner, d_state] array to a chunked+remat gradient.

    Temp memory is read from XLA's compiled memory analysis; the unchunked,
    un-rematerialized associative scan (which keeps the whole state sequence)
    is the control that shows the check can fail.
    """
    batch, channels, state = 2, 16, 64

    def temp_bytes(length, chunk_size, method, remat):
        inputs = [jnp.ones(s) for s in ((batch, length, channels), (batch, length, channels), (channels, state),
                                        (batch, length, state), (batch, length, state), (channels,))]
        loss = lambda *xs: selective_scan(*xs, chunk_size=chunk_size, method=method, remat=remat)[0].sum()  # noqa: E731
        return compiled_memory(jax.grad(loss, argnums=tuple(range(6))), *inputs)["temp"]

    state_bytes = batch * 256 * channels * state * 4  # the state sequence of the extra 256 steps
    chunked = temp_bytes(512, 32, "auto", True) - temp_bytes(256, 32, "auto", True)
    assert chunked < state_bytes / 4
    full = temp_bytes(512, None, "associative", False) - temp_bytes(256, None, "associative", False)
    assert full > state_bytes


@pytest.mark.parametrize("bad,message", [(dict(scan_method="fast"), "unknown scan_method 'fast'"),
                                         (dict(chunk_size=0), "chunk_size=0"), (dict(norm="batch"), "norm")])
def test_bad_options_give_one_line_errors(bad, message):
    with pytest.raises(UserError, match=message):
        MambaOptions(**bad)
