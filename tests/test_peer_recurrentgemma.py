"""Hawk (seqjax.models.hawk) against Google DeepMind's ``recurrentgemma`` (JAX), with copied weights.

Three levels, outputs and gradients (w.r.t. the input and every peer parameter) in float32:

* the RG-LRU alone: ``RGLRUBlock._rg_lru`` vs ``recurrentgemma.jax.layers.RGLRU`` on the convolution's output,
  with document starts inside the sequence (``segment_pos == 0``: seqjax's ``starts``) and a carried state that
  the first token continues (``segment_pos > 0`` there) or drops (``segment_pos == 0``);
* the recurrent block ``W_o(RG-LRU(conv(W_x u)) * GELU(W_y u))``: ``RGLRUBlock`` vs ``modules.RecurrentBlock``,
  the parallel form and then seqjax's step form against the peer's decoding (one token at a time from the
  cache that its prefill returned);
* one Hawk layer: the ``hawk`` backbone with ``n_layers=1`` (recurrent block and gated MLP, each pre-RMSNorm
  residual, then the stack's final RMSNorm) vs ``modules.ResidualBlock`` followed by ``layers.RMSNorm``.

Parameter mapping: recurrentgemma's RMSNorm multiplies by ``1 + scale`` (scale initialised at 0), Flax's by
``scale``, so seqjax's ``scale = 1 + peer scale``; the MLP's ``ffw_up.w [2, D, 3D]`` is seqjax's two gated
Dense layers (index 0 through GELU, index 1 linear); the conv ``w [4, D_rnn]`` is seqjax's depthwise kernel
``[4, 1, D_rnn]``; the gates' block-diagonal ``w [heads, i, j]`` and ``b [heads, j]`` are the same arrays. The peer's
parameters are drawn away from their initial values (biases and norm scales start at 0) before the copy.

recurrentgemma 1.0.1 pins ``numpy<2.4`` and ``absl-py<2``, which seqjax's environment does not satisfy, so it
is installed without dependencies (``tests/peers.txt``); what it imports (einops, jaxtyping, typeguard,
sentencepiece) is in the ``test`` extra.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from peer_check import assert_close, assert_trees_close, flatten
from seqjax.models.hawk import HawkOptions, RGLRUBlock, build_hawk

rg = pytest.importorskip("recurrentgemma.jax")

B, T, D, D_RNN, HEADS = 2, 7, 4, 6, 2


def _perturb(params: Any, key: jax.Array, scale: float = 0.3) -> Any:
    """Every leaf moved by ``scale * N(0, 1)``: zero biases and norm scales would hide mapping errors."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    return treedef.unflatten([p + scale * jax.random.normal(k, p.shape, p.dtype) for p, k in zip(leaves, keys)])


def _rg_lru_params(p: dict) -> dict:
    """recurrentgemma ``RGLRU`` params -> seqjax's RG-LRU entries of ``RGLRUBlock``."""
    return {"a_param": p["a_param"], "gate_a_w": p["a_gate"]["w"], "gate_a_b": p["a_gate"]["b"],
            "gate_x_w": p["input_gate"]["w"], "gate_x_b": p["input_gate"]["b"]}


def _recurrent_block_params(p: dict) -> dict:
    """recurrentgemma ``RecurrentBlock`` params -> seqjax ``RGLRUBlock`` params."""
    return {**_rg_lru_params(p["rg_lru"]), "linear_x": p["linear_x"], "linear_y": p["linear_y"],
            "linear_out": p["linear_out"],
            "conv": {"kernel": p["conv_1d"]["w"][:, None, :], "bias": p["conv_1d"]["b"]}}


