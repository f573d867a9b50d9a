"""Greedy and beam search: width 1 equals greedy; a wide beam finds the exhaustive optimum; EOS stops."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.ops import decoding
from seqjax.models.seq2seq import Seq2Seq, Seq2SeqOptions, decoder_start, generate

V, EOS, BOS, PAD = 5, 2, 1, 0


def bigram_step(params, context, state, y_prev):
    """A toy decoder: ``logits_t = A[y_{t-1}] + B[t] + context``; the state is the step counter."""
    return state + 1, params["A"][y_prev] + params["B"][state] + context


def toy(seed, batch):
    rng = np.random.default_rng(seed)
    params = {"A": jnp.asarray(rng.normal(size=(V, V)) * 2, jnp.float32),
              "B": jnp.asarray(rng.normal(size=(8, V)), jnp.float32)}
    context = jnp.asarray(rng.normal(size=(batch, V)), jnp.float32)
    return params, context, jnp.zeros((batch,), jnp.int32)


def log_prob(params, context, seq):
    """``sum_t log p(y_t | y_{t-1}, t)`` written out in NumPy."""
    A, Bt, c = (np.asarray(x, np.float64) for x in (params["A"], params["B"], context))
    total, prev = 0.0, BOS
    for t, y in enumerate(seq):
        z = A[prev] + Bt[t] + c
        total += z[y] - z.max() - np.log(np.exp(z - z.max()).sum())
        prev = y
    return total


@pytest.mark.parametrize("alpha", [0.0, 0.8])
def test_exhaustive_optimum(alpha):
    """A beam wider than the number of hypotheses returns the best sequence under score / lp(length)."""
    max_len, batch = 3, 4
    params, context, state = toy(1, batch)
    out = decoding.beam_search(bigram_step, params, context, state, width=V ** max_len, max_len=max_len,
                               bos=BOS, eos=EOS, pad=PAD, alpha=alpha)
    for b in range(batch):
        best, best_seq = -np.inf, None
        for n in range(1, max_len + 1):
            for seq in itertools.product(range(V), repeat=n):
                if EOS in seq[:-1] or (n < max_len and seq[-1] != EOS):
                    continue
                s = log_prob(params, context[b], seq) / ((5 + n) / 6) ** alpha
                if s > best:
                    best, best_seq = s, seq
        n = len(best_seq)
        assert out.lengths[b] == n
        assert list(np.asarray(out.tokens[b, :n])) == list(best_seq)
        assert np.all(np.asarray(out.tokens[b, n:]) == PAD)
        np.testing.assert_allclose(out.scores[b], log_prob(params, context[b], best_seq), rtol=1e-5)


def test_greedy_matches_python_loop_and_stops_on_eos():
    max_len, batch = 7, 6
    params, context, state = toy(2, batch)
    out = decoding.greedy(bigram_step, params, context, state, max_len=max_len, bos=BOS, eos=EOS, pad=PAD)
    A, Bt, c = (np.asarray(x) for x in (params["A"], params["B"], context))
    for b in range(batch):
        seq, prev = [], BOS
        for t in range(max_len):
            prev = int(np.argmax(A[prev] + Bt[t] + c[b]))
            seq.append(prev)
            if prev == EOS:
                break
        assert out.lengths[b] == len(seq)
        assert list(np.asarray(out.tokens[b])) == seq + [PAD] * (max_len - len(seq))
        np.testing.assert_allclose(out.scores[b], log_prob(params, context[b], seq), rtol=1e-5)


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_beam_width_one_equals_greedy_toy(alpha):
    params, context, state = toy(3, 8)
    g = decoding.greedy(bigram_step, params, context, state, max_len=6, bos=BOS, eos=EOS, pad=PAD)
    b = decoding.beam_search(bigram_step, params, context, state, width=1, max_len=6, bos=BOS, eos=EOS,
                             pad=PAD, alpha=alpha)
    np.testing.assert_array_equal(b.tokens, g.tokens)
    np.testing.assert_array_equal(b.lengths, g.lengths)
    np.testing.assert_allclose(b.scores, g.scores, rtol=1e-6)


@pytest.mark.parametrize("attention", ["none", "bahdanau", "luong"])
def test_beam_width_one_equals_greedy_seq2seq(attention):
    o = Seq2SeqOptions(attention=attention, embed_size=6, encoder_hidden_size=8, decoder_hidden_size=8,
                       attention_size=5, decoder_cell="gru")
    model = Seq2Seq(o, 8, 8)
    src = jax.random.randint(jax.random.key(0), (5, 6), 3, 8)
    src_len = jnp.array([6, 5, 3, 2, 1])
    v = model.init(jax.random.key(1), src, src_len, src)
    v = jax.tree.map(lambda x: 2.0 * x, v)  # sharper distributions, and EOS more likely: some rows stop early
    v["params"]["decoder"]["readout"]["w_o"] = v["params"]["decoder"]["readout"]["w_o"].at[:, EOS].multiply(3.0)
    args = decoder_start(model, v, src, src_len)
    g = generate(model, v, src, src_len, max_len=10)
    b = decoding.beam_search(*args, width=1, max_len=10, bos=BOS, eos=EOS, pad=PAD, alpha=0.7)
    np.testing.assert_array_equal(b.tokens, g.tokens)
    np.testing.assert_array_equal(b.lengths, g.lengths)
    np.testing.assert_allclose(b.scores, g.scores, rtol=1e-6)
