"""The linear-recurrence families (issue 17): LRU, Hawk (RG-LRU), minGRU/minLSTM, S5, Mamba-2 (SSD).

Each block's parallel form against a NumPy loop of the paper's equations written out again here
(float64, 1e-10); each backbone's step form against its parallel form (float32); the initializations;
SSD's chunked matrix form against the plain scan, values, final states and gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from step_form import run_steps

from seqjax.models.hawk import RGLRUBlock
from seqjax.models.lru import LRUBlock, ring_init
from seqjax.models.mamba2 import Mamba2Block
from seqjax.models.min_rnn import MinRNN, log_g, min_lstm_logs
from seqjax.models.registry import build_backbone, get_backbone
from seqjax.models.s5 import S5Block
from seqjax.ops.hippo import hippo_n
from seqjax.ops.linear_scan import linear_scan
from seqjax.ops.ssd import ssd

BATCH, TIME = 2, 7


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def softplus(v):
    return np.log1p(np.exp(v))


def gelu_tanh(v):
    return 0.5 * v * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (v + 0.044715 * v**3)))


def silu(v):
    return v * sigmoid(v)


def dense(p, v):
    return v @ p["kernel"] + p.get("bias", 0.0)


def causal_depthwise(p, x):
    """``o_t = b + sum_j W_j x_{t - (k-1-j)}``, zero before ``t = 0``."""
    w, out = p["kernel"][:, 0, :], np.zeros_like(x)
    k = w.shape[0]
    for t in range(x.shape[1]):
        for j in range(k):
            if t - (k - 1 - j) >= 0:
                out[:, t] += w[j] * x[:, t - (k - 1 - j)]
    return out + p["bias"]


# --- NumPy loops of each family's equations ----------------------------------------------------------------------


def lru_loop(p, u):
    lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
    b, c = p["B_re"] + 1j * p["B_im"], p["C_re"] + 1j * p["C_im"]
    x, out = np.zeros((u.shape[0], lam.shape[0]), complex), []
    for t in range(u.shape[1]):
        x = lam * x + np.exp(p["gamma_log"]) * (u[:, t] @ b.T)
        v = gelu_tanh((x @ c.T).real + p["D"] * u[:, t])
        out.append(dense(p["glu_value"], v) * sigmoid(dense(p["glu_gate"], v)))
    return np.stack(out, 1)


def hawk_loop(p, u, heads, c=8.0):
    xs = causal_depthwise(p["conv"], dense(p["linear_x"], u))
    h, out = np.zeros_like(xs[:, 0]), []

    def gate(x, w, b):
        return sigmoid(np.einsum("bhi,hij->bhj", x.reshape(x.shape[0], heads, -1), w) + b).reshape(x.shape)

    for t in range(u.shape[1]):
        x = xs[:, t]
        r, i = gate(x, p["gate_a_w"], p["gate_a_b"]), gate(x, p["gate_x_w"], p["gate_x_b"])
        a = sigmoid(-p["a_param"]) ** (c * r)
        h = i * x if t == 0 else a * h + np.sqrt(1.0 - a**2) * (i * x)  # a document starts at t = 0
        out.append(dense(p["linear_out"], h * gelu_tanh(dense(p["linear_y"], u[:, t]))))
    return np.stack(out, 1)


def g(v):
    return np.where(v >= 0, v + 0.5, sigmoid(v))


def min_rnn_loop(p, u, cell):
    gates = u @ p["to_gates"]["kernel"]
    h, out = np.zeros((u.shape[0], gates.shape[-1] // (2 if cell == "gru" else 3))), []
    for t in range(u.shape[1]):
        if cell == "gru":
            k, cand = np.split(gates[:, t], 2, axis=-1)
            z = sigmoid(k)
            h = (1 - z) * h + z * g(cand)
        else:
            k_f, k_i, cand = np.split(gates[:, t], 3, axis=-1)
            f, i = sigmoid(k_f), sigmoid(k_i)
            h = f / (f + i) * h + i / (f + i) * g(cand)
        out.append(h @ p["to_out"]["kernel"])
    return np.stack(out, 1)


def s5_loop(p, u):
    """Every mode, both of each conjugate pair: ``y = Re(C x)`` equals the model's ``2 Re`` over kept modes."""
    lam = -np.exp(p["Lambda_log_neg_re"]) + 1j * p["Lambda_im"]
    b, c = p["B"][..., 0] + 1j * p["B"][..., 1], p["C"][..., 0] + 1j * p["C"][..., 1]
    lam, b, c = np.concatenate([lam, lam.conj()]), np.concatenate([b, b.conj()]), np.concatenate([c, c.conj()], 1)
    dt = np.exp(np.concatenate([p["log_dt"], p["log_dt"]]))
    a_bar = np.exp(lam * dt)
    b_bar = ((a_bar - 1) / lam)[:, None] * b
    x, out = np.zeros((u.shape[0], lam.shape[0]), complex), []
    for t in range(u.shape[1]):
        x = a_bar * x + u[:, t] @ b_bar.T
        y = gelu_tanh((x @ c.T).real + p["D"] * u[:, t])
        out.append(y * sigmoid(dense(p["glu"], y)))
    return np.stack(out, 1)


