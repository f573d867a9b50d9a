"""Shared fixtures: the cell kinds under test and random parameters (keep this file small)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import seqjax

# kind -> (cell name, options); the kinds match tests/reference_numpy.step_fn.
CELL_KINDS = {
    "rnn_tanh": ("rnn", {"activation": "tanh"}),
    "rnn_relu": ("rnn", {"activation": "relu"}),
    "lstm": ("lstm", {}),
    "gru_cho": ("gru", {"variant": "cho"}),
    "gru_reset_after": ("gru", {"variant": "reset_after"}),
}


@pytest.fixture(params=list(CELL_KINDS))
def kind(request) -> str:
    """Each cell kind in turn."""
    return request.param


@pytest.fixture
def make_kind_cell():
    """``make(kind, hidden, **options) -> seqjax.Cell``."""

    def make(kind: str, hidden: int, **options) -> seqjax.Cell:
        name, base = CELL_KINDS[kind]
        return seqjax.make_cell(name, hidden, **base, **options)

    return make


@pytest.fixture
def randomize():
    """``randomize(tree, seed, scale)``: every leaf replaced by N(0, scale^2) draws of its shape and dtype."""

    def draw(tree, seed: int = 0, scale: float = 0.5):
        rng = np.random.default_rng(seed)
        return jax.tree.map(lambda a: jnp.asarray(rng.normal(scale=scale, size=a.shape), a.dtype), tree)

    return draw
