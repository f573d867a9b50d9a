"""Seq2seq attention vs the equations re-written in NumPy; weights sum to 1 on valid positions, 0 on padding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from seqjax.ops.attention import attend, make_attention, masked_softmax, source_mask
from seqjax.models.seq2seq import Seq2Seq, Seq2SeqOptions


def numpy_attention(kind, p, q, m, length):
    """One example: ``q [d_q]``, ``m [S, d_m]``; scores over the first ``length`` rows only."""
    p = {k: np.asarray(v, np.float64) for k, v in p.items()}
    valid = m[:length].astype(np.float64)
    if kind == "bahdanau":
        e = np.array([p["v"] @ np.tanh(p["w_q"].T @ q + p["w_m"].T @ m_s) for m_s in valid])
    else:
        e = np.array([q @ p["w_a"] @ m_s for m_s in valid])
    a = np.exp(e - e.max())
    a /= a.sum()
    return a @ valid, np.concatenate([a, np.zeros(m.shape[0] - length)])


@pytest.mark.parametrize("kind", ["bahdanau", "luong"])
def test_attention_matches_numpy(kind):
    rng = np.random.default_rng(0)
    B, T, S, dq, dm = 3, 2, 6, 5, 4
    att = make_attention(kind, 7)
    p = att.init(jax.random.key(1), dq, dm)
    q = rng.normal(size=(B, T, dq)).astype(np.float32)
    m = rng.normal(size=(B, S, dm)).astype(np.float32)
    lengths = np.array([6, 3, 1])
    ctx, a = attend(att, p, jnp.asarray(q), jnp.asarray(m), source_mask(jnp.asarray(lengths), S, B))
    ctx1, a1 = attend(att, p, jnp.asarray(q[:, 0]), jnp.asarray(m), source_mask(jnp.asarray(lengths), S, B))
    for b in range(B):
        for t in range(T):
            ref_ctx, ref_a = numpy_attention(kind, p, q[b, t], m[b], lengths[b])
            np.testing.assert_allclose(a[b, t], ref_a, atol=1e-5)
            np.testing.assert_allclose(ctx[b, t], ref_ctx, atol=1e-5)
        np.testing.assert_allclose(a1[b], a[b, 0], atol=1e-6)  # the per-step form equals the batched form
        np.testing.assert_allclose(ctx1[b], ctx[b, 0], atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 7), min_size=4, max_size=4),
    scale=st.floats(0.1, 30.0),
)
def test_masked_softmax_sums_to_one_and_is_zero_on_padding(lengths, scale):
    S = 7
    scores = scale * jax.random.normal(jax.random.key(len(lengths)), (len(lengths), 3, S))
    mask = source_mask(jnp.array(lengths), S, len(lengths))
    a = np.asarray(masked_softmax(scores, mask))
    for b, L in enumerate(lengths):
        np.testing.assert_allclose(a[b, :, :L].sum(-1), 1.0, atol=1e-5)
        assert np.all(a[b, :, L:] == 0.0)
        assert np.all(a[b] >= 0.0)


@pytest.mark.parametrize("kind", ["bahdanau", "luong"])
def test_model_attention_weights_ignore_padding(kind):
    """In a whole seq2seq model: weights are 0 on padded source positions, sum to 1 elsewhere,
    and the padded tokens' values do not change the outputs."""
    o = Seq2SeqOptions(attention=kind, embed_size=6, encoder_hidden_size=8, decoder_hidden_size=8,
                       attention_size=5, encoder_bidirectional=True)
    model = Seq2Seq(o, 9, 9)
    src = jnp.array([[3, 4, 5, 6, 7], [5, 6, 0, 0, 0]])
    src_len = jnp.array([5, 2])
    tgt = jnp.array([[4, 5, 2], [6, 2, 0]])
    v = model.init(jax.random.key(0), src, src_len, tgt)
    logits, a = model.apply(v, src, src_len, tgt)
    np.testing.assert_allclose(a.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.asarray(a[1, :, 2:]) == 0.0)
    logits2, _ = model.apply(v, src.at[1, 2:].set(8), src_len, tgt)
    np.testing.assert_allclose(logits2, logits, atol=1e-6)