def mamba2_loop(p, u, d_state, head_dim, groups):
    zxbcdt = u @ p["in_proj"]["kernel"]
    d_inner = p["norm_weight"].shape[0]
    heads = d_inner // head_dim
    z, xbc, dt = np.split(zxbcdt, [d_inner, 2 * d_inner + 2 * groups * d_state], axis=-1)
    x, b, c = np.split(silu(causal_depthwise(p["conv"], xbc)), [d_inner, d_inner + groups * d_state], axis=-1)
    x = x.reshape(*x.shape[:2], heads, head_dim)
    b, c = (m.reshape(*m.shape[:2], groups, d_state) for m in (b, c))
    state, y = np.zeros((u.shape[0], heads, head_dim, d_state)), np.zeros_like(x)
    for t in range(u.shape[1]):
        for h in range(heads):
            grp = h // (heads // groups)
            step = softplus(dt[:, t, h] + p["dt_bias"][h])
            a = np.exp(-step * np.exp(p["A_log"][h]))
            inject = np.einsum("bp,bn->bpn", step[:, None] * x[:, t, h], b[:, t, grp])
            state[:, h] = a[:, None, None] * state[:, h] + inject
            y[:, t, h] = np.einsum("bpn,bn->bp", state[:, h], c[:, t, grp]) + p["D"][h] * x[:, t, h]
    y = y.reshape(*y.shape[:2], d_inner) * silu(z)
    yg = y.reshape(*y.shape[:2], groups, -1)
    y = (yg / np.sqrt(np.mean(yg**2, -1, keepdims=True) + 1e-5)).reshape(y.shape) * p["norm_weight"]
    return y @ p["out_proj"]["kernel"]


# family -> (block in float64, its NumPy loop on the parameter dict)
BLOCKS = {
    "lru": (lambda: LRUBlock(d_model=3, d_state=4, param_dtype=jnp.float64), lru_loop),
    "hawk": (lambda: RGLRUBlock(d_model=3, d_rnn=4, n_heads=2, param_dtype=jnp.float64),
             lambda p, u: hawk_loop(p, u, heads=2)),
    "mingru": (lambda: MinRNN(d_model=3, cell="gru", param_dtype=jnp.float64),
               lambda p, u: min_rnn_loop(p, u, "gru")),
    "minlstm": (lambda: MinRNN(d_model=3, cell="lstm", param_dtype=jnp.float64),
                lambda p, u: min_rnn_loop(p, u, "lstm")),
    "s5": (lambda: S5Block(d_model=3, state_size=8, blocks=2, param_dtype=jnp.float64), s5_loop),
    "mamba2": (lambda: Mamba2Block(d_model=3, d_state=2, head_dim=3, n_groups=2, chunk_size=3,
                                   param_dtype=jnp.float64),
               lambda p, u: mamba2_loop(p, u, d_state=2, head_dim=3, groups=2)),
}


@pytest.mark.parametrize("family", list(BLOCKS))
def test_parallel_form_equals_numpy_loop(family):
    """Float64: each block's parallel form equals the loop of its equations to 1e-10 (random parameters of the
    shapes ``init`` gives: a generic point, and no eager ``init`` to pay for)."""
    make, loop = BLOCKS[family]
    with jax.enable_x64(True):
        block = make()
        rng = np.random.default_rng(0)
        u = rng.normal(size=(BATCH, TIME, 3))
        params = jax.tree.map(lambda a: 0.5 * rng.normal(size=a.shape), jax.eval_shape(block.init, jax.random.key(0), u))
        got = np.asarray(jax.jit(block.apply)(params, u))
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, loop(params["params"], u), rtol=1e-10, atol=1e-10)


