"""The compiled attention (``seqjax/ops/csrc/attention.cc``) against a NumPy softmax and JAX's autodiff.

Sizes cut across the kernel's tiles of 16: 37 queries (16 + 16 + 5), 3 heads of width 5, and a mask that
combines a causal triangle, padding (one row sees no key at all) and packed sequences; a cached form with
fewer queries than keys.
"""

import contextlib
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.models.transformer import SelfAttention
from seqjax.ops import native
from seqjax.ops.attention_native import attention_native, available

pytestmark = pytest.mark.skipif(os.environ.get("SEQJAX_NATIVE") == "0", reason="compiled kernels disabled")

BATCH, QUERIES, HEADS, DIM = 2, 37, 3, 5


def inputs(queries=QUERIES, keys=QUERIES, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(BATCH, queries, HEADS, DIM))
    k, v = rng.normal(size=(BATCH, keys, HEADS, DIM)), rng.normal(size=(BATCH, keys, HEADS, DIM))
    t = np.arange(queries)[:, None] + (keys - queries)  # query t sits at key position t + keys - queries
    s = np.arange(keys)[None, :]
    segments = np.cumsum(rng.uniform(size=(BATCH, keys)) < 0.1, axis=1)
    mask = (s <= t)[None] & (segments[:, None, -queries:].transpose(0, 2, 1) == segments[:, None, :])
    mask[0, :, 30:] = False  # batch row 0 has 30 valid keys ...
    mask[0, 3] = False  # ... and a query that sees none
    return q, k, v, mask


def numpy_attention(q, k, v, mask):
    """softmax over the visible keys of q . k / sqrt(d), in float64; 0 for a query that sees no key."""
    logits = np.einsum("bthd,bshd->bhts", q, k) / np.sqrt(q.shape[-1])
    logits = np.where(mask[:, None], logits, -np.inf)
    top = np.max(logits, axis=-1, keepdims=True)
    w = np.where(mask[:, None], np.exp(logits - np.where(np.isfinite(top), top, 0.0)), 0.0)
    w = w / np.maximum(w.sum(-1, keepdims=True), 1e-300)
    return np.einsum("bhts,bshd->bthd", w, v)


def as_jax(values):
    return [jnp.asarray(x) if x.dtype == bool else jnp.asarray(x, jnp.float32) for x in values]


def test_the_kernel_builds_here():
    assert available(jnp.zeros(1)), "the compiled attention did not build (see the warning above)"


@pytest.mark.parametrize("queries", [QUERIES, 4], ids=["self", "cached"])
def test_outputs_match_numpy(queries):
    values = inputs(queries=queries, keys=QUERIES)
    got = jax.jit(attention_native)(*as_jax(values))
    np.testing.assert_allclose(got, numpy_attention(*values), rtol=1e-5, atol=1e-5)
    if queries == QUERIES:
        np.testing.assert_array_equal(got[0, 3], 0.0)  # the query that sees no key


@pytest.mark.parametrize("queries", [QUERIES, 4], ids=["self", "cached"])
def test_gradients_equal_autodiff_of_the_jax_form(queries):
    """Gradients of q, k, v against ``jax.grad`` of ``SelfAttention.heads`` with the kernel off."""
    q, k, v, mask = as_jax(inputs(queries=queries, keys=QUERIES, seed=1))
    w = jax.random.normal(jax.random.key(0), q.shape)
    loss = lambda q, k, v: jnp.sum(w * SelfAttention.heads(q, k, v, mask))  # noqa: E731
    got = jax.jit(jax.grad(loss, (0, 1, 2)))(q, k, v)
    with native.jax_only():
        want = jax.jit(jax.grad(loss, (0, 1, 2)))(q, k, v)
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5 * float(jnp.abs(r).max()))


def test_vmap_equals_a_loop_over_the_mapped_axis():
    stacked = [np.stack([a, b]) for a, b in zip(inputs(seed=2), inputs(seed=3))]
    got = jax.jit(jax.vmap(attention_native))(*as_jax(stacked))
    for i in range(2):
        np.testing.assert_array_equal(got[i], attention_native(*as_jax([x[i] for x in stacked])))


def test_transformer_with_the_kernel_equals_its_jax_form():
    """The causal backbone (blocked attention in the JAX form, one kernel call here): outputs and gradients."""
    from seqjax.models.registry import build_backbone
    from seqjax.models.transformer import TransformerOptions

    model = build_backbone("transformer", TransformerOptions(d_model=16, n_heads=2, n_layers=2, max_len=300))
    x = jax.random.normal(jax.random.key(0), (2, 260, 3))  # past the JAX form's query blocks of 128
    resets = jnp.zeros((2, 260), bool).at[1, 100].set(True)
    params = model.init(jax.random.key(1), x)
    run = jax.jit(jax.value_and_grad(lambda p: jnp.sum(model.apply(p, x, resets=resets) ** 2)))
    got = run(params)
    with native.jax_only():
        want = jax.jit(jax.value_and_grad(lambda p: jnp.sum(model.apply(p, x, resets=resets) ** 2)))(params)
    scale = max(float(jnp.abs(r).max()) for r in jax.tree.leaves(want))  # the key bias's gradient is 0 + rounding
    for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5 * scale)


def test_roofline_counts_the_kernel_as_the_jax_form_it_replaces():
    """The kernel's hand count (``kernel_flops``, dense) against the jaxpr count of the JAX form, forward and
    gradient, with a full mask (the JAX form does every pair)."""
    from seqjax.benchmarks.roofline import count_flops

    q, k, v, _ = as_jax(inputs())
    full = jnp.ones((BATCH, QUERIES, QUERIES), bool)
    for grad in (False, True):
        counts = []
        for jax_form in (False, True):
            f = lambda q, k, v: SelfAttention.heads(q, k, v, full).sum()  # noqa: E731
            with native.jax_only() if jax_form else contextlib.nullcontext():
                counts.append(count_flops(jax.grad(f, (0, 1, 2)) if grad else f, q, k, v))
        assert 0.75 < counts[0] / counts[1] < 1.33, counts
