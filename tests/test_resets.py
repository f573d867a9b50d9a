"""Packed sequences (issue 17): with ``resets`` marking the first token of each sequence packed into a row,
every family's outputs and gradients equal those of each sequence run alone.

The reference is the same model run on each sequence alone: each sequence is moved to the start of a row
of its own (zero padding after it, ``lengths`` its length), all of them in one batch, so one compiled
program serves any boundaries.  Causal backbones ignore what follows a sequence; the bidirectional
ones take ``lengths``.  A loss on the packed outputs then equals the sum of the sequences' losses, and
so do its gradients, with respect to the parameters and (position by position) the inputs.  In float64.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CELL_KINDS
from seqjax import make_cell, scan
from seqjax.models.registry import BACKBONES, build_backbone, get_backbone

B, T, F, H = 3, 6, 4, 3
ROWS = B * T  # room for every sequence of any packing: one shape, one compilation

# Every registered backbone (the recurrent families, and the TCN and Transformer too), tiny, in float64.
TINY = {
    "rnn": dict(hidden_size=4, learned_init=True),
    "lstm": dict(hidden_size=3, num_layers=2),
    "gru": dict(hidden_size=3, bidirectional=True),
    "s4": dict(d_model=4, n_layers=1, state_size=4, l_max=T),
    "s4d": dict(d_model=4, n_layers=1, state_size=4),
    "mamba": dict(d_model=4, n_layers=1, d_state=3, d_conv=3, expand=1, chunk_size=4),
    "lru": dict(d_model=4, n_layers=1, d_state=3),
    "s5": dict(d_model=4, n_layers=1, state_size=4, blocks=2),
    "hawk": dict(d_model=4, n_layers=1, d_rnn=4, n_heads=2, d_conv=3),
    "mingru": dict(d_model=4, n_layers=1),
    "minlstm": dict(d_model=4, n_layers=1),
    "mamba2": dict(d_model=4, n_layers=1, d_state=3, head_dim=2, n_groups=2, d_conv=3, chunk_size=4),
    "tcn": dict(channel_sizes=[4, 4], kernel_size=2),
    "transformer": dict(d_model=4, n_heads=2, n_layers=1, mlp_ratio=1, positions="rotary", max_len=T),
}
RECURRENT_OPTIONS = {"rnn": {}, "lstm": {}, "gru": {}}  # scan_method variants below run the other engines
SCAN_METHODS = {"lru": "associative", "s5": "chunked", "mingru": "chunked", "minlstm": "associative",
                "hawk": "associative", "mamba": "associative"}

# Packed rows: sequences of 2 and 4, of 4 and 2, and of 1, 2, 2, 1 (a reset at t = 0 or not: the same).
RESETS = np.array([[1, 0, 1, 0, 0, 0],
                   [0, 0, 0, 0, 1, 0],
                   [1, 1, 0, 1, 0, 1]], bool)


def test_every_registered_backbone_is_covered():
    assert set(TINY) == set(BACKBONES.names()), "give every registered backbone tiny options in TINY"


def sequences(resets: np.ndarray, lengths: np.ndarray) -> list[tuple[int, int, int]]:
    """``(row, start, stop)`` of every packed sequence: cut at each reset and at each row's length."""
    out = []
    for row in range(resets.shape[0]):
        cuts = sorted({0, *np.flatnonzero(resets[row, : lengths[row]]).tolist()}) + [int(lengths[row])]
        out += [(row, a, b) for a, b in zip(cuts, cuts[1:]) if b > a]
    return out


def alone(x: np.ndarray, w: np.ndarray, seqs: list[tuple[int, int, int]]) -> tuple[np.ndarray, ...]:
    """Each sequence at the start of a row of its own: inputs, loss weights (zero past it) and lengths."""
    x_alone, w_alone = np.zeros((ROWS, *x.shape[1:])), np.zeros((ROWS, *w.shape[1:]))
    lengths = np.zeros(ROWS, np.int32)
    for s, (row, a, b) in enumerate(seqs):
        x_alone[s, : b - a], w_alone[s, : b - a], lengths[s] = x[row, a:b], w[row, a:b], b - a
    return x_alone, w_alone, lengths


