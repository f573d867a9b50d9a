"""The compiled selective scan (``seqjax/ops/csrc/selective_scan.cc``) against a NumPy loop and JAX's autodiff.

Sizes cut across the kernel's blocking: 19 channels (a block of 16 and one of 3) and 70 steps (two chunks of
32 and a partial one), with an initial state and resets.
"""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.ops import native
from seqjax.ops.selective_scan import selective_scan
from seqjax.ops.selective_scan_native import available, selective_scan_native

pytestmark = pytest.mark.skipif(os.environ.get("SEQJAX_NATIVE") == "0", reason="compiled kernels disabled")

BATCH, STEPS, CHANNELS, STATE = 3, 70, 19, 5


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(BATCH, STEPS, CHANNELS))
    dt = np.log1p(np.exp(rng.normal(size=(BATCH, STEPS, CHANNELS)) - 1.0))
    a = -np.exp(rng.normal(size=(CHANNELS, STATE)))
    b, c = rng.normal(size=(BATCH, STEPS, STATE)), rng.normal(size=(BATCH, STEPS, STATE))
    h0 = rng.normal(size=(BATCH, CHANNELS, STATE))
    resets = rng.uniform(size=(BATCH, STEPS)) < 0.05
    return u, dt, a, b, c, h0, resets


def numpy_scan(u, dt, a, b, c, h0, resets):
    """x_t = exp(dt_t A) x_{t-1} + dt_t B_t u_t (x_{t-1} := 0 at a reset), y_t = C_t x_t, in float64."""
    x, ys = h0.copy(), []
    for t in range(u.shape[1]):
        x = np.where(resets[:, t, None, None], 0.0, np.exp(dt[:, t, :, None] * a) * x)
        x = x + (dt[:, t] * u[:, t])[:, :, None] * b[:, t, None, :]
        ys.append(np.einsum("bdn,bn->bd", x, c[:, t]))
    return np.stack(ys, 1), x


def as_jax(values):
    return [jnp.asarray(v) if v.dtype == bool else jnp.asarray(v, jnp.float32) for v in values]


def test_the_kernel_builds_here():
    """CI has a C++ compiler: the kernel must build there, or every other test here would test the fallback."""
    assert available(jnp.zeros(1)), "the compiled selective scan did not build (see the warning above)"


def test_outputs_match_numpy_loop():
    values = inputs()
    want_y, want_x = numpy_scan(*values)
    y, x = jax.jit(selective_scan_native)(*as_jax(values))
    np.testing.assert_allclose(y, want_y, rtol=1e-4, atol=1e-5 * np.abs(want_y).max())
    np.testing.assert_allclose(x, want_x, rtol=1e-4, atol=1e-5 * np.abs(want_x).max())


def test_gradients_equal_autodiff_of_the_jax_scan():
    """Every input's gradient (``h0`` included, through both outputs) against ``jax.grad`` of the JAX form."""
    u, dt, a, b, c, h0, resets = as_jax(inputs(seed=1))
    w_y = jax.random.normal(jax.random.key(0), u.shape)
    w_x = jax.random.normal(jax.random.key(1), h0.shape)
    zero_d = jnp.zeros(CHANNELS)

    def loss(method):
        def f(u, dt, a, b, c, h0):
            y, x = selective_scan(u, dt, a, b, c, zero_d, h0=h0, resets=resets, method=method, chunk_size=8)
            return jnp.sum(w_y * y) + jnp.sum(w_x * x)
        return jax.jit(jax.grad(f, tuple(range(6))))

    for got, want in zip(loss("native")(u, dt, a, b, c, h0), loss("sequential")(u, dt, a, b, c, h0)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * float(jnp.abs(want).max()))


def test_vmap_equals_a_loop_over_the_mapped_axis():
    """Trials vmapped in one program (the vmapped sweep): each gets the result of its own call."""
    stacked = [np.stack([v, w]) for v, w in zip(inputs(seed=2), inputs(seed=3))]
    y, x = jax.jit(jax.vmap(selective_scan_native))(*as_jax(stacked))
    for i in range(2):
        y_i, x_i = selective_scan_native(*as_jax([v[i] for v in stacked]))
        np.testing.assert_array_equal(y[i], y_i)
        np.testing.assert_array_equal(x[i], x_i)


def test_roofline_counts_the_kernel_as_the_jax_form_it_replaces():
    """The kernel's hand count (``kernel_flops``) against the jaxpr count of the JAX scan, forward and gradient."""
    from seqjax.benchmarks.roofline import count_flops

    values = as_jax(inputs())[:5] + [jnp.zeros(CHANNELS)]
    for grad in (False, True):
        counts = []
        for method in ("native", "sequential"):
            f = lambda *xs, method=method: selective_scan(*xs, method=method)[0].sum()  # noqa: E731
            counts.append(count_flops(jax.grad(f, tuple(range(6))) if grad else f, *values))
        assert 0.8 < counts[0] / counts[1] < 1.25, counts


def test_unbuildable_kernel_falls_back_to_the_jax_form(tmp_path):
    """No compiler (``CXX=false``, an empty cache): one warning, and ``method="auto"`` still computes the scan."""
    script = ("import jax.numpy as jnp; from seqjax.ops.selective_scan import selective_scan\n"
              "from seqjax.ops.selective_scan_native import available\n"
              "assert not available(jnp.zeros(1))\n"
              "y, _ = selective_scan(*(jnp.ones(s) for s in ((1, 4, 2), (1, 4, 2), (2, 3), (1, 4, 3), (1, 4, 3), "
              "(2,))))\n"
              "print(float(y.sum()))\n")
    env = {**os.environ, "CXX": "false", "SEQJAX_KERNEL_CACHE": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "the compiled selective_scan kernel is unavailable" in result.stderr
    assert np.isfinite(float(result.stdout))
