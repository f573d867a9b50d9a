"""Jit-compiled autoregressive decoding: greedy and beam search, with early stop on EOS.

Both work on any decoder written as a pure step function::

    step_fn(params, context, state, y_prev [N]) -> (state, logits [N, V])

where ``state`` is a pytree with leading axis ``N`` (the batch, or batch x beams) and
``context`` holds what does not change while decoding (e.g. the encoder memory).  A
Transformer LM with a KV cache and a recurrent seq2seq decoder both fit.  ``step_fn`` is a
static argument of the jitted functions: pass the same function object each call (e.g. one
built once and cached) to reuse the compiled program.

Scores are sums of log-probabilities ``log p(y_t | y_<t)``.  Tokens after EOS are ``pad``;
``lengths`` count generated tokens including EOS.  Beam search ranks hypotheses by
``score / lp(length)`` with the GNMT length penalty ``lp(n) = ((5 + n) / 6)^alpha``
(Wu et al. 2016; ``alpha = 0`` ranks by raw log-likelihood).  A finished beam keeps its
score and length (it extends only by ``pad`` at cost 0); the loop stops when every beam of
every example has emitted EOS, or at ``max_len``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from seqjax.typing import Array

StepFn = Callable[[Any, Any, Any, Array], tuple[Any, Array]]


class Decoded(NamedTuple):
    """``tokens [B, max_len]``, ``lengths [B]`` (including EOS), ``scores [B]`` (sum of log-probs)."""

    tokens: Array
    lengths: Array
    scores: Array


def length_penalty(length: Array, alpha: float) -> Array:
    """GNMT length penalty ``lp(n) = ((5 + n) / 6)^alpha``."""
    return ((5.0 + length.astype(jnp.float32)) / 6.0) ** alpha


def _running(max_len: int) -> Callable[[tuple], Array]:
    """Loop condition over ``(t, state, prev, tokens, done, ...)``: ``t < max_len`` and some sequence unfinished."""
    return lambda loop: (loop[0] < max_len) & ~jnp.all(loop[4])


def _batch_size(state: Any) -> int:
    return jax.tree.leaves(state)[0].shape[0]


@functools.partial(jax.jit, static_argnames=("step_fn", "max_len", "bos", "eos", "pad"))
def greedy(
    step_fn: StepFn, params: Any, context: Any, state: Any, *, max_len: int, bos: int, eos: int, pad: int = 0
) -> Decoded:
    """``y_t = argmax_v log p(v | y_<t)`` from ``y_0 = bos`` until EOS or ``max_len`` tokens."""
    B = _batch_size(state)

    def body(loop):
        t, state, prev, tokens, done, scores, lengths = loop
        state, logits = step_fn(params, context, state, prev)
        logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
        nxt = jnp.argmax(logp, axis=-1).astype(jnp.int32)  # int64 under jax_enable_x64: keep the carry's int32
        tok = jnp.where(done, pad, nxt)
        scores = scores + jnp.where(done, 0.0, jnp.take_along_axis(logp, nxt[:, None], -1)[:, 0])
        lengths = lengths + (~done)
        done = done | (nxt == eos)
        return t + 1, state, tok, tokens.at[:, t].set(tok), done, scores, lengths

    init = (
        jnp.int32(0), state, jnp.full((B,), bos, jnp.int32), jnp.full((B, max_len), pad, jnp.int32),
        jnp.zeros((B,), bool), jnp.zeros((B,), jnp.float32), jnp.zeros((B,), jnp.int32),
    )
    _, _, _, tokens, _, scores, lengths = jax.lax.while_loop(_running(max_len), body, init)
    return Decoded(tokens, lengths, scores)


def _tile(tree: Any, width: int) -> Any:
    """Repeat every leaf ``width`` times along axis 0: ``[B, ...] -> [B * width, ...]``."""
    return jax.tree.map(lambda x: jnp.repeat(x, width, axis=0), tree)


def _reorder(tree: Any, parents: Array) -> Any:
    """Gather each example's beams by ``parents [B, W]``: ``[B*W, ...] -> [B*W, ...]``."""
    B, W = parents.shape

    def pick(x):
        x = x.reshape((B, W) + x.shape[1:])
        x = jnp.take_along_axis(x, parents.reshape((B, W) + (1,) * (x.ndim - 2)), axis=1)
        return x.reshape((B * W,) + x.shape[2:])

    return jax.tree.map(pick, tree)


@functools.partial(
    jax.jit, static_argnames=("step_fn", "width", "max_len", "bos", "eos", "pad", "alpha")
)
def beam_search(
    step_fn: StepFn,
    params: Any,
    context: Any,
    state: Any,
    *,
    width: int,
    max_len: int,
    bos: int,
    eos: int,
    pad: int = 0,
    alpha: float = 0.0,
) -> Decoded:
    """Keep the ``width`` best hypotheses by ``score / lp(length)``; return the best per example.

    ``context`` and ``state`` have batch ``B``; they are tiled to ``B * width`` inside.
    """
    B, W = _batch_size(state), width
    context, state = _tile(context, W), _tile(state, W)

    def body(loop):
        t, state, prev, tokens, done, scores, lengths = loop
        state, logits = step_fn(params, context, state, prev.reshape(B * W))
        logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
        V = logp.shape[-1]
        logp = logp.reshape(B, W, V)
        finished_row = jnp.full((V,), -jnp.inf).at[pad].set(0.0)  # a finished beam only pads, for free
        logp = jnp.where(done[..., None], finished_row, logp)
        cand = scores[..., None] + logp  # [B, W, V]
        new_len = lengths + (~done)
        ranked = cand / length_penalty(new_len, alpha)[..., None]
        _, idx = jax.lax.top_k(ranked.reshape(B, W * V), W)  # [B, W]
        parents, tok = idx // V, (idx % V).astype(jnp.int32)
        scores = jnp.take_along_axis(cand.reshape(B, W * V), idx, axis=1)
        tokens = jnp.take_along_axis(tokens, parents[..., None], axis=1).at[:, :, t].set(tok)
        lengths = jnp.take_along_axis(new_len, parents, axis=1)
        done = jnp.take_along_axis(done, parents, axis=1) | (tok == eos)
        return t + 1, _reorder(state, parents), tok, tokens, done, scores, lengths

    first = jnp.full((B, W), -jnp.inf).at[:, 0].set(0.0)  # one live hypothesis at the start
    init = (
        jnp.int32(0), state, jnp.full((B, W), bos, jnp.int32), jnp.full((B, W, max_len), pad, jnp.int32),
        jnp.zeros((B, W), bool), first, jnp.zeros((B, W), jnp.int32),
    )
    _, _, _, tokens, _, scores, lengths = jax.lax.while_loop(_running(max_len), body, init)
    best = jnp.argmax(scores / length_penalty(lengths, alpha), axis=1)[:, None]  # [B, 1]
    return Decoded(
        jnp.take_along_axis(tokens, best[..., None], axis=1)[:, 0],
        jnp.take_along_axis(lengths, best, axis=1)[:, 0],
        jnp.take_along_axis(scores, best, axis=1)[:, 0],
    )