BACKBONES = {
    "lru": dict(d_model=4, n_layers=2, d_state=3),
    "hawk": dict(d_model=4, n_layers=2, d_rnn=4, n_heads=2),
    "mingru": dict(d_model=4, n_layers=2),
    "minlstm": dict(d_model=4, n_layers=2),
    "s5": dict(d_model=4, n_layers=2, state_size=4, blocks=2),
    "mamba2": dict(d_model=4, n_layers=2, d_state=3, head_dim=2, n_groups=2, chunk_size=3),
}


@pytest.mark.parametrize("name", list(BACKBONES))
def test_step_form_equals_parallel_form(name):
    """The registered backbone (two layers, float32): token by token from ``initial_state`` = one parallel pass."""
    model = build_backbone(name, get_backbone(name).options(**BACKBONES[name]))
    x = np.random.default_rng(1).normal(size=(BATCH, TIME, 3)).astype(np.float32)
    variables = model.init(jax.random.key(0), x)
    np.testing.assert_allclose(run_steps(model, variables, x), model.apply(variables, x), rtol=1e-5, atol=1e-5)


# --- initializations ---------------------------------------------------------------------------------------------


def test_lru_ring_init():
    """``|lambda|`` in ``[r_min, r_max]`` with ``|lambda|^2`` uniform: mean ``(r_min^2 + r_max^2) / 2``."""
    nu, theta = ring_init(jax.random.key(0), 20000, 0.4, 0.9, 3.14, jnp.float32)
    r = np.exp(-np.exp(np.asarray(nu, np.float64)))
    assert r.min() >= 0.4 - 1e-6 and r.max() <= 0.9 + 1e-6
    assert abs(np.mean(r**2) - (0.4**2 + 0.9**2) / 2) < 0.01
    assert np.all(np.exp(np.asarray(theta)) <= 3.14 + 1e-5)


def test_initializations():
    """Hawk's base decay in [0.9, 0.999]; S5's Re(Lambda) = -1/2 with unitary V; Mamba-2's A in [-16, -1]; LRU's
    gamma = sqrt(1 - |lambda|^2)."""
    u = jnp.ones((1, 2, 8))
    hawk = jax.jit(RGLRUBlock(d_model=8, d_rnn=64).init)(jax.random.key(0), u)["params"]
    a = jax.nn.sigmoid(-hawk["a_param"])
    assert a.min() >= 0.9 - 1e-6 and a.max() <= 0.999 + 1e-6
    s5 = jax.jit(S5Block(d_model=8, state_size=16, blocks=2).init)(jax.random.key(0), u)["params"]
    np.testing.assert_allclose(-np.exp(s5["Lambda_log_neg_re"]), -0.5, rtol=1e-6)
    lam, v = hippo_n(8)
    np.testing.assert_allclose(v.conj().T @ v, np.eye(4), atol=1e-12)
    k = np.arange(8)
    legs = np.where(k[:, None] > k, -np.sqrt((2 * k[:, None] + 1) * (2 * k + 1)), np.diag(-(k + 1.0)))
    normal = legs + np.outer(np.sqrt(k + 0.5), np.sqrt(k + 0.5))  # HiPPO-N, written out again
    eig = np.linalg.eigvals(normal)
    np.testing.assert_allclose(eig.real, -0.5, atol=1e-9)
    np.testing.assert_allclose(np.sort(eig.imag), np.sort(np.concatenate([lam.imag, -lam.imag])), atol=1e-9)
    m2 = jax.jit(Mamba2Block(d_model=8, d_state=4, head_dim=2).init)(jax.random.key(0), u)["params"]
    a_m2 = -np.exp(np.asarray(m2["A_log"]))
    assert a_m2.min() >= -16 - 1e-5 and a_m2.max() <= -1 + 1e-6
    lru = jax.jit(LRUBlock(d_model=8, d_state=16).init)(jax.random.key(0), u)["params"]
    np.testing.assert_allclose(np.exp(lru["gamma_log"]), np.sqrt(1 - np.exp(-2 * np.exp(lru["nu_log"]))), rtol=1e-5)


