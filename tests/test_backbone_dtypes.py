"""Every registered backbone under every dtype it accepts (issue 10, part 4).

For each backbone of :data:`seqjax.models.registry.BACKBONES` (a new one is picked up by the
parametrization and fails until it has an entry in ``TINY``):

* bfloat16 input into the default (float32) model: float32 parameters and output, equal to the
  output on the same values in float32;
* bfloat16 compute (``dtype=bfloat16``) with float32 parameters: the parameters (and their
  gradients) stay float32, the output is bfloat16, finite, and within bfloat16 rounding of the
  float32 model's output on the same parameters; the step form keeps its state dtypes;
* under ``jax_enable_x64``: the default model keeps float32 parameters and output for float32 and
  float64 input; ``param_dtype=float64`` gives a float64 model close to the float32 one.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.experiment.config import load_config
from seqjax.errors import UserError
from seqjax.errors import StreamingError
from seqjax.models.tcn import TCN
from seqjax.models.registry import BACKBONES, build_backbone, get_backbone
from seqjax.experiment.workloads import build_workload

D_IN, BATCH, TIME = 4, 2, 8

# Tiny options per backbone; widths equal to D_IN take the identity input/residual paths, others the
# projections.  Options that touch precision are switched on (learned initial carry, weight norm, rotary).
TINY = {
    "rnn": dict(hidden_size=4, learned_init=True),
    "lstm": dict(hidden_size=5, num_layers=2),
    "gru": dict(hidden_size=4, bidirectional=True),
    "tcn": dict(channel_sizes=[4, 6], kernel_size=2, weight_norm=True),
    "s4": dict(d_model=4, n_layers=1, state_size=4, l_max=TIME),
    "s4d": dict(d_model=6, n_layers=1, state_size=4),
    "mamba": dict(d_model=4, n_layers=1, d_state=4, d_conv=2, expand=2, chunk_size=4),
    "transformer": dict(d_model=8, n_heads=2, n_layers=1, mlp_ratio=2, positions="rotary", max_len=TIME),
    "lru": dict(d_model=4, n_layers=1, d_state=3),
    "hawk": dict(d_model=6, n_layers=1, d_rnn=4, n_heads=2),
    "mingru": dict(d_model=4, n_layers=1),
    "minlstm": dict(d_model=6, n_layers=1),
    "s5": dict(d_model=4, n_layers=1, state_size=4, blocks=2),
    "mamba2": dict(d_model=4, n_layers=1, d_state=3, head_dim=2, n_groups=2, chunk_size=3),
}
NAMES = BACKBONES.names()


def test_every_registered_backbone_is_covered():
    assert set(TINY) == set(NAMES), "give every registered backbone tiny options in TINY"


def _model(name: str, **precision):
    assert name in TINY, f"backbone {name!r} has no tiny options in TINY"
    return build_backbone(name, get_backbone(name).options(**TINY[name], **precision))


def _dtypes(tree) -> set:
    return {leaf.dtype for leaf in jax.tree.leaves(tree)}


def _rel_err(y, ref) -> float:
    y, ref = np.asarray(y, np.float64), np.asarray(ref, np.float64)
    return float(np.max(np.abs(y - ref)) / max(np.max(np.abs(ref)), 1e-6))


def _random_like(tree: Any, seed: int = 0, scale: float = 0.5) -> Any:
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda a: jnp.asarray(rng.normal(scale=scale, size=a.shape), a.dtype), tree)


@functools.lru_cache(maxsize=None)
def _reference(name: str) -> tuple[Any, jax.Array, jax.Array]:
    """``(params, x, y)`` of the default float32 model; ``x`` holds bfloat16-exact values.

    Compiling is what costs here, so the parameters are random draws of the shapes ``init`` gives
    (``jax.eval_shape``: no compile), only outputs compared by value are computed, and dtypes,
    parameter trees and the step form are checked on abstract values (the same code, traced).
    """
    model = _model(name)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(BATCH, TIME, D_IN)), jnp.bfloat16).astype(jnp.float32)
    abstract = jax.eval_shape(model.init, jax.random.key(0), x)
    assert _dtypes(abstract) == {jnp.dtype(jnp.float32)}
    params = _random_like(abstract)
    y = jax.jit(model.apply)(params, x)
    assert y.dtype == jnp.float32 and y.shape[:2] == (BATCH, TIME) and np.isfinite(np.asarray(y)).all()
    return params, x, y


@pytest.mark.parametrize("name", NAMES)
def test_bfloat16_input_into_the_default_model(name):
    params, x, y32 = _reference(name)
    model, x16 = _model(name), x.astype(jnp.bfloat16)
    assert _dtypes(jax.eval_shape(model.init, jax.random.key(0), x16)) == {jnp.dtype(jnp.float32)}
    y = jax.jit(model.apply)(params, x16)
    assert y.dtype == jnp.float32
    np.testing.assert_allclose(y, y32, rtol=1e-6, atol=1e-6)  # the input is cast to the compute dtype


@pytest.mark.parametrize("name", NAMES)
def test_bfloat16_compute_with_float32_parameters(name):
    params, x, y32 = _reference(name)
    model = _model(name, dtype="bfloat16")
    abstract = jax.eval_shape(model.init, jax.random.key(0), x)
    assert jax.tree.structure(abstract) == jax.tree.structure(params)
    assert _dtypes(abstract) == {jnp.dtype(jnp.float32)}  # parameters stay float32
    y16 = jax.jit(model.apply)(params, x)
    assert y16.dtype == jnp.bfloat16
    assert np.isfinite(np.asarray(y16, np.float32)).all()
    assert _rel_err(y16, y32) < 0.05, _rel_err(y16, y32)  # bfloat16 keeps 8 bits: ~0.4% per rounding

    grads = jax.eval_shape(jax.grad(lambda p: jnp.sum(model.apply(p, x).astype(jnp.float32) ** 2)), params)
    assert _dtypes(grads) == {jnp.dtype(jnp.float32)}  # float32 gradients for a float32 optimizer state

    try:  # the step form: a state a scan can carry (same dtypes in and out), output in bfloat16
        state = jax.eval_shape(lambda p: model.apply(p, BATCH, method="initial_state"), params)
    except StreamingError:
        return  # non-causal (bidirectional): no step form
    new_state, y_t = jax.eval_shape(lambda p, s: model.apply(p, s, x[:, 0], method="step"), params, state)
    assert y_t.dtype == jnp.bfloat16
    assert jax.tree.map(lambda a: a.dtype, new_state) == jax.tree.map(lambda a: a.dtype, state)


@pytest.mark.parametrize("name", NAMES)
def test_under_x64(name):
    params, x, y32 = _reference(name)
    with jax.enable_x64(True):
        model = _model(name)
        for dtype in (jnp.float32, jnp.float64):  # float32 input failed in the TCN; float64 input
            x_in = x.astype(dtype)
            assert _dtypes(jax.eval_shape(model.init, jax.random.key(0), x_in)) == {jnp.dtype(jnp.float32)}
            assert jax.eval_shape(model.apply, params, x_in).dtype == jnp.float32  # no silent float64

        model64 = _model(name, param_dtype="float64")
        assert _dtypes(jax.eval_shape(model64.init, jax.random.key(0), x)) == {jnp.dtype(jnp.float64)}
        y = jax.jit(model64.apply)(jax.tree.map(lambda a: a.astype(jnp.float64), params), x)
        assert y.dtype == jnp.float64
        assert _rel_err(y, y32) < 1e-4, _rel_err(y, y32)


def test_the_issue_example_initializes():
    """``TCN(...).init`` on bfloat16 input, and on float32 input under x64, raised a conv dtype TypeError."""
    tcn = TCN(channels=(4,), kernel_size=3)
    for x64, dtype in ((False, jnp.bfloat16), (True, jnp.float32)):
        with jax.enable_x64(x64):
            params = jax.eval_shape(tcn.init, jax.random.key(0), jnp.ones((1, 10, 3), dtype))
            assert _dtypes(params) == {jnp.dtype(jnp.float32)}


def test_precision_options_are_checked():
    with pytest.raises(UserError, match="dtype"):
        get_backbone("lstm").options(dtype="float8")
    with pytest.raises(UserError, match="JAX_ENABLE_X64"):
        get_backbone("tcn").options(param_dtype="float64")


def test_bfloat16_compute_from_the_config():
    """``model.dtype=bfloat16`` on the command line: a mixed-precision run with float32 parameters and loss."""
    cfg = load_config("configs/experiments/smoke_adding.yaml", ["model.dtype=bfloat16", "model.hidden_size=4",
                                                                "task.seq_len=6", "train.batch_size=2"])
    workload = build_workload(cfg)
    abstract = jax.eval_shape(workload.init, jax.random.key(0))
    assert _dtypes(abstract) == {jnp.dtype(jnp.float32)}
    params = _random_like(abstract)
    loss, grads = jax.jit(jax.value_and_grad(lambda p: workload.loss(p, workload.sample_train(0), jax.random.key(1),
                                                                     True)[0]))(params)
    assert loss.dtype == jnp.float32 and np.isfinite(float(loss))
    assert _dtypes(grads) == {jnp.dtype(jnp.float32)}
