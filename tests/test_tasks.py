"""Synthetic tasks checked against their definitions (../shared/STUDIES.md) written out again in NumPy."""

import numpy as np
import pytest
import jax
import jax.numpy as jnp

from seqjax.errors import UserError
from seqjax.tasks import fixed_split, get_task, make_task, train_batch
from seqjax.tasks.registry import TASKS


def _task(name, **kw):
    return make_task(name, get_task(name).options(**kw))


@pytest.mark.parametrize("variant", ["tcn", "urnn"])
def test_adding_layout_and_target(variant):
    T = 30
    b = jax.tree.map(np.asarray, fixed_split(_task("adding", seq_len=T, variant=variant), 0, "val", 500))
    values, markers = b["inputs"][..., 0], b["inputs"][..., 1]
    assert b["inputs"].shape == (500, T, 2)
    assert ((values >= 0) & (values < 1)).all()
    assert set(np.unique(markers)) == {0.0, 1.0} and (markers.sum(1) == 2).all()
    for row in range(500):
        pos = np.flatnonzero(markers[row])
        np.testing.assert_allclose(b["targets"][row, 0], values[row, pos].sum(), rtol=1e-6)
        if variant == "urnn":
            assert pos[0] < T // 2 <= pos[1]
    if variant == "tcn":  # positions cover the whole sequence, both halves for either marker
        first = np.argmax(markers, axis=1)
        assert first.min() < T // 4 and (T - 1 - np.argmax(markers[:, ::-1], axis=1)).max() > 3 * T // 4


def test_adding_baseline_is_variance_of_the_sum():
    task = _task("adding", seq_len=20)
    b = fixed_split(task, 1, "test", 20000)
    empirical = float(task.metrics(jnp.ones((20000, 1)), b)["mse"])
    assert task.baseline["mse"] == pytest.approx(1 / 6)
    assert empirical == pytest.approx(1 / 6, abs=0.01)


@pytest.mark.parametrize("variant", ["urnn", "tcn"])
def test_copy_layout(variant):
    T = 12
    b = jax.tree.map(np.asarray, fixed_split(_task("copy", seq_len=T, variant=variant), 0, "val", 64))
    x, y = b["inputs"], b["targets"]
    assert x.shape == y.shape == (64, T + 20)
    symbols = x[:, :10]
    assert ((symbols >= 1) & (symbols <= 8)).all()
    assert (x[:, 10 : T + 9] == 0).all()  # T - 1 blanks
    assert (x[:, T + 9] == 9).all()  # the delimiter
    rest = x[:, T + 10 :]
    assert (rest == 9).all() if variant == "tcn" else (rest == 0).all()
    assert (y[:, : T + 10] == 0).all() and (y[:, T + 10 :] == symbols).all()


def test_copy_baseline_equals_memoryless_predictor_cross_entropy():
    T = 40
    task = _task("copy", seq_len=T)
    b = fixed_split(task, 0, "val", 8)
    # blank with certainty before recall, uniform over symbols 1..8 during recall
    probs = np.zeros((8, T + 20, 10))
    probs[:, : T + 10, 0] = 1.0
    probs[:, T + 10 :, 1:9] = 1 / 8
    logits = jnp.log(jnp.asarray(probs) + 1e-30)
    got = float(task.metrics(logits, b)["ce"])
    assert got == pytest.approx(10 * np.log(8) / (T + 20), rel=1e-5)
    assert task.baseline["ce"] == pytest.approx(10 * np.log(8) / (T + 20))


def test_splits_are_fixed_distinct_and_training_batches_pure():
    task = _task("adding", seq_len=10)
    a, b = fixed_split(task, 0, "val", 4), fixed_split(task, 0, "val", 4)
    np.testing.assert_array_equal(a["inputs"], b["inputs"])
    assert not np.array_equal(a["inputs"], fixed_split(task, 0, "test", 4)["inputs"])
    assert not np.array_equal(a["inputs"], fixed_split(task, 1, "val", 4)["inputs"])
    s3 = train_batch(task, 0, 3, 4)
    np.testing.assert_array_equal(s3["inputs"], jax.jit(lambda s: train_batch(task, 0, s, 4))(3)["inputs"])
    assert not np.array_equal(s3["inputs"], train_batch(task, 0, 4, 4)["inputs"])


def test_bad_task_options_and_names():
    with pytest.raises(UserError, match="unknown adding variant 'tcnn'"):
        _task("adding", variant="tcnn")
    with pytest.raises(UserError, match="unknown task 'addin'.*adding"):
        get_task("addin")
    with pytest.raises(UserError, match="unknown split"):
        fixed_split(_task("adding"), 0, "dev", 2)


def _uniform_over(tokens, V, T, B):
    """Logits of a predictor uniform over ``tokens`` at every position."""
    probs = np.full((B, T, V), 1e-30)
    probs[..., tokens] = 1.0 / len(tokens)
    return jnp.log(jnp.asarray(probs))