@functools.lru_cache(maxsize=None)
def _compiled(run):
    """The jitted outputs and loss Jacobians of ``run`` (cached: one compilation per model, any packing)."""

    def losses(params, x, resets, lengths, w_packed, w_alone):
        y = run(params, x, resets, lengths)
        return jnp.stack([jnp.sum(y * w_packed), jnp.sum(y * w_alone)]), y

    return jax.jit(jax.jacrev(losses, argnums=(0, 1), has_aux=True))


def check_packed_equals_alone(run, params, x, w, resets, lengths, rtol=1e-9, atol=1e-11):
    """``run(params, x, resets, lengths) -> y``: outputs, loss and gradients packed against alone.

    One batch holds the packed rows, the same rows without resets (which must differ: the test has
    teeth) and the rows of the sequences alone (rows are independent); the two losses' gradients come
    from one reverse pass of the pair.
    """
    seqs = sequences(resets, lengths)
    x_alone, w_alone, l_alone = alone(x, w, seqs)
    rows, zeros = x.shape[0], np.zeros_like(w)
    x_all = np.concatenate([x, x, x_alone])
    resets_all = np.concatenate([resets, np.zeros_like(resets), np.zeros((ROWS, x.shape[1]), bool)])
    lengths_all = np.concatenate([lengths, lengths, l_alone])
    w_packed = np.concatenate([w, zeros, np.zeros_like(w_alone)])
    w_alone = np.concatenate([zeros, zeros, w_alone])
    (dp, dx), y = _compiled(run)(params, x_all, resets_all, lengths_all, w_packed, w_alone)
    y_p, y_plain, y_a, dx_p, dx_a = y[:rows], y[rows : 2 * rows], y[2 * rows :], dx[0, :rows], dx[1, 2 * rows :]
    covered = np.zeros(x.shape[:2], bool)
    for s, (row, a, b) in enumerate(seqs):
        np.testing.assert_allclose(y_p[row, a:b], y_a[s, : b - a], rtol=rtol, atol=atol)
        np.testing.assert_allclose(dx_p[row, a:b], dx_a[s, : b - a], rtol=rtol, atol=atol)
        covered[row, a:b] = True
        if a > 0:  # a sequence after another: without the reset it reads its predecessor
            assert not np.allclose(y_plain[row, a:b], y_p[row, a:b], rtol=rtol, atol=atol)
    np.testing.assert_array_equal(dx_p[~covered], 0.0)  # padding past the lengths reaches nothing
    assert not covered.any() or np.abs(dx_p[covered]).max() > 0
    jax.tree.map(lambda g: np.testing.assert_allclose(g[0], g[1], rtol=rtol, atol=atol), dp)


def _draw(shape, seed):
    return np.random.default_rng(seed).normal(size=shape)


def _random_params(model, x):
    """Random draws of the parameters' shapes (no compilation: ``eval_shape``), none left zero."""
    return jax.tree.map(lambda p: jnp.asarray(0.5 * _draw(p.shape, 1), p.dtype),
                        jax.eval_shape(model.init, jax.random.key(0), x))


# --- every backbone -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TINY))
def test_packed_backbone_equals_each_sequence_alone(name):
    with jax.enable_x64(True):
        options = dict(TINY[name], param_dtype="float64")
        if name in SCAN_METHODS:
            options["scan_method"] = SCAN_METHODS[name]
        model = build_backbone(name, get_backbone(name).options(**options))
        x = _draw((B, T, F), 0)
        params = _random_params(model, x)
        w = _draw(jax.eval_shape(model.apply, params, x).shape, 2)

        def run(params, x, resets, lengths):
            return model.apply(params, x, lengths, resets=resets)

        check_packed_equals_alone(run, params, x, w, RESETS, np.full(B, T))


@pytest.mark.parametrize("name", ["mamba2", "hawk", "rnn"])
def test_chunk_form_with_resets_equals_the_parallel_form(name):
    """Streaming packed rows in two chunks (a reset in each) from the carried state = the parallel form: the conv
    buffer, Hawk's fresh flag and the learned initial carry of the RNN across a chunk boundary."""
    with jax.enable_x64(True):
        model = build_backbone(name, get_backbone(name).options(**TINY[name], param_dtype="float64"))
        x = _draw((B, T, F), 0)
        params = _random_params(model, x)

        @jax.jit
        def streamed_and_parallel(params, x, resets):
            state = model.apply(params, B, method="initial_state")
            state, first = model.apply(params, state, x[:, :3], resets[:, :3], method="chunk")
            _, rest = model.apply(params, state, x[:, 3:], resets[:, 3:], method="chunk")
            return jnp.concatenate([first, rest], 1), model.apply(params, x, resets=resets)

        streamed, parallel = streamed_and_parallel(params, x, RESETS)
        np.testing.assert_allclose(streamed, parallel, rtol=1e-10, atol=1e-12)


