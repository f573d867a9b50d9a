"""Padding: each example of a padded batch gives exactly what it gives alone, unpadded.

For lengths ``L_b``, outputs at ``t < L_b`` and the final carry equal those of
running ``x_b[:L_b]`` by itself, and outputs at ``t >= L_b`` are zero; forward,
reversed, bidirectional, and through stacks of layers.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import CELL_KINDS
from seqjax import scan
from seqjax.models.recurrent import Bidirectional, StackedRNN


def assert_matches_alone(ys, carry, lengths, run_alone):
    """``run_alone(b, L) -> (carry_b, ys_b)`` on ``x_b[:L]``; compare with example ``b`` of the padded run."""
    for b, length in enumerate(lengths):
        carry_b, ys_b = run_alone(b, int(length))
        np.testing.assert_allclose(ys[b, :length], ys_b[0], rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(ys[b, length:], 0.0)
        jax.tree.map(lambda got, want: np.testing.assert_allclose(got[b], want[0], rtol=1e-6, atol=1e-6),
                     carry, carry_b)


@st.composite
def padded_batches(draw):
    """A cell kind, direction, and a small padded batch (few distinct shapes: JAX compiles per shape)."""
    batch = draw(st.sampled_from([1, 3]))
    time = draw(st.sampled_from([1, 4]))
    lengths = draw(st.lists(st.integers(0, time), min_size=batch, max_size=batch))
    return dict(
        kind=draw(st.sampled_from(list(CELL_KINDS))),
        direction=draw(st.sampled_from(["forward", "reverse", "bidirectional"])),
        features=draw(st.sampled_from([1, 3])),
        hidden=draw(st.sampled_from([2, 3])),
        lengths=np.array(lengths),
        seed=draw(st.integers(0, 2**16)),
        time=time,
    )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=padded_batches())
def test_padded_batch_equals_examples_alone(case, make_kind_cell, randomize):
    cell = make_kind_cell(case["kind"], case["hidden"])
    p_fwd, p_bwd = (randomize(cell.init(jax.random.key(0), case["features"]), seed=case["seed"] + i) for i in (0, 1))
    lengths = case["lengths"]
    xs = jnp.asarray(np.random.default_rng(case["seed"]).normal(size=(len(lengths), case["time"], case["features"])),
                     jnp.float32)

    def run(x, lens):
        if case["direction"] == "bidirectional":
            return scan.bidirectional(cell, p_fwd, cell, p_bwd, x, lengths=lens)
        return scan.run(cell, p_fwd, x, lengths=lens, reverse=case["direction"] == "reverse")

    carry, ys = run(xs, jnp.asarray(lengths))
    assert_matches_alone(ys, carry, lengths, lambda b, length: run(xs[b:b + 1, :length], None))


LAYERS = {
    "bidirectional": lambda cell_of: Bidirectional(cell_of(3), merge="concat"),
    "stack": lambda cell_of: StackedRNN(cells=(cell_of(3), cell_of(2))),
    "bidirectional_stack": lambda cell_of: StackedRNN(cells=(cell_of(3), cell_of(2)), bidirectional=True,
                                                      merge="sum"),
}


@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("kind", ["lstm", "gru_cho"])
def test_layers_padded_equal_alone(layer, kind, make_kind_cell, randomize):
    module = LAYERS[layer](lambda hidden: make_kind_cell(kind, hidden))
    lengths = np.array([5, 0, 2])
    xs = jnp.asarray(np.random.default_rng(0).normal(size=(3, 5, 3)), jnp.float32)
    variables = {"params": randomize(module.init(jax.random.key(0), xs)["params"], seed=1)}

    def apply(x, lens=None):
        return module.apply(variables, x, lens, return_carry=True)

    carry, ys = apply(xs, jnp.asarray(lengths))
    assert_matches_alone(ys, carry, lengths, lambda b, length: apply(xs[b:b + 1, :length]))