def test_minlstm_gates_sum_to_one_and_state_stays_in_range():
    """``f' + i' = 1`` (``log b = log i' + log g``), so from ``h_0 = 0`` the state stays in ``(0, max_s g(k~_s)]``."""
    rng = np.random.default_rng(2)
    gates = rng.normal(scale=3.0, size=(1, 50, 3)).astype(np.float32)
    log_f, log_b = min_lstm_logs(jnp.asarray(gates))
    np.testing.assert_allclose(jnp.exp(log_f) + jnp.exp(log_b - log_g(gates[..., 2:])), 1.0, rtol=1e-5)
    h = min_rnn_loop({"to_gates": {"kernel": np.eye(3)}, "to_out": {"kernel": np.eye(1)}}, gates, "lstm")
    cands = g(gates[..., 2])
    running_max = np.maximum.accumulate(cands, axis=1)
    assert np.all(h[..., 0] <= running_max + 1e-6) and np.all(h[..., 0] > 0)


# --- SSD ---------------------------------------------------------------------------------------------------------


def ssd_case(seed, time=7):
    rng = np.random.default_rng(seed)
    heads, p, n = 2, 2, 3
    x = rng.normal(size=(BATCH, time, heads, p))
    alpha = -rng.uniform(0.0, 1.5, size=(BATCH, time, heads))
    b, c = rng.normal(size=(2, BATCH, time, heads, n))
    h0 = rng.normal(size=(BATCH, heads, p, n))
    resets = rng.uniform(size=(BATCH, time)) < 0.2
    lengths = np.array([time, max(time - 3, 1)])
    return x, alpha, b, c, h0, resets, lengths


def ssd_by_plain_scan(x, alpha, b, c, h0, resets, lengths):
    """``H_t = a_t H_{t-1} + x_t B_t^T``, ``y_t = H_t C_t`` with the ``[T, P, N]`` states materialized."""
    hs, last = linear_scan(jnp.exp(alpha)[..., None, None], x[..., None] * b[..., None, :], h0, method="sequential",
                           resets=resets, lengths=lengths, return_state=True)
    return jnp.einsum("bthpn,bthn->bthp", hs, c), last


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 16])  # 2, 3 do not divide T = 7; 16 > T
def test_ssd_chunked_matrix_form_equals_plain_scan(chunk):
    """Outputs, final states and gradients, with an initial state, resets and lengths (float64, 1e-10)."""
    with jax.enable_x64(True):
        x, alpha, b, c, h0, resets, lengths = ssd_case(3)
        w = np.random.default_rng(4).normal(size=x.shape)

        def losses(run):
            def loss(*args):
                y, last = run(*args)
                return jnp.sum(w * y) + jnp.sum(jnp.sin(last))
            return loss

        chunked = lambda *a: ssd(*a, chunk_size=chunk, resets=resets, lengths=lengths)  # noqa: E731
        plain = lambda *a: ssd_by_plain_scan(*a, resets, lengths)  # noqa: E731
        args = (x, alpha, b, c, h0)
        (y, last), (y_ref, last_ref) = jax.jit(chunked)(*args), jax.jit(plain)(*args)
        np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(last, last_ref, rtol=1e-10, atol=1e-10)
        grads = jax.jit(jax.grad(losses(chunked), argnums=range(5)))(*args)
        grads_ref = jax.jit(jax.grad(losses(plain), argnums=range(5)))(*args)
        for got, want in zip(grads, grads_ref):
            assert np.isfinite(np.asarray(got)).all()
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-10)


def test_ssd_resets_equal_segments_run_alone():
    """A packed row with a reset equals its two segments, each from a zero state."""
    x, alpha, b, c, _, _, _ = ssd_case(5, time=8)
    resets = np.zeros((BATCH, 8), bool)
    resets[:, 5] = True
    run = jax.jit(lambda *args, resets=None: ssd(*args, chunk_size=3, resets=resets)[0])
    packed = run(x, alpha, b, c, resets=resets)
    first, second = run(x[:, :5], alpha[:, :5], b[:, :5], c[:, :5]), run(x[:, 5:], alpha[:, 5:], b[:, 5:], c[:, 5:])
    np.testing.assert_allclose(packed, np.concatenate([first, second], 1), rtol=1e-5, atol=1e-6)
