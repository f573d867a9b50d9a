"""A pre-norm Transformer (Vaswani et al. 2017; pre-norm as in Xiong et al. 2020), causal or not.

::

    x_0     = W_in x + b_in                       (rotary positions)
    x_0     = sqrt(d) (W_in x + b_in) + PE(t)     (sinusoidal positions)
    x'_l    = x_l  + dropout(MHA(LN(x_l)))
    x_{l+1} = x'_l + dropout(W_2 gelu(W_1 LN(x'_l) + b_1) + b_2)
    y       = LN(x_L)

    MHA(u)  = concat_h softmax(q_h k_h^T / sqrt(d_h) + M) v_h  W_o,   q, k, v = u W_q, u W_k, u W_v

with ``M_ts = 0`` where key ``s`` is visible to query ``t`` (``s <= t`` when causal, ``s <
length`` always, and ``s`` in ``t``'s packed sequence given ``resets``: a block-diagonal mask, positions
counted from each sequence's first token) and ``-inf`` elsewhere.  Positions are either added to the input,
``PE(t, 2i) = sin(t / 10000^{2i/d})``, ``PE(t, 2i+1) = cos(t / 10000^{2i/d})``, after the projected tokens
are scaled by ``sqrt(d)`` as in Vaswani et al. (at initialisation they have a standard deviation of about
``1/sqrt(embed_dim)``, ``PE`` about 0.6: unscaled, the positions swamp the tokens and a two-layer model never
learned induction heads in 12000 steps, ``experiments/induction_heads/README.md``), or *rotary*
(Su et al. 2021): each pair ``(q_{2i}, q_{2i+1})`` of every head (and of ``k``) is rotated by the
angle ``t * 10000^{-2i/d_h}``, so ``q_t . k_s`` depends on ``t - s`` only.

Two forms of one causal model: the parallel form over ``[batch, time, features]``, and the step
form with a KV cache (``initial_state(batch_size)`` / ``step(state, x_t)``) holding every layer's
keys and values for the ``max_len`` positions; step ``t`` attends to cached positions ``<= t``. The chunk
form appends a chunk of any length to the cache at once (prefill) and attends within it causally.
Steps past ``max_len`` are refused (the cache is full): an error, or NaN outputs under ``jit``.  The non-causal (encoder) form has no
step form and raises :class:`~seqjax.errors.StreamingError`.

Precision: parameters in ``param_dtype``; everything computes in ``dtype`` (``None``: ``param_dtype``)
except the attention softmax and the layer-norm statistics, taken in at least float32
(:mod:`seqjax.models.precision`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax.errors import COUNT, DROPOUT, StreamingError, UserError, check_choice, check_fields, checked
from seqjax.models.precision import check_precision, dtypes
from seqjax.models.registry import register_backbone
from seqjax.ops import attention_native
from seqjax.ops.attention import rotary, sinusoidal
from seqjax.ops.masking import attention_mask, same_sequence, segment_starts
from seqjax.typing import Array

POSITIONS = ("sinusoidal", "rotary")
CAUSAL_BLOCK = 128  # the causal parallel form attends in query blocks of this many tokens (SelfAttention.attend)


class SelfAttention(nn.Module):
    """Multi-head self-attention ``softmax(q k^T / sqrt(d_h) + M) v W_o``; rotary positions optional."""

    d_model: int
    n_heads: int
    rotary: bool = False
    causal_block: int | None = None  # causal: queries in blocks of this many, each block's keys cut at its end
    dtype: Any = None  # compute dtype; None: param_dtype
    param_dtype: Any = jnp.float32

    def setup(self) -> None:
        dtypes = dict(dtype=self.dtype or self.param_dtype, param_dtype=self.param_dtype)
        self.qkv = nn.Dense(3 * self.d_model, **dtypes)
        self.out = nn.Dense(self.d_model, **dtypes)

    def project(self, u: Array, positions: Array) -> tuple[Array, Array, Array]:
        """``q, k, v [B, T, H, d_h]`` (rotated when ``rotary``)."""
        B, T, _ = u.shape
        q, k, v = jnp.split(self.qkv(u).reshape(B, T, 3 * self.n_heads, -1), 3, axis=2)
        if self.rotary:
            q, k = rotary(q, positions), rotary(k, positions)
        return q, k, v

    # y_t = sum_s softmax_s(q_t . k_s / sqrt(d_h) + M_ts) v_s, per head
    @staticmethod
    def heads(q: Array, k: Array, v: Array, mask: Array) -> Array:
        """``[B, T, H, d_h]`` outputs of queries ``q`` over keys ``k`` and values ``v``; ``mask [B, T, S]``.  On CPU
        in float32 the compiled kernel (:mod:`seqjax.ops.attention_native`) computes it without the ``[T, S]``
        weights in memory."""
        if attention_native.available(q, k, v):
            return attention_native.attention_native(q, k, v, mask)
        logits = jnp.einsum("bthd,bshd->bhts", q, k) / jnp.sqrt(q.shape[-1]).astype(q.dtype)
        logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))  # the softmax in >= float32
        weights = jax.nn.softmax(jnp.where(mask[:, None], logits, jnp.finfo(logits.dtype).min), axis=-1)
        weights = jnp.where(mask[:, None], weights, 0.0)  # a query with no visible key (padding) gets 0
        return jnp.einsum("bhts,bshd->bthd", weights.astype(v.dtype), v)

    def attend(self, q: Array, k: Array, v: Array, mask: Array, block: int | None = None) -> Array:
        """:meth:`heads` merged by ``W_o``.  ``block`` (a causal ``mask`` only): queries ``[i n, (i + 1) n)`` over
        keys ``[0, (i + 1) n)`` alone (``n = block``): the keys a causal mask hides from a whole block are never
        scored, so at ``T >> n`` the work and memory of the ``[T, T]`` logits nearly halve (the train step of two
        layers at ``B=32 T=1024 D=64`` 2.0x faster, ``experiments/benchmarks/README.md``); the same outputs.  (The
        compiled kernel skips the hidden keys itself: there, one call.)"""
        T, n = q.shape[1], block
        if not n or T <= n or attention_native.available(q, k, v):
            y = self.heads(q, k, v, mask)
        else:
            y = jnp.concatenate([self.heads(q[:, i:i + n], k[:, :i + n], v[:, :i + n], mask[:, i:i + n, :i + n])
                                 for i in range(0, T, n)], axis=1)
        return self.out(y.reshape(*y.shape[:2], self.d_model))

    def __call__(self, u: Array, positions: Array, mask: Array) -> Array:
        return self.attend(*self.project(u, positions), mask, self.causal_block)

    def chunk(self, cache: tuple[Array, Array], u: Array, positions: Array) -> tuple[tuple[Array, Array], Array]:
        """``u [B, T, d]`` at ``positions [B, T]``: write ``k, v`` into the cache there (none past its end), each
        query attending to the cached positions ``<= its own``."""
        q, k, v = self.project(u, positions)
        rows = jnp.arange(u.shape[0])[:, None]
        k_cache, v_cache = (c.at[rows, positions].set(new, mode="drop") for c, new in zip(cache, (k, v)))
        mask = jnp.arange(k_cache.shape[1])[None, None, :] <= positions[:, :, None]  # [B, T, max_len]
        return (k_cache, v_cache), self.attend(q, k_cache, v_cache, mask)


class TransformerBlock(nn.Module):
    """``x' = x + drop(MHA(LN(x)))``, ``y = x' + drop(MLP(LN(x')))`` with ``MLP(u) = W_2 gelu(W_1 u)``."""

    d_model: int
    n_heads: int
    mlp_ratio: int = 4
    dropout: float = 0.0
    rotary: bool = False
    causal_block: int | None = None  # SelfAttention's
    dtype: Any = None  # compute dtype; None: param_dtype
    param_dtype: Any = jnp.float32

    def setup(self) -> None:
        dtypes = dict(dtype=self.dtype or self.param_dtype, param_dtype=self.param_dtype)
        self.norm1, self.norm2 = nn.LayerNorm(**dtypes), nn.LayerNorm(**dtypes)
        self.attn = SelfAttention(self.d_model, self.n_heads, self.rotary, self.causal_block, **dtypes)
        self.fc1, self.fc2 = nn.Dense(self.mlp_ratio * self.d_model, **dtypes), nn.Dense(self.d_model, **dtypes)
        self.drop = nn.Dropout(self.dropout)

    def mlp(self, x: Array, deterministic: bool) -> Array:
        return x + self.drop(self.fc2(nn.gelu(self.fc1(self.norm2(x)))), deterministic=deterministic)

    def __call__(self, x: Array, positions: Array, mask: Array, deterministic: bool = True) -> Array:
        x = x + self.drop(self.attn(self.norm1(x), positions, mask), deterministic=deterministic)
        return self.mlp(x, deterministic)

    def chunk(self, cache: Any, x: Array, positions: Array) -> tuple[Any, Array]:
        cache, a = self.attn.chunk(cache, self.norm1(x), positions)
        return cache, self.mlp(x + a, True)


class Transformer(nn.Module):
    """A stack of :class:`TransformerBlock`; see the module docstring for the equations.

    ``causal=True``: decoder-only form (per-step tasks, LM) with a KV-cache step form;
    ``causal=False``: encoder form (classification), keys masked by ``lengths``.
    """

    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    mlp_ratio: int = 4
    dropout: float = 0.0
    positions: str = "sinusoidal"
    causal: bool = True
    max_len: int = 1024
    dtype: Any = None  # compute dtype; None: param_dtype
    param_dtype: Any = jnp.float32

    def setup(self) -> None:
        check_choice("positions", self.positions, POSITIONS)
        dtypes = dict(dtype=self._dtype(), param_dtype=self.param_dtype)
        self.in_proj = nn.Dense(self.d_model, **dtypes)
        self.blocks = [
            TransformerBlock(self.d_model, self.n_heads, self.mlp_ratio, self.dropout, self.positions == "rotary",
                             CAUSAL_BLOCK if self.causal else None, **dtypes)
            for _ in range(self.n_layers)
        ]
        self.norm = nn.LayerNorm(**dtypes)
        self.drop = nn.Dropout(self.dropout)

    def _dtype(self) -> Any:
        return self.dtype or self.param_dtype

    # x_0 = W_in x + b_in (rotary);  x_0 = sqrt(d) (W_in x + b_in) + PE(t) (sinusoidal)
    def _embed(self, x: Array, positions: Array) -> Array:
        x = self.in_proj(x)
        if self.positions != "sinusoidal":
            return x
        return x * jnp.sqrt(self.d_model).astype(x.dtype) + sinusoidal(positions, self.d_model).astype(x.dtype)

    def __call__(
        self, x: Array, lengths: Array | None = None, *, deterministic: bool = True, resets: Array | None = None
    ) -> Array:
        """``[batch, time, d_in] -> [batch, time, d_model]``; ``resets [batch, time]`` start packed sequences."""
        B, T, _ = x.shape
        positions = jnp.broadcast_to(jnp.arange(T), (B, T))
        mask = attention_mask(positions, positions, lengths, self.causal)
        if resets is not None:
            mask = mask & same_sequence(resets)
            positions = positions - jnp.maximum(segment_starts(resets), 0)
        x = self.drop(self._embed(x, positions), deterministic=deterministic)
        for block in self.blocks:
            x = block(x, positions, mask, deterministic)
        return self.norm(x)

    def _check_streaming(self) -> None:
        if not self.causal:
            raise StreamingError(
                "a non-causal (encoder) Transformer cannot stream one token at a time: every output attends to "
                "the whole sequence; set causal=true for the decoder form with a KV cache"
            )

    def initial_state(self, batch_size: int) -> dict[str, Any]:
        """Empty KV caches ``[batch, max_len, heads, d_h]`` per layer and the position ``pos [batch] = 0``."""
        self._check_streaming()
        shape = (batch_size, self.max_len, self.n_heads, self.d_model // self.n_heads)
        caches = [(jnp.zeros(shape, self._dtype()), jnp.zeros(shape, self._dtype())) for _ in range(self.n_layers)]
        return {"caches": caches, "pos": jnp.zeros((batch_size,), jnp.int32)}

    def step(self, state: dict[str, Any], x_t: Array) -> tuple[dict[str, Any], Array]:
        """One token (dropout off): ``x_t [batch, d_in] -> y_t [batch, d_model]``.

        A token past the cache (``pos >= max_len``) raises a :class:`StreamingError` when ``pos`` is
        concrete; under ``jit`` its output is NaN (the cache has no slot for it), which training's and
        evaluation's NaN checks report.
        """
        state, y = self.chunk(state, x_t[:, None])
        return state, y[:, 0]

    def check_room(self, state: dict[str, Any], tokens: int) -> None:
        """A one-line :class:`StreamingError` when ``tokens`` more would run past the cache (``pos`` concrete)."""
        pos = state["pos"]
        if not isinstance(pos, jax.core.Tracer) and int(jnp.max(pos)) + tokens > self.max_len:
            raise StreamingError(
                f"the KV cache holds max_len={self.max_len} positions and this stream reaches position "
                f"{int(jnp.max(pos)) + tokens - 1}: build the model with a larger max_len (model.max_len=...)"
            )

    def chunk(self, state: dict[str, Any], x: Array) -> tuple[dict[str, Any], Array]:
        """A chunk (dropout off) appended to the KV cache: ``x [batch, T, d_in] -> y [batch, T, d_model]``;
        past the cache as :meth:`step`."""
        self._check_streaming()
        self.check_room(state, x.shape[1])
        pos = state["pos"]
        positions = pos[:, None] + jnp.arange(x.shape[1])[None, :]
        h = self._embed(x, positions)
        caches = []
        for block, cache in zip(self.blocks, state["caches"]):
            cache, h = block.chunk(cache, h, positions)
            caches.append(cache)
        y = jnp.where((positions < self.max_len)[..., None], self.norm(h), jnp.nan)
        return {"caches": caches, "pos": pos + x.shape[1]}, y


@dataclasses.dataclass
class TransformerOptions:
    """``n_layers`` pre-norm blocks of width ``d_model`` with ``n_heads`` heads and an MLP of ``mlp_ratio * d_model``.

    ``causal=true``: the decoder-only form for per-step tasks, streamable with a KV cache of
    ``max_len`` positions; ``causal=false``: the encoder form (bidirectional attention), for
    last-step classification/regression.
    """

    d_model: int = checked(64, COUNT)
    n_heads: int = checked(4, COUNT)
    n_layers: int = checked(2, COUNT)
    mlp_ratio: int = checked(4, COUNT)
    dropout: float = checked(0.0, DROPOUT)
    positions: str = checked("sinusoidal", choices=POSITIONS)  # sinusoidal | rotary
    causal: bool = True
    max_len: int = checked(1024, COUNT)  # KV-cache length of the step form
    dtype: Optional[str] = None  # compute dtype (seqjax.models.precision); unset: param_dtype
    param_dtype: str = "float32"

    def __post_init__(self) -> None:
        check_fields(self, "transformer")
        check_precision("transformer", self)
        if self.d_model % self.n_heads:
            raise UserError(f"model.d_model={self.d_model} must be a multiple of model.n_heads={self.n_heads}")
        if self.positions == "rotary" and (self.d_model // self.n_heads) % 2:
            raise UserError(f"rotary positions need an even head size, got d_model/n_heads = "
                            f"{self.d_model // self.n_heads}: change d_model or n_heads")


@register_backbone("transformer", TransformerOptions, causal=lambda o: o.causal)
def build_transformer(opts: TransformerOptions) -> nn.Module:
    return Transformer(**{**dataclasses.asdict(opts), **dtypes(opts)})