# --- the nonlinear scan, both directions, with lengths, fused backward and autodiff -----------------------------


@functools.lru_cache(maxsize=None)
def _cell(kind: str):
    """The cell of ``kind`` in float64 and random parameters (cached, so its compiled checks are reused)."""
    name, options = CELL_KINDS[kind]
    cell = make_cell(name, H, dtype=jnp.float64, param_dtype=jnp.float64, **options)
    params = jax.tree.map(lambda p: p + 0.3 * _draw(p.shape, 3), cell.init(jax.random.key(0), F))
    return cell, params


@functools.lru_cache(maxsize=None)
def _bidirectional(kind: str, remat: bool):
    """Forward and reversed scans of one cell, concatenated (``scan.bidirectional``): both directions at once."""
    cell, _ = _cell(kind)

    def run(params, x, resets, lengths):
        return scan.bidirectional(cell, params, cell, params, x, lengths=lengths, resets=resets, remat=remat)[1]

    return run


LENGTHS = np.array([T, 4, 0])  # a full row, one cut inside its second sequence (a reset in the padding), an empty one


@pytest.mark.parametrize("kind", sorted(CELL_KINDS))
def test_packed_scan_equals_each_sequence_alone(kind):
    """Both directions, with lengths, under the fused backward (but for the Cho GRU, which has none)."""
    with jax.enable_x64(True):
        check_packed_equals_alone(_bidirectional(kind, False), _cell(kind)[1], _draw((B, T, F), 4),
                                  _draw((B, T, 2 * H), 5), RESETS, LENGTHS)


@settings(max_examples=6, deadline=None)
@given(resets=st.lists(st.booleans(), min_size=B * T, max_size=B * T),
       lengths=st.lists(st.integers(0, T), min_size=B, max_size=B), remat=st.booleans())
def test_any_packing_of_the_lstm(resets, lengths, remat):
    """Random boundaries and lengths (one compiled program each way: ``resets`` and ``lengths`` are data)."""
    with jax.enable_x64(True):
        check_packed_equals_alone(_bidirectional("lstm", remat), _cell("lstm")[1], _draw((B, T, F), 4),
                                  _draw((B, T, 2 * H), 5), np.array(resets).reshape(B, T), np.array(lengths))


FUSED_KINDS = [k for k in sorted(CELL_KINDS) if k != "gru_cho"]


@pytest.mark.parametrize("kind", FUSED_KINDS)
def test_fused_backward_with_resets_equals_autodiff(kind):
    """The hand-derived backward across restarts, both directions, with a nonzero initial carry and a nonzero
    reset carry: the gradients of both (the reset carry's summed over every restart), of the parameters and
    of the inputs, equal JAX's transpose of the plain scan's, and of the rematerialized one's."""
    with jax.enable_x64(True):
        cell, params = _cell(kind)
        x, w = _draw((B, T, F), 6), _draw((B, T, H), 7)
        carry0, fresh = (jax.tree.map(lambda c, s=seed: c + _draw(c.shape, s), cell.initial_carry((B,)))
                         for seed in (8, 9))

        def loss(params, x, carry0, fresh, bptt, remat):
            total = 0.0
            for reverse in (False, True):
                carry, y = scan.run(cell, params, x, lengths=LENGTHS, resets=RESETS, initial_carry=carry0,
                                    reset_carry=fresh, reverse=reverse, bptt=bptt, remat=remat)
                total += jnp.sum(y * w) + sum(jnp.sum(jnp.sin(c)) for c in jax.tree.leaves(carry))
            return total

        @jax.jit
        def gradients(params, x, carry0, fresh):
            return [jax.value_and_grad(loss, argnums=(0, 1, 2, 3))(params, x, carry0, fresh, bptt, remat)
                    for bptt, remat in (("fused", False), ("autodiff", False), ("autodiff", True))]

        fused, *references = gradients(params, x, carry0, fresh)
        for reference in references:
            jax.tree.map(lambda g, r: np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-12), fused, reference)
        assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(fused[1][3]))  # the reset carry is used
