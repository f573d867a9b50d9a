"""seqjax cells against Flax's own cells (OptimizedLSTMCell, GRUCell, SimpleCell) run by ``nn.RNN``.

Flax keeps one ``[in, H]`` / ``[H, H]`` kernel per gate; seqjax fuses them as
``W_x = [W_x^1 | ... | W_x^G]``, so the copy is a split along the last axis.
Flax's ``nn.RNN`` handles ``seq_lengths`` (and ``reverse`` with ``keep_order``)
with its own code, which makes it an independent reference for padding too.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax import scan

B, T, I, H = 3, 6, 4, 5
LENGTHS = np.array([T, 3, 1])


def _gates(p: dict, gates: int, names: str):
    return dict(zip(names, zip(np.split(p["w_x"], gates, 1), np.split(p["w_h"], gates, 1), np.split(p["b"], gates))))


def lstm_to_flax(p):
    """``OptimizedLSTMCell``: ``i{g}`` kernels (no bias) and ``h{g}`` kernels with the bias."""
    out = {}
    for g, (wx, wh, b) in _gates(p, 4, "ifgo").items():
        out[f"i{g}"] = {"kernel": wx}
        out[f"h{g}"] = {"kernel": wh, "bias": b}
    return out


def gru_to_flax(p):
    """``GRUCell``: ``i{r,z,n}`` kernels with the input biases, ``h{r,z}`` kernels, ``hn`` with ``b_hn``."""
    out = {}
    for g, (wx, wh, b) in _gates(p, 3, "rzn").items():
        out[f"i{g}"] = {"kernel": wx, "bias": b}
        out[f"h{g}"] = {"kernel": wh}
    out["hn"]["bias"] = p["b_hn"]
    return out


def simple_to_flax(p):
    """``SimpleCell``: ``i`` kernel with the bias, ``h`` kernel."""
    return {"i": {"kernel": p["w_x"], "bias": p["b"]}, "h": {"kernel": p["w_h"]}}


FLAX_KINDS = {
    "rnn_tanh": (lambda: nn.SimpleCell(H), simple_to_flax),
    "rnn_relu": (lambda: nn.SimpleCell(H, activation_fn=nn.relu), simple_to_flax),
    "lstm": (lambda: nn.OptimizedLSTMCell(H), lstm_to_flax),
    "gru_reset_after": (lambda: nn.GRUCell(H), gru_to_flax),
}


@pytest.mark.parametrize("kind", list(FLAX_KINDS))
@pytest.mark.parametrize("reverse", [False, True])
def test_matches_flax_cell_with_lengths(kind, reverse, make_kind_cell, randomize):
    cell = make_kind_cell(kind, H)
    params = randomize(cell.init(jax.random.key(0), I), seed=1)
    xs = jnp.asarray(np.random.default_rng(2).normal(size=(B, T, I)), jnp.float32)
    make_flax, convert = FLAX_KINDS[kind]
    flax_rnn = nn.RNN(make_flax(), return_carry=True, reverse=reverse, keep_order=True)

    want_carry, want_ys = flax_rnn.apply({"params": {"cell": convert(params)}}, xs, seq_lengths=jnp.asarray(LENGTHS))
    carry, ys = scan.run(cell, params, xs, lengths=jnp.asarray(LENGTHS), reverse=reverse)

    valid = np.arange(T)[None, :] < LENGTHS[:, None]
    np.testing.assert_allclose(np.asarray(ys)[valid], np.asarray(want_ys)[valid], atol=1e-5)
    as_flax = (carry.c, carry.h) if kind == "lstm" else carry  # Flax's LSTM carry is (c, h)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), as_flax, want_carry)
