"""Gradients of the training loss for every workload and every backbone (issue 10, part 3).

Each case is built as ``seqjax train`` builds a run: an experiment file naming the shipped model,
task and optimizer parts, tiny-size overrides and ``model.param_dtype=float64`` under
``jax_enable_x64`` go through :func:`seqjax.experiment.config.load_config` and
:func:`seqjax.experiment.workloads.build_workload`; the loss is the workload's ``loss(params, batch,
key, train=True)`` on its first training batch (dropout on where a case sets it: the fixed key
fixes the mask).  ``jax.grad`` must be finite and its directional derivative ``<grad L, v>``
along a random unit direction ``v`` must match the central difference
``(L(theta + eps v) - L(theta - eps v)) / 2 eps`` to a relative ``1e-5`` -- for ``v`` over all
parameters and for ``v`` restricted to each parameter leaf in turn, so that no leaf's gradient
can hide in the sum.

The parameters are random draws (a generic point: the initializers' zero biases and identity
paths would hide terms) of the tree and dtypes that the workload's ``init`` gives, read with
``jax.eval_shape`` (the tree is the real one; compiling every ``init`` would double the time).

Coverage is checked against the registries: every backbone and every workload appears in
``CASES``, so a new one fails :func:`test_every_backbone_and_workload_is_covered` until it has a case.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.experiment.config import load_config
from seqjax.models.registry import BACKBONES
from seqjax.experiment.workloads import WORKLOADS, build_workload

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
EPS, RTOL = 1e-5, 1e-5

TASK_TINY = {
    "adding": ["task.seq_len=6"],
    "copy": ["task.seq_len=2"],
    "induction": ["task.seq_len=8", "task.vocab_size=5"],
    "selective_copy": ["task.seq_len=8", "task.num_tokens=2", "task.vocab_size=5"],
    "reverse": ["task.min_len=2", "task.max_len=4", "task.num_symbols=4"],
}
SEQ2SEQ_TINY = ["model.embed_size=3", "model.encoder_hidden_size=3", "model.decoder_hidden_size=4",
                "model.attention_size=3"]

# id -> (workload, model part, task part, overrides).  Both supervised heads (regress_last on adding;
# classify_steps with token embeddings on copy, selective_copy, induction) and every decoder attention
# kind are met; cases share tasks because each task's sampler costs a compile.
CASES = {
    "rnn": ("supervised", "rnn", "adding", ["model.hidden_size=3", "model.learned_init=true"]),
    "lstm": ("supervised", "lstm", "copy", ["model.hidden_size=3", "model.num_layers=2", "model.dropout=0.25"]),
    "gru": ("supervised", "gru", "selective_copy", ["model.hidden_size=3", "model.bidirectional=true"]),
    "tcn": ("supervised", "tcn", "adding", ["model.channels=3", "model.levels=2", "model.weight_norm=true"]),
    "s4": ("supervised", "s4", "induction", ["model.d_model=3", "model.n_layers=1", "model.state_size=4"]),
    "s4d": ("supervised", "s4d", "adding", ["model.d_model=3", "model.n_layers=1", "model.state_size=4"]),
    "mamba": ("supervised", "mamba", "selective_copy",
              ["model.d_model=3", "model.n_layers=1", "model.d_state=2", "model.d_conv=2", "model.chunk_size=4"]),
    "transformer": ("supervised", "transformer", "induction",
                    ["model.d_model=4", "model.n_heads=2", "model.n_layers=1", "model.mlp_ratio=1",
                     "model.dropout=0.25", "model.positions=rotary"]),
    "lru": ("supervised", "lru", "adding", ["model.d_model=3", "model.n_layers=1", "model.d_state=2"]),
    "hawk": ("supervised", "hawk", "selective_copy",
             ["model.d_model=3", "model.n_layers=1", "model.d_rnn=4", "model.n_heads=2", "model.d_conv=2"]),
    "mingru": ("supervised", "mingru", "copy", ["model.d_model=3", "model.n_layers=1", "model.ff_mult=1"]),
    "minlstm": ("supervised", "minlstm", "induction", ["model.d_model=3", "model.n_layers=1", "model.ff_mult=1"]),
    "s5": ("supervised", "s5", "adding", ["model.d_model=3", "model.n_layers=1", "model.state_size=4",
                                          "model.blocks=2"]),
    "mamba2": ("supervised", "mamba2", "selective_copy",
               ["model.d_model=3", "model.n_layers=1", "model.d_state=2", "model.head_dim=3", "model.d_conv=2",
                "model.chunk_size=3"]),
    "seq2seq": ("seq2seq", "seq2seq", "reverse", SEQ2SEQ_TINY),  # no attention: the crash
    "seq2seq_bahdanau": ("seq2seq", "seq2seq_attention", "reverse",
                         [*SEQ2SEQ_TINY, "model.encoder_cell=gru", "model.decoder_cell=rnn"]),
    "seq2seq_luong": ("seq2seq", "seq2seq_luong", "reverse", [*SEQ2SEQ_TINY, "model.encoder_layers=2"]),
}


def _shipped(registry) -> set[str]:
    """The names seqjax itself registers (other tests register toy entries in the same process)."""
    return {n for n in registry.names() if getattr(registry.get(n).build, "__module__", "").startswith("seqjax.")}


def test_every_backbone_and_workload_is_covered():
    supervised = {model for workload, model, _, _ in CASES.values() if workload == "supervised"}
    assert supervised == _shipped(BACKBONES), "give every registered backbone a case in CASES"
    assert {workload for workload, *_ in CASES.values()} == _shipped(WORKLOADS), "a workload without a case"


def _experiment(tmp_path: Path, workload: str, model: str, task: str) -> Path:
    """An experiment file like the shipped ones, naming the shipped parts (absolute paths)."""
    path = tmp_path / "experiment.yaml"
    path.write_text(
        f"workload: {workload}\n"
        "defaults:\n"
        f"  model: {CONFIGS / 'models' / model}.yaml\n"
        f"  task: {CONFIGS / 'tasks' / task}.yaml\n"
        f"  optim: {CONFIGS / 'optim' / 'adam'}.yaml\n"
    )
    return path


def _random_like(tree, rng: np.random.Generator, scale: float = 0.5):
    """NumPy draws of ``tree``'s shapes and dtypes (host arrays: the arithmetic below dispatches nothing)."""
    return jax.tree.map(lambda a: rng.normal(scale=scale, size=a.shape).astype(a.dtype), tree)