def _hawk_layer_params(p: dict) -> dict:
    """``{"block": ResidualBlock params, "final_norm": RMSNorm params}`` -> seqjax ``hawk`` (n_layers=1) params."""
    block, up = p["block"], p["block"]["mlp_block"]["ffw_up"]
    return {"blocks_0": _recurrent_block_params(block["recurrent_block"]),
            "blocks_1": {"Dense_0": {"kernel": up["w"][0], "bias": up["b"][0, 0, 0]},
                         "Dense_1": {"kernel": up["w"][1], "bias": up["b"][1, 0, 0]},
                         "Dense_2": block["mlp_block"]["ffw_down"]},
            "norms_0": {"scale": 1.0 + block["temporal_pre_norm"]["scale"]},
            "norms_1": {"scale": 1.0 + block["channel_pre_norm"]["scale"]},
            "final_norm": {"scale": 1.0 + p["final_norm"]["scale"]}}


def _check(ours_fn, theirs_fn, peer_params: Any, inputs: tuple, what: str) -> None:
    """Outputs and gradients (w.r.t. ``inputs[0]`` and ``peer_params``) of ``fn(peer_params, *inputs)``, each
    compiled (op-by-op dispatch of these small graphs costs more than compiling them whole)."""
    out_ours, out_theirs = jax.jit(ours_fn)(peer_params, *inputs), jax.jit(theirs_fn)(peer_params, *inputs)
    assert_close(out_ours, out_theirs, f"{what} output")
    w = jax.random.normal(jax.random.key(7), out_theirs.shape)

    def grad(fn):
        return jax.jit(jax.grad(lambda p, x: jnp.sum(fn(p, x, *inputs[1:]) * w), (0, 1)))(peer_params, inputs[0])

    (gp_ours, gx_ours), (gp_theirs, gx_theirs) = grad(ours_fn), grad(theirs_fn)
    assert_close(gx_ours, gx_theirs, f"{what} d/dinput")
    assert_trees_close(flatten(gp_ours), flatten(gp_theirs), f"{what} d/dparams")


@pytest.mark.parametrize("with_cache", [False, True])
def test_rg_lru_equals_recurrentgemma(with_cache: bool) -> None:
    """RG-LRU alone; documents start at t = 0 and t = 4 in row 0, t = 2 in row 1; with a cache, row 0's first token
    continues it (segment_pos 5) and row 1's starts afresh (segment_pos 0: the cache is dropped)."""
    peer = rg.RGLRU(width=D_RNN, num_heads=HEADS)
    kx, kh, kp = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (B, T, D_RNN))
    segment_pos = jnp.array([[0, 1, 2, 3, 0, 1, 2], [0, 1, 0, 1, 2, 3, 4]])
    h0 = None
    if with_cache:
        segment_pos = segment_pos.at[0].set(jnp.array([5, 6, 7, 8, 0, 1, 2]))
        h0 = jax.random.normal(kh, (B, D_RNN))
    params = _perturb(peer.init(kp, x, segment_pos)["params"], jax.random.key(1))
    ours_block = RGLRUBlock(d_model=D, d_rnn=D_RNN, n_heads=HEADS)

    def ours(p, x, pos, h0):
        return ours_block.apply({"params": _rg_lru_params(p)}, x, h0, pos == 0, "auto", method="_rg_lru")[0]

    def theirs(p, x, pos, h0):
        return peer.apply({"params": p}, x, pos, cache=h0, return_cache=False)[0]

    _check(ours, theirs, params, (x, segment_pos, h0), f"RG-LRU (cache={with_cache})")


def test_recurrent_block_equals_recurrentgemma() -> None:
    """``RGLRUBlock`` (parallel form) vs ``RecurrentBlock`` on one document per row (segment_pos = 0, 1, ...)."""
    peer = rg.RecurrentBlock(width=D, num_heads=HEADS, lru_width=D_RNN)
    u = jax.random.normal(jax.random.key(2), (B, T, D))
    segment_pos = jnp.broadcast_to(jnp.arange(T), (B, T))
    params = _perturb(peer.init(jax.random.key(3), u, segment_pos)["params"], jax.random.key(4))
    ours_block = RGLRUBlock(d_model=D, d_rnn=D_RNN, n_heads=HEADS)

    def ours(p, u, pos):
        return ours_block.apply({"params": _recurrent_block_params(p)}, u)

    def theirs(p, u, pos):
        return peer.apply({"params": p}, u, pos, return_cache=False)[0]

    _check(ours, theirs, params, (u, segment_pos), "recurrent block")


