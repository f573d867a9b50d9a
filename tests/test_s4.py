"""S4 / S4D: kernels vs dense NumPy matrices, FFT-conv form vs recurrent form, HiPPO, parameter groups."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from step_form import run_steps

from seqjax.errors import UserError
from seqjax.ops.hippo import dplr_legs, hippo_legs, s4d_init
from seqjax.models.ssm import S4, S4D
from seqjax.ops.ssm_kernel import discretize_diag, dplr_kernel, s4d_kernel
from seqjax.models.registry import build_backbone
from seqjax.models.ssm import S4DOptions, S4Options
from seqjax.models.blocks import ssm_param_labels
from seqjax.experiment.optim import with_ssm_group


def full(x):
    return np.concatenate([x, np.conj(x)], axis=-1)


def dense_bilinear(a, b, dt):
    eye = np.eye(a.shape[0])
    left = np.linalg.inv(eye - dt / 2 * a)
    return left @ (eye + dt / 2 * a), left @ (dt * b)


def test_hippo_legs_matches_definition():
    n = 6
    a, b = hippo_legs(n)
    for i in range(n):
        for k in range(n):
            want = -np.sqrt(2 * i + 1) * np.sqrt(2 * k + 1) if i > k else (-(i + 1) if i == k else 0.0)
            assert a[i, k] == pytest.approx(want)
        assert b[i] == pytest.approx(np.sqrt(2 * i + 1))


def test_dplr_form_reconstructs_hippo():
    """diag(Lambda) - P P^* (conjugate modes restored) has HiPPO's eigenvalues; V unitary keeps ||B||."""
    n = 8
    a, b = hippo_legs(n)
    lam, p, bt = dplr_legs(n)
    assert np.all(lam.real < 0) and np.all(lam.imag > 0)
    lam_f, p_f, b_f = full(lam), full(p), full(bt)
    a_dplr = np.diag(lam_f) - np.outer(p_f, np.conj(p_f))
    eigs = np.sort_complex(np.linalg.eigvals(a_dplr))
    np.testing.assert_allclose(eigs, np.sort_complex(np.linalg.eigvals(a)), atol=1e-8)
    # B's component energy is preserved (unitary V): ||V^* B|| = ||B||
    assert np.linalg.norm(b_f) == pytest.approx(np.linalg.norm(b))


@pytest.mark.parametrize("n,length,dt", [(4, 8, 0.5), (8, 16, 0.1), (10, 33, 0.05)])
def test_dplr_kernel_equals_powers_of_dense_abar(n, length, dt):
    """K_l = Re(C Abar^l Bbar) with Abar, Bbar the dense bilinear matrices and C = C~ (I - Abar^L)^{-1}."""
    rng = np.random.default_rng(n)
    half = n // 2
    cplx = lambda: rng.normal(size=half) + 1j * rng.normal(size=half)  # noqa: E731
    lam = -np.exp(rng.normal(size=half)) + 1j * rng.normal(scale=3, size=half)
    p, b, c_tilde = cplx(), cplx(), cplx()
    lam_f, p_f, b_f, ct_f = (full(x) for x in (lam, p, b, c_tilde))
    a = np.diag(lam_f) - np.outer(p_f, np.conj(p_f))
    a_bar, b_bar = dense_bilinear(a, b_f, dt)
    c = ct_f @ np.linalg.inv(np.eye(n) - np.linalg.matrix_power(a_bar, length))
    want = np.array([(c @ np.linalg.matrix_power(a_bar, l) @ b_bar).real for l in range(length)])
    args = (jnp.asarray(x[None], jnp.complex64) for x in (lam_f, p_f, b_f, ct_f))
    got = dplr_kernel(*args, jnp.array([dt], jnp.float32), length)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("method", ["zoh", "bilinear"])
def test_s4d_kernel_equals_impulse_response(method):
    """K_l is the response of h_t = Abar h_{t-1} + Bbar u_t, y = 2 Re(C h) to a unit impulse (NumPy loop)."""
    rng = np.random.default_rng(1)
    n, length, dt = 6, 12, 0.3
    lam, b = s4d_init(2 * n, "inv")
    c = rng.normal(size=n) + 1j * rng.normal(size=n)
    if method == "zoh":
        a_bar = np.exp(dt * lam)
        b_bar = (a_bar - 1) / lam * b
    else:
        a_bar, b_bar = (1 + dt / 2 * lam) / (1 - dt / 2 * lam), dt * b / (1 - dt / 2 * lam)
    h, want = np.zeros(n, complex), []
    for t in range(length):
        h = a_bar * h + b_bar * (1.0 if t == 0 else 0.0)
        want.append(2 * np.sum(c * h).real)
    args = (jnp.asarray(x[None], jnp.complex64) for x in (lam, b, c))
    got = s4d_kernel(*args, jnp.array([dt]), length, method)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("length", [1, 7, 130])