def _unit(tree):
    norm = np.sqrt(sum(np.sum(a**2) for a in jax.tree.leaves(tree)))
    return jax.tree.map(lambda a: a / norm, tree)


def _dot(a, b) -> float:
    return float(sum(np.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))))


_BATCHES: dict[str, dict] = {}


def _first_batch(task: str, workload) -> dict:
    """The first training batch; the same for every case on ``task`` (same task options, seed, batch size)."""
    if task not in _BATCHES:
        _BATCHES[task] = jax.jit(workload.sample_train)(jnp.int32(0))
    return _BATCHES[task]


@pytest.mark.parametrize("case", list(CASES))
def test_gradient_matches_central_differences(case, tmp_path):
    workload_name, model, task, overrides = CASES[case]
    with jax.enable_x64(True):
        cfg = load_config(_experiment(tmp_path, workload_name, model, task),
                          [*TASK_TINY[task], *overrides, "model.param_dtype=float64", "train.batch_size=2"])
        workload = build_workload(cfg)
        abstract = jax.eval_shape(workload.init, jax.random.key(0))
        assert {a.dtype for a in jax.tree.leaves(abstract)} == {jnp.dtype(jnp.float64)}, "a float32 leaf"
        rng = np.random.default_rng(0)
        params = _random_like(abstract, rng)
        batch, key = _first_batch(task, workload), jax.random.key(1)

        # one compiled function for the gradient and (its value) the differences: compiling is the cost
        value_and_grad = jax.jit(jax.value_and_grad(lambda p: workload.loss(p, batch, key, True)[0]))
        value, grads = value_and_grad(params)
        assert value.dtype == jnp.float64 and np.isfinite(float(value))
        assert jax.tree.structure(grads) == jax.tree.structure(params)
        assert all(g.dtype == jnp.float64 and np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))
        grads = jax.tree.map(np.asarray, grads)
        loss = lambda p: float(value_and_grad(p)[0])  # noqa: E731

        def check(direction, what: str) -> None:
            plus = jax.tree.map(lambda p, v: p + EPS * v, params, direction)
            minus = jax.tree.map(lambda p, v: p - EPS * v, params, direction)
            central = (loss(plus) - loss(minus)) / (2 * EPS)
            analytic = _dot(grads, direction)
            scale = max(abs(analytic), 1e-3 * grad_norm)  # a leaf whose derivative is ~0 along v: absolute
            assert abs(central - analytic) <= RTOL * scale, (what, central, analytic)

        grad_norm = np.sqrt(_dot(grads, grads))
        assert grad_norm > 0
        v = _unit(_random_like(params, rng, 1.0))
        check(v, "all parameters")
        paths = [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
        leaves, treedef = jax.tree.flatten(v)
        for i, path in enumerate(paths):
            only = [leaf if j == i else np.zeros_like(leaf) for j, leaf in enumerate(leaves)]
            check(_unit(jax.tree.unflatten(treedef, only)), path)