def test_selective_copy_definition_and_baseline():
    L, M, V = 24, 5, 16  # L noise tokens (the paper's convention), M data tokens among them, then M markers
    task = _task("selective_copy", seq_len=L, num_tokens=M, vocab_size=V)
    assert task.seq_len == L + 2 * M
    b = jax.tree.map(np.asarray, fixed_split(task, 0, "val", 32))
    for x, y, m in zip(b["inputs"], b["targets"], b["mask"]):
        region = x[: L + M]
        data = region[region != 0]
        assert len(data) == M and ((data >= 1) & (data <= V - 2)).all() and (region == 0).sum() == L
        assert (x[L + M :] == V - 1).all() and (y[L + M :] == data).all()  # recalled in order
        assert m.sum() == M and m[L + M :].all()
    ce = float(task.metrics(_uniform_over(list(range(1, V - 1)), V, L + 2 * M, 32), b)["ce"])
    assert ce == pytest.approx(np.log(V - 2), rel=1e-5) and task.baseline["ce"] == pytest.approx(np.log(V - 2))


def test_induction_definition():
    L, V = 30, 16
    b = jax.tree.map(np.asarray, fixed_split(_task("induction", seq_len=L, vocab_size=V), 0, "val", 64))
    for x, y, m in zip(b["inputs"], b["targets"], b["mask"]):
        special = np.flatnonzero(x == V - 1)
        assert len(special) == 2 and special[1] == L - 1
        assert y[L - 1] == x[special[0] + 1] and m.sum() == 1 and m[L - 1] == 1


def test_associative_recall_definition():
    L, K, V = 40, 5, 32
    b = jax.tree.map(np.asarray, fixed_split(_task("mqar", seq_len=L, num_pairs=K, vocab_size=V), 0, "val", 32))
    for x, y, m in zip(b["inputs"], b["targets"], b["mask"]):
        table = dict(zip(x[: 2 * K : 2], x[1 : 2 * K : 2]))
        assert len(table) == K and all(1 <= k < V // 2 <= v < V for k, v in table.items())  # distinct keys
        assert len(set(table.values())) == K  # distinct values, as Zoology draws them (drawn with replacement, ~half fail)
        queries = np.flatnonzero(m)
        assert len(queries) == K and set(x[queries]) == set(table)
        assert all(y[q] == table[x[q]] and x[q + 1] == 0 for q in queries)  # nothing after a query (Zoology)
        assert not set(x[2 * K:]) & set(table.values())  # no value after the pairs: each must be recalled
    leaky = _task("mqar", seq_len=L, num_pairs=K, vocab_size=V, values_in_queries=True)
    b = jax.tree.map(np.asarray, fixed_split(leaky, 0, "val", 32))
    for x, y, m in zip(b["inputs"], b["targets"], b["mask"]):
        assert all(x[q + 1] == y[q] for q in np.flatnonzero(m))  # k_j v_j slots: the answer is the next input
    with pytest.raises(UserError, match="seq_len must be at least"):
        _task("mqar", seq_len=10, num_pairs=4)
    with pytest.raises(UserError, match="raise vocab_size to at least 10"):
        _task("mqar", seq_len=40, num_pairs=4, vocab_size=9)


@pytest.mark.parametrize("name, options", [
    ("copy", dict(seq_len=12)), ("selective_copy", dict(seq_len=24, num_tokens=5)),
    ("induction", dict(seq_len=30)), ("mqar", dict(seq_len=40, num_pairs=5)),
    ("mqar", dict(seq_len=40, num_pairs=5, values_in_queries=True)),
])
def test_causal_flag_marks_exactly_the_tasks_whose_answers_are_later_inputs(name, options):
    """``task.requires_causal_model`` (a bidirectional model is refused) iff the answers can be read from the future inputs.

    Token 0 is every built-in task's blank / noise filler (the copy task scores it too), not an answer.
    """
    task = _task(name, **options)
    b = jax.tree.map(np.asarray, fixed_split(task, 0, "val", 32))
    found = [y[t] in x[t + 1:] for x, y, m in zip(b["inputs"], b["targets"], b["mask"])
             for t in np.flatnonzero(m) if y[t] != 0]
    assert found or name == "induction"  # induction's one answer sits at the last position
    assert task.requires_causal_model == all(found)
    assert task.requires_causal_model or not any(found)


@pytest.mark.parametrize("name", TASKS.names())
def test_batches_are_the_same_with_and_without_x64(name, tmp_path):
    """Draws are int32 / float32: enabling x64 (as the float64 gradient tests do) changes no batch's values,
    and no token array's dtype.  MNIST reads tiny IDX files written here."""
    from test_file_datasets import _write_mnist

    if name == "mnist":
        _write_mnist(tmp_path / "mnist", 5004, 7, gz=False)
    task = _task(name, path=str(tmp_path / "mnist")) if name == "mnist" else make_task(name)
    sample = jax.jit(task.sample, static_argnums=1)  # as training draws them (one program, not an op at a time)
    plain = sample(jax.random.key(3), 4)
    with jax.enable_x64(True):
        wide = sample(jax.random.key(3), 4)
    for k in plain:
        assert not jnp.issubdtype(plain[k].dtype, jnp.integer) or wide[k].dtype == plain[k].dtype == jnp.int32, k
        np.testing.assert_array_equal(np.asarray(wide[k]), np.asarray(plain[k]), err_msg=k)