def test_s4d_kernel_and_gradients_equal_direct_powers(length):
    """The split-Vandermonde kernel equals 2 Re(sum_n C_n Bbar_n exp(l log Abar_n)) (every term exponentiated)."""
    rng = np.random.default_rng(2)
    lam, b = (jnp.asarray(np.broadcast_to(x, (3, 4)), jnp.complex64) for x in s4d_init(8, "legs"))
    c = jnp.asarray(rng.normal(size=(3, 4)) + 1j * rng.normal(size=(3, 4)), jnp.complex64)
    dt, w = jnp.array([0.01, 0.05, 0.2]), jnp.asarray(rng.normal(size=(3, length)), jnp.float32)

    def direct(c, dt):
        a_bar, b_bar = discretize_diag(lam, b, dt[:, None], "zoh")
        return 2.0 * jnp.sum((c * b_bar)[..., None] * jnp.exp(jnp.log(a_bar)[..., None] * jnp.arange(length)), 1).real

    fast = lambda c, dt: s4d_kernel(lam, b, c, dt, length, "zoh")  # noqa: E731
    np.testing.assert_allclose(fast(c, dt), direct(c, dt), rtol=1e-5, atol=1e-5)
    for got, want in zip(*(jax.grad(lambda *a, f=f: jnp.sum(w * f(*a)), (0, 1))(c, dt) for f in (fast, direct))):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(jnp.abs(want).max()))


@pytest.mark.parametrize(
    "module",
    [S4D(3, 8, a_init=i, disc=d) for i, d in [("legs", "zoh"), ("lin", "bilinear"), ("inv", "zoh")]]
    + [S4(3, 8, l_max=24), S4(3, 6, l_max=40)],
    ids=["s4d-legs-zoh", "s4d-lin-bilinear", "s4d-inv-zoh", "s4", "s4-lmax-longer"],
)
def test_fft_conv_form_equals_recurrent_form(module):
    x = jax.random.normal(jax.random.key(1), (2, 24, 3))
    params = module.init(jax.random.key(0), x)
    np.testing.assert_allclose(run_steps(module, params, x), module.apply(params, x), rtol=1e-4, atol=1e-4)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params)), "complex params must be real pairs"


def test_any_stored_lambda_gives_a_stable_system():
    """Re(Lambda) = -exp(stored) < 0 for every stored value: a constant input gives a bounded output."""
    module = S4D(2, 4)
    x = jnp.ones((1, 300, 2))
    params = module.init(jax.random.key(0), x)
    wild = jax.tree_util.tree_map_with_path(
        lambda path, v: v + 20.0 * jax.random.normal(jax.random.key(1), v.shape)
        if path[-1].key == "Lambda_log_neg_re" else v, params)
    y = module.apply(wild, x)
    assert np.all(np.isfinite(y)) and np.abs(y).max() < 1e4


@pytest.mark.parametrize("name,opts", [("s4", S4Options(d_model=8, n_layers=2, state_size=4, l_max=16)),
                                       ("s4d", S4DOptions(d_model=8, n_layers=2, state_size=4))])
def test_backbone_step_equals_parallel(name, opts):
    model = build_backbone(name, opts)
    x = jax.random.normal(jax.random.key(2), (2, 16, 3))
    params = model.init(jax.random.key(0), x)
    y = model.apply(params, x)
    assert y.shape == (2, 16, 8)
    np.testing.assert_allclose(run_steps(model, params, x), y, rtol=1e-4, atol=1e-4)


def test_s4_length_errors():
    x = jnp.ones((1, 20, 2))
    with pytest.raises(UserError, match="exceeds l_max=10; set l_max >= 20"):
        S4(2, 4, l_max=10).init(jax.random.key(0), x)
    module = S4(2, 4)
    params = module.init(jax.random.key(0), x)
    with pytest.raises(UserError, match="step mode needs l_max"):
        module.apply(params, module.initial_state(1), x[:, 0], method=module.step)


def test_ssm_params_get_own_lr_and_no_weight_decay():
    model = build_backbone("s4d", S4DOptions(d_model=4, n_layers=1, state_size=4))
    params = model.init(jax.random.key(0), jnp.ones((1, 6, 4)))["params"]
    labels = ssm_param_labels(params)
    ssm_leaves = {p[-1].key for p, lab in jax.tree_util.tree_leaves_with_path(labels) if lab == "ssm"}
    assert ssm_leaves == {"log_dt", "Lambda_log_neg_re", "Lambda_im", "B"}
    tx = with_ssm_group(optax.adamw(1e-2, weight_decay=0.5), optax.adam(1e-3))
    zero = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zero, tx.init(params), params)
    # zero gradients: only weight decay moves parameters, -lr * wd * w for default leaves, 0 for SSM ones
    for (path, u), lab, w in zip(jax.tree_util.tree_leaves_with_path(updates), jax.tree.leaves(labels),
                                 jax.tree.leaves(params)):
        want = 0.0 if lab == "ssm" else -1e-2 * 0.5 * w
        np.testing.assert_allclose(u, want, rtol=1e-6, atol=1e-9, err_msg=str(path))
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = optax.adam(1e-3).update(grads, optax.adam(1e-3).init(params))
    step_ssm, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(step_ssm["blocks_0"]["ssm"]["log_dt"], updates["blocks_0"]["ssm"]["log_dt"], rtol=1e-6)


@pytest.mark.parametrize("options,bad,message", [
    (S4Options, dict(state_size=7), "state_size=7 is invalid; it must be an even integer"),
    (S4Options, dict(l_max=0), "l_max=0"),
    (S4DOptions, dict(a_init="legt"), "unknown a_init 'legt': choose one of 'legs', 'lin', 'inv'"),
    (S4DOptions, dict(disc="euler"), "unknown disc 'euler'"),
    (S4DOptions, dict(norm="batch"), "unknown norm 'batch'"),
])
def test_bad_options_give_one_line_errors(options, bad, message):
    with pytest.raises(UserError, match=message):
        options(**bad)
