"""ListOps: token sequences parsed back and evaluated by an independent evaluator; lengths, depths, labels."""

import statistics

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.errors import UserError
from seqjax.tasks import get_task, make_task, train_batch
from seqjax.tasks.listops import OPERATORS, SYMBOLS, ListOpsOptions, listops, sample_numpy
from seqjax.tasks.tokens import FIRST, PAD

NAMES = dict(enumerate(SYMBOLS, start=FIRST))  # token id -> symbol, from the table only


def reference_value(symbols: list[str]) -> int:
    """Evaluate a bracketed expression with a recursive-descent parser written apart from the generator.

    Rules (LRA): MIN, MAX, SM = sum mod 10, MED = floor of the median (``statistics.median``: the mean of
    the two middle values for an even count).
    """
    ops = {"[MIN": min, "[MAX": max, "[SM": lambda a: sum(a) % 10,
           "[MED": lambda a: int(statistics.median(a) // 1)}

    def parse(i: int) -> tuple[int, int]:
        s = symbols[i]
        if s.isdigit():
            return int(s), i + 1
        assert s in ops, s
        args, i = [], i + 1
        while symbols[i] != "]":
            value, i = parse(i)
            args.append(value)
        assert len(args) >= 2
        return ops[s](args), i + 1

    value, end = parse(0)
    assert end == len(symbols), "trailing tokens"
    return value


def max_nesting(symbols: list[str]) -> int:
    """The deepest operator nesting (the root operator is level 1)."""
    depth = deepest = 0
    for s in symbols:
        depth += s.startswith("[") - (s == "]")
        deepest = max(deepest, depth)
    return deepest


@pytest.mark.parametrize("text, value", [
    ("[SM 5 6 ]", 1),  # 11 mod 10
    ("[MED 1 2 3 4 ]", 2),  # median 2.5, floored
    ("[MED 7 1 9 ]", 7),
    ("[MAX 4 3 [MIN 2 3 ] 1 0 ]", 4),
    ("[MIN [MAX 9 8 ] [SM 9 9 9 ] ]", 7),  # min(9, 27 mod 10)
    ("[MED [SM 1 1 ] 6 ]", 4),  # median of 2 and 6
    ("7", 7),
])
def test_hand_written_expressions(text, value):
    assert reference_value(text.split()) == value


def test_generated_sequences_evaluate_to_their_labels_within_bounds():
    opts = ListOpsOptions(min_len=20, max_len=120, max_depth=6, max_args=5)
    tokens, lengths, labels = sample_numpy(np.array([11, 3]), 300, opts)
    assert tokens.shape == (300, 120) and tokens.dtype == np.int32
    for row, n, label in zip(tokens, lengths, labels):
        assert 20 <= n <= 120
        assert (row[n:] == PAD).all() and (row[:n] != PAD).all()
        symbols = [NAMES[int(t)] for t in row[:n]]
        assert reference_value(symbols) == label
        assert max_nesting(symbols) <= opts.max_depth - 1  # digits only at max_depth
    counts = np.bincount(labels, minlength=10)
    assert (counts > 0).sum() == 10 and counts.max() < 0.5 * len(labels), counts  # not degenerate


@pytest.mark.parametrize("max_args", [2, 5, 10])
def test_tree_shapes_follow_the_lra_rule_in_closed_form(max_args):
    """Unconditioned trees at max_depth 2: the root is a digit w.p. 0.75 (1 token), else an operator over
    k = 2..max_args digits, uniform (k + 2 tokens): P(k + 2) = 0.25 / (max_args - 1). Every symbol is equally
    likely among its kind (operators among 4, digits among 10)."""
    n = 20_000
    tokens, lengths, _ = sample_numpy(np.array([7]), n, ListOpsOptions(min_len=1, max_len=max_args + 2, max_depth=2,
                                                                          max_args=max_args))
    expected = {1: 0.75} | {k + 2: 0.25 / (max_args - 1) for k in range(2, max_args + 1)}
    freq = np.bincount(lengths, minlength=max_args + 3) / n
    assert set(np.flatnonzero(freq)) == set(expected)
    for length, p in expected.items():
        assert abs(freq[length] - p) < 4 * np.sqrt(p * (1 - p) / n), (length, freq[length], p)
    firsts = [NAMES[int(t)] for t in tokens[lengths > 1, 0]]
    assert {f: firsts.count(f) / len(firsts) for f in set(firsts)} == pytest.approx(dict.fromkeys(OPERATORS, 0.25),
                                                                                    abs=0.03)
    digits = tokens[lengths == 1, 0]
    assert np.bincount(digits - FIRST, minlength=10) / len(digits) == pytest.approx(np.full(10, 0.1), abs=0.015)


def test_default_lengths_and_depth():
    tokens, lengths, labels = sample_numpy(np.array([5]), 16, ListOpsOptions())
    assert tokens.shape == (16, 500) and lengths.min() >= 100 and lengths.max() <= 500
    assert all(max_nesting([NAMES[int(t)] for t in row[:n]]) <= 9 for row, n in zip(tokens, lengths))


def test_batch_of_step_is_a_pure_function_of_the_key_under_jit_and_vmap():
    task = make_task("listops", get_task("listops").options(min_len=4, max_len=16))
    eager = train_batch(task, 0, 3, 5)
    jitted = jax.jit(lambda s: train_batch(task, 0, s, 5))(jnp.int32(3))
    lanes = jax.jit(jax.vmap(lambda s: train_batch(task, 0, s, 5)))(jnp.arange(4))
    for k in ("inputs", "lengths", "targets"):
        assert (eager[k] == jitted[k]).all() and (eager[k] == lanes[k][3]).all()
    assert not (train_batch(task, 0, 4, 5)["inputs"] == eager["inputs"]).all()


def test_baseline_is_a_prior_better_than_uniform():
    task = listops(ListOpsOptions(min_len=4, max_len=30))
    assert 0.1 <= task.baseline["accuracy"] < 0.5
    assert 0 < task.baseline["ce"] <= np.log(10) + 1e-9


@pytest.mark.parametrize("opts, message", [
    (dict(min_len=10, max_len=5), "min_len=10 exceeds max_len=5"),
    (dict(min_len=2, max_len=3), "no expression has 2..3 tokens"),
    (dict(max_args=1), "max_args=1 is out of range"),
    (dict(max_depth=1, min_len=4), "max_depth=1 allows only single digits"),
    (dict(min_len=200, max_len=300, max_depth=3), "no tree of 200..300 tokens in 10000 draws"),  # at most 122
])
def test_bad_options_are_user_errors(opts, message):
    with pytest.raises(UserError, match=message):
        listops(ListOpsOptions(**opts))
