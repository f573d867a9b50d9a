"""Bad input to cells, scans and layers fails with one clear line; the CLI answers --help."""

import contextlib
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

import seqjax
from seqjax import scan
from seqjax.models.recurrent import Bidirectional, Recurrent, StackedRNN
from seqjax.errors import StreamingError


@contextlib.contextmanager
def raises_one_line(match: str, exc: type = ValueError):
    """``pytest.raises`` that also checks the message is a single line."""
    with pytest.raises(exc, match=match) as info:
        yield info
    assert "\n" not in str(info.value)


@pytest.fixture(scope="module")
def lstm_and_params():
    cell = seqjax.lstm(4)
    return cell, cell.init(jax.random.key(0), 3)


@pytest.mark.parametrize("shape", [(5, 3), (2, 1, 5, 3)])
def test_wrong_input_rank(lstm_and_params, shape):
    cell, params = lstm_and_params
    with raises_one_line(r"expected inputs of shape \[batch, time, features\], got rank"):
        scan.run(cell, params, jnp.ones(shape))


def test_wrong_feature_size(lstm_and_params):
    cell, params = lstm_and_params
    with raises_one_line("input feature size 5 does not match the lstm cell's input size 3"):
        scan.run(cell, params, jnp.ones((2, 4, 5)))


def test_wrong_feature_size_in_a_layer():
    layer = Recurrent(seqjax.gru(4))
    variables = layer.init(jax.random.key(0), jnp.ones((2, 4, 3)))
    with raises_one_line("input feature size 5 does not match the gru cell's input size 3"):
        layer.apply(variables, jnp.ones((2, 4, 5)))


@pytest.mark.parametrize("lengths", [[4, 5], [-1, 2]])
def test_lengths_outside_the_sequence(lstm_and_params, lengths):
    cell, params = lstm_and_params
    with raises_one_line(r"lengths must lie in \[0, 4\]"):
        scan.run(cell, params, jnp.ones((2, 4, 3)), lengths=jnp.array(lengths))


def test_lengths_wrong_shape(lstm_and_params):
    cell, params = lstm_and_params
    with raises_one_line(r"lengths must have shape \[batch\]"):
        scan.run(cell, params, jnp.ones((2, 4, 3)), lengths=jnp.array([4, 4, 4]))


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: seqjax.rnn(4, activation="sigmoid"), "unknown activation 'sigmoid'"),
        (lambda: seqjax.gru(4, variant="minimal"), "unknown GRU variant 'minimal'"),
        (lambda: seqjax.make_cell("lstm", 4, recurrent="xavier"), "unknown recurrent initializer 'xavier'"),
        (lambda: seqjax.make_cell("rnn", 4, spectral_norm=0.0), r"spectral_norm=0.0 is out of range: must be positive \(> 0\)"),
        (lambda: seqjax.make_cell("lstm", 4, activation="relu"), "unknown option for cell 'lstm'.*activation"),
        (lambda: seqjax.make_cell("transformer", 4), "unknown cell 'transformer'"),
        (lambda: scan.merge_directions(jnp.ones(2), jnp.ones(2), "max"), "unknown merge mode 'max'"),
        (lambda: Bidirectional(seqjax.lstm(4), merge="max").init(jax.random.key(0), jnp.ones((1, 2, 3))),
         "unknown merge mode 'max'"),
    ],
    ids=["activation", "variant", "recurrent-init", "spectral-norm", "kwarg", "cell-name", "merge", "merge-layer"],
)
def test_unknown_cell_options_fail_at_construction(build, match):
    with raises_one_line(match):
        build()


@pytest.mark.parametrize(
    "module",
    [Bidirectional(seqjax.lstm(3)), StackedRNN(cells=(seqjax.gru(3),), bidirectional=True),
     Recurrent(seqjax.rnn(3), reverse=True)],
    ids=["bidirectional", "bidirectional-stack", "reversed"],
)
def test_non_causal_layers_refuse_to_stream(module):
    x = jnp.ones((2, 4, 3))
    variables = module.init(jax.random.key(0), x)
    with raises_one_line("cannot stream one token at a time", StreamingError):
        module.apply(variables, None, x[:, 0], method="step")
    if not isinstance(module, Recurrent):  # a reversed layer still has a (zero) initial state
        with raises_one_line("cannot stream", StreamingError):
            module.apply(variables, 2, method="initial_state")


def test_cli_help_exits_zero():
    script = Path(sys.executable).with_name("seqjax")  # the console script installed next to this Python
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "usage: seqjax" in result.stdout
