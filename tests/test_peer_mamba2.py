"""Mamba-2 (seqjax.models.mamba2) against ``mamba2-jax`` (a pure JAX / Flax NNX Mamba-2), with copied weights.

Why not ``mambapy``'s ``mamba2.py``: version 1.2.0 (the latest on PyPI) is not pure PyTorch. It imports
``mamba_chunk_scan_combined`` and ``mamba_split_conv1d_scan_combined`` from ``mamba_ssm.ops.triton`` at module
level (no fallback), asserts that ``mamba_ssm``'s Triton gated RMSNorm imported, and its forward has no path
without those kernels; ``mamba-ssm`` needs CUDA and Triton, so the module cannot even be imported on a CPU
machine. ``mamba2-jax`` 1.1.2 implements the same mixer (``in_proj -> [z, xBC, dt]``, causal depthwise conv and
SiLU on ``xBC``, chunked SSD as in the paper's Listing 1, ``y * silu(z)`` then RMSNorm with eps 1e-5 over all of
``d_inner``, ``out_proj``) in plain JAX and installs beside seqjax's pins.

What is compared: the mixer (seqjax ``Mamba2Block``; the package's ``Mamba2Mixer``) with one group of ``B, C`` (the
package has no ``n_groups``; with one group Mamba2's grouped norm is the plain one), at a chunk length that does
not divide the sequence (the package pads the last chunk; seqjax's own tests cover the other chunk lengths),
outputs and gradients w.r.t. the input and every peer parameter; then seqjax's chunk form over a prompt and its
step form token by token against the package's prefill and decoding with its conv and SSM states. float32. The
residual wrapper is not compared: the package's pre-norm has ``eps = 1e-5`` and seqjax's stack uses Flax's
``RMSNorm`` (``1e-6``).

The parameters are the same arrays under other names (``norm.weight`` is ``norm_weight``; Flax NNX ``Linear`` and
``Conv`` kernels are ``[in, out]`` and ``[k, 1, C]``, seqjax's layouts). The package clips ``dt`` to its
``time_step_limit`` (``(0, inf)``: no effect) and computes its segment sums as differences of cumulative sums,
which at this size agrees to float32 rounding.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import pytest

from peer_check import assert_close, assert_trees_close, flatten
from seqjax.models.mamba2 import Mamba2Block

nnx = pytest.importorskip("flax.nnx")
mamba2_jax = pytest.importorskip("mamba2_jax")

B, T, D, N, HEAD_DIM = 2, 7, 4, 3, 2


def _peer(chunk: int) -> tuple[Any, Any, dict]:
    """``(graphdef, state, pure params)`` of a perturbed ``Mamba2Mixer``."""
    cfg = mamba2_jax.Mamba2Config(hidden_size=D, state_size=N, head_dim=HEAD_DIM, chunk_size=chunk, expand=2,
                                  conv_kernel=4)
    graphdef, state = nnx.split(mamba2_jax.Mamba2Mixer(cfg, layer_idx=0, rngs=nnx.Rngs(0)))
    params = nnx.to_pure_dict(state)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    params = treedef.unflatten([p + 0.2 * jax.random.normal(k, p.shape, p.dtype) for p, k in zip(leaves, keys)])
    return graphdef, state, params


def _run_peer(graphdef: Any, state: Any, p: dict, u: jax.Array, conv_state=None, ssm_state=None):
    state = jax.tree_util.tree_map(lambda x: x, state)
    nnx.replace_by_pure_dict(state, p)
    return nnx.merge(graphdef, state)(u, conv_state=conv_state, ssm_state=ssm_state)


def _params(p: dict) -> dict:
    return {"in_proj": {"kernel": p["in_proj"]["kernel"]},
            "conv": {"kernel": p["conv1d"]["conv"]["kernel"], "bias": p["conv1d"]["conv"]["bias"]},
            "dt_bias": p["dt_bias"], "A_log": p["A_log"], "D": p["D"], "norm_weight": p["norm"]["weight"],
            "out_proj": {"kernel": p["out_proj"]["kernel"]}}


def _block(chunk: int) -> Mamba2Block:
    return Mamba2Block(d_model=D, d_state=N, head_dim=HEAD_DIM, n_groups=1, chunk_size=chunk)


def test_mamba2_mixer_equals_mamba2_jax() -> None:
    """Chunks of 3 over 7 tokens: the intra-chunk, state-passing and padded last-chunk paths of both."""
    chunk = 3
    graphdef, state, params = _peer(chunk)
    u = jax.random.normal(jax.random.key(2), (B, T, D))

    def ours(p, u):
        return _block(chunk).apply({"params": _params(p)}, u)

    def theirs(p, u):
        return _run_peer(graphdef, state, p, u)[0]

    assert_close(jax.jit(ours)(params, u), jax.jit(theirs)(params, u), f"Mamba-2 mixer (Q={chunk}) output")
    w = jax.random.normal(jax.random.key(3), (B, T, D))
    grads = lambda fn: jax.jit(jax.grad(lambda p, u: jnp.sum(fn(p, u) * w), (0, 1)))(params, u)  # noqa: E731
    (gp, gx), (gp_t, gx_t) = grads(ours), grads(theirs)
    assert_close(gx, gx_t, f"Mamba-2 mixer (Q={chunk}) d/dinput")
    assert_trees_close(flatten(gp), flatten(gp_t), f"Mamba-2 mixer (Q={chunk}) d/dparams")


def test_mamba2_decoding_equals_mamba2_jax() -> None:
    """seqjax's chunk form on a 4-token prompt then its step form vs the package's prefill then decoding."""
    graphdef, state, params = _peer(3)
    u = jax.random.normal(jax.random.key(4), (B, T, D))
    block, variables = _block(3), {"params": _params(params)}
    prompt = 4
    peer = jax.jit(functools.partial(_run_peer, graphdef, state))  # one compiled program per input shape
    step = jax.jit(functools.partial(block.apply, method="step"))
    theirs, conv_state, ssm_state = peer(params, u[:, :prompt])
    ours_state = block.apply(variables, B, method="initial_state")
    ours_state, ours = block.apply(variables, ours_state, u[:, :prompt], method="chunk")
    outs, outs_t = [ours], [theirs]
    for t in range(prompt, T):
        y_t, conv_state, ssm_state = peer(params, u[:, t:t + 1], conv_state, ssm_state)
        ours_state, y = step(variables, ours_state, u[:, t])
        outs.append(y[:, None])
        outs_t.append(y_t)
    assert_close(jnp.concatenate(outs, 1), jnp.concatenate(outs_t, 1), "Mamba-2 decoding outputs")
    assert_close(ours_state[1], ssm_state, "Mamba-2 decoding SSM state")
    assert_close(ours_state[0], jnp.transpose(conv_state, (0, 2, 1)), "Mamba-2 decoding conv buffer")
