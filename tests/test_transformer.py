"""Transformer: KV-cache steps equal the causal parallel form; the mask, positions and a block vs NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.errors import UserError
from seqjax.errors import StreamingError
from seqjax.models import transformer
from seqjax.models.transformer import Transformer
from seqjax.ops.attention import rotary, sinusoidal
from seqjax.models.registry import build_backbone, get_backbone, is_causal

B, T, D_IN = 2, 6, 3


def make(positions="sinusoidal", causal=True, **kw):
    model = Transformer(d_model=16, n_heads=4, n_layers=2, mlp_ratio=2, positions=positions, causal=causal,
                        max_len=8, **kw)
    x = jax.random.normal(jax.random.key(0), (B, T, D_IN))
    return model, model.init(jax.random.key(1), x), x


@pytest.fixture(params=[None, 2], ids=["one_block", "blocks_of_2"])
def causal_block(request, monkeypatch):
    """The causal parallel form whole (T <= CAUSAL_BLOCK) or in query blocks of 2 (``SelfAttention.attend``)."""
    if request.param:
        monkeypatch.setattr(transformer, "CAUSAL_BLOCK", request.param)
    return request.param


@pytest.mark.parametrize("positions", ["sinusoidal", "rotary"])
def test_kv_cache_steps_reproduce_parallel_outputs(positions, causal_block):
    model, v, x = make(positions)
    y = model.apply(v, x)
    state = model.apply(v, B, method=Transformer.initial_state)
    step = jax.jit(lambda s, x_t: model.apply(v, s, x_t, method=Transformer.step))
    for t in range(T):
        state, y_t = step(state, x[:, t])
        np.testing.assert_allclose(y_t, y[:, t], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("positions", ["sinusoidal", "rotary"])
def test_future_tokens_do_not_change_the_past(positions):
    model, v, x = make(positions)
    x2 = x.at[:, 4].add(1.0)
    y, y2 = model.apply(v, x), model.apply(v, x2)
    np.testing.assert_array_equal(y[:, :4], y2[:, :4])
    assert not np.allclose(y[:, 4:], y2[:, 4:])
    enc, v_enc, _ = make(positions, causal=False)  # the encoder form sees the future
    assert not np.allclose(enc.apply(v_enc, x)[:, :4], enc.apply(v_enc, x2)[:, :4])


def test_encoder_form_ignores_padding_and_cannot_stream():
    model, v, x = make(causal=False)
    lengths = jnp.array([6, 3])
    y = model.apply(v, x, lengths)
    y2 = model.apply(v, x.at[1, 3:].set(5.0), lengths)
    np.testing.assert_allclose(y2[1, :3], y[1, :3], atol=1e-6)
    np.testing.assert_allclose(y2[0], y[0], atol=1e-6)
    with pytest.raises(StreamingError, match="causal=true"):
        model.apply(v, B, method=Transformer.initial_state)


def test_sinusoidal_formula():
    d, pos = 10, np.arange(7)
    ref = np.zeros((7, d))
    for p in pos:
        for i in range(d // 2):
            ref[p, 2 * i] = np.sin(p / 10000 ** (2 * i / d))
            ref[p, 2 * i + 1] = np.cos(p / 10000 ** (2 * i / d))
    np.testing.assert_allclose(sinusoidal(jnp.asarray(pos), d), ref, atol=1e-5)


def test_rotary_formula_and_relative_positions():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 5, 2, 8)).astype(np.float32)
    pos = np.array([[0, 1, 2, 7, 30]])
    out = np.asarray(rotary(jnp.asarray(x), jnp.asarray(pos)))
    for t in range(5):
        for i in range(4):
            a = pos[0, t] * 10000 ** (-2 * i / 8)
            rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
            np.testing.assert_allclose(out[0, t, :, 2 * i:2 * i + 2], x[0, t, :, 2 * i:2 * i + 2] @ rot.T, atol=1e-5)
    q, k = jnp.asarray(x[:, :1]), jnp.asarray(x[:, 1:2])
    dot = lambda m, n: float(jnp.sum(rotary(q, jnp.array([[m]])) * rotary(k, jnp.array([[n]]))))  # noqa: E731
    assert dot(3, 1) == pytest.approx(dot(10, 8), abs=1e-4)  # depends on m - n only
    assert dot(3, 1) != pytest.approx(dot(3, 2), abs=1e-3)


def _layer_norm(x, p):
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-6) * p["scale"] + p["bias"]


def _dense(x, p):
    return x @ p["kernel"] + p["bias"]


def test_one_block_matches_numpy(causal_block):
    """The pre-norm equations re-written in NumPy (float64, exact gelu via tanh form as Flax's default)."""
    model = Transformer(d_model=8, n_heads=2, n_layers=1, mlp_ratio=2, causal=True, max_len=8)
    x = np.asarray(jax.random.normal(jax.random.key(0), (1, 5, 3)), np.float64)
    v = model.init(jax.random.key(1), jnp.asarray(x, jnp.float32))
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), v["params"])
    blk = p["blocks_0"]
    Tn, d, H = 5, 8, 2
    h = np.sqrt(d) * _dense(x[0], p["in_proj"]) + np.asarray(sinusoidal(jnp.arange(Tn), d), np.float64)
    u = _layer_norm(h, blk["norm1"])
    q, k, vv = np.split(_dense(u, blk["attn"]["qkv"]).reshape(Tn, 3 * H, d // H), 3, axis=1)
    heads = []
    for j in range(H):
        s = q[:, j] @ k[:, j].T / np.sqrt(d // H) + np.triu(np.full((Tn, Tn), -np.inf), 1)
        a = np.exp(s - s.max(-1, keepdims=True))
        heads.append((a / a.sum(-1, keepdims=True)) @ vv[:, j])
    h = h + _dense(np.stack(heads, 1).reshape(Tn, d), blk["attn"]["out"])
    g = _dense(_layer_norm(h, blk["norm2"]), blk["fc1"])
    gelu = 0.5 * g * (1 + np.tanh(np.sqrt(2 / np.pi) * (g + 0.044715 * g ** 3)))
    h = h + _dense(gelu, blk["fc2"])
    ref = _layer_norm(h, p["norm"])
    np.testing.assert_allclose(model.apply(v, jnp.asarray(x, jnp.float32))[0], ref, atol=1e-4)


def test_registry_and_options():
    spec = get_backbone("transformer")
    causal, encoder = spec.options(), spec.options(causal=False, positions="rotary")
    assert is_causal("transformer", causal) and not is_causal("transformer", encoder)
    assert isinstance(build_backbone("transformer", encoder), Transformer)
    with pytest.raises(UserError, match="multiple of model.n_heads"):
        spec.options(d_model=10, n_heads=4)
    with pytest.raises(UserError, match="unknown positions 'learned': choose one of 'sinusoidal', 'rotary'"):
        spec.options(positions="learned")


def test_usable_from_config_and_bidirectional_lm_rejected(capsys):
    """``model.name=transformer`` trains through the supervised workload; the encoder form is refused on MQAR,
    whose answers follow their queries in the input."""
    from seqjax.cli import main
    from seqjax.experiment.config import load_config
    from seqjax.experiment.workloads import build_workload

    cfg = load_config("configs/experiments/copy_transformer.yaml", ["task.seq_len=5", "model.d_model=16"])
    w = build_workload(cfg)
    params = w.init(jax.random.key(0))
    loss, metrics = w.loss(params, w.sample_train(0), jax.random.key(1), True)
    assert np.isfinite(float(loss)) and "accuracy" in metrics
    assert main(["train", "configs/experiments/copy_transformer.yaml", "task=mqar", "task.values_in_queries=true", "model.causal=false"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not causal" in err


def test_stepping_past_the_kv_cache_is_refused():
    """max_len=8: the 9th token has no cache slot; eagerly an error naming the fix, under jit a NaN output."""
    model, v, x = make()
    state = model.apply(v, B, method=Transformer.initial_state)
    step = jax.jit(lambda s, x_t: model.apply(v, s, x_t, method=Transformer.step))
    for _ in range(8):
        state, y_t = step(state, x[:, 0])
        assert np.isfinite(np.asarray(y_t)).all()
    state_after, y_t = step(state, x[:, 0])
    assert np.isnan(np.asarray(y_t)).all()
    with pytest.raises(StreamingError, match="max_len=8 positions.*position 8.*model.max_len"):
        model.apply(v, state, x[:, 0], method=Transformer.step)