def test_recurrent_block_decoding_equals_recurrentgemma() -> None:
    """seqjax's chunk form over a prompt then its step form, token by token, vs the peer's prefill and decoding."""
    peer = rg.RecurrentBlock(width=D, num_heads=HEADS, lru_width=D_RNN)
    u = jax.random.normal(jax.random.key(5), (B, T, D))
    prompt = 4
    params = _perturb(peer.init(jax.random.key(6), u, jnp.zeros((B, T), int))["params"], jax.random.key(8))
    ours_block = RGLRUBlock(d_model=D, d_rnn=D_RNN, n_heads=HEADS)
    ours_vars = {"params": _recurrent_block_params(params)}

    pos = jnp.broadcast_to(jnp.arange(T), (B, T))
    peer_apply = jax.jit(peer.apply)  # one compiled program per input shape
    step = jax.jit(functools.partial(ours_block.apply, method="step"))
    theirs, cache = peer_apply({"params": params}, u[:, :prompt], pos[:, :prompt])
    state = ours_block.apply(ours_vars, B, method="initial_state")
    state, ours = ours_block.apply(ours_vars, state, u[:, :prompt], method="chunk")
    outs_ours, outs_theirs = [ours], [theirs]
    for t in range(prompt, T):
        y, cache = peer_apply({"params": params}, u[:, t:t + 1], pos[:, t:t + 1], cache=cache)
        state, y_ours = step(ours_vars, state, u[:, t])
        outs_theirs.append(y)
        outs_ours.append(y_ours[:, None])
    assert_close(jnp.concatenate(outs_ours, 1), jnp.concatenate(outs_theirs, 1), "recurrent block decoding")
    assert_close(state[1], cache.rg_lru_state, "RG-LRU state after decoding")


class _PeerHawkLayer(nn.Module):
    """recurrentgemma's residual block (recurrent temporal block and MLP) then Griffin's final RMSNorm."""

    @nn.compact
    def __call__(self, x: jax.Array, segment_pos: jax.Array) -> jax.Array:
        y, _ = rg.ResidualBlock(width=D, mlp_expanded_width=3 * D, num_heads=HEADS, attention_window_size=T,
                                temporal_block_type=rg.TemporalBlockType.RECURRENT, lru_width=D_RNN,
                                name="block")(x, segment_pos, return_cache=False)
        return rg.layers.RMSNorm(width=D, name="final_norm")(y)


def test_hawk_layer_equals_recurrentgemma() -> None:
    """The ``hawk`` backbone (one layer) vs recurrentgemma's ``ResidualBlock`` and final ``RMSNorm``."""
    peer = _PeerHawkLayer()
    u = jax.random.normal(jax.random.key(9), (B, T, D))
    segment_pos = jnp.broadcast_to(jnp.arange(T), (B, T))
    params = _perturb(peer.init(jax.random.key(10), u, segment_pos)["params"], jax.random.key(11))
    model = build_hawk(HawkOptions(d_model=D, n_layers=1, d_rnn=D_RNN, n_heads=HEADS, mlp_ratio=3))

    def ours(p, u, pos):
        return model.apply({"params": _hawk_layer_params(p)}, u)

    def theirs(p, u, pos):
        return peer.apply({"params": p}, u, pos)

    _check(ours, theirs, params, (u, segment_pos), "hawk layer")
    np.testing.assert_equal(model.init(jax.random.key(0), u)["params"].keys(), _hawk_layer_params(params).keys())
