"""Encoder–decoder (Sutskever et al. 2014; Cho et al. 2014) with optional attention.

Tokens: ``PAD = 0``, ``BOS = 1``, ``EOS = 2``; a target row is ``y_1 .. y_n EOS PAD ..`` with
``tgt_len = n + 1``, and the decoder reads ``y_0 = BOS, y_1, ..``.

Encoder: any recurrent stack from the backbone registry (rnn/lstm/gru, optionally
bidirectional) over source embeddings; memory ``m_s`` = its outputs (zero on padding); context
``c = h_T``, the top layer's final state (``[h_T^fwd; h_1^bwd]`` when bidirectional).

Decoder (a pure :class:`~seqjax.cells.base.Cell` stepped under ``scan``/``while_loop``), with
``e_t = E y_{t-1}`` and ``p(y_t | y_<t, x) = softmax(W o_t + b)``:

* ``attention="none"``:     ``h_t = cell([e_t; c], h_{t-1})``, ``o_t = h_t``;
* ``attention="bahdanau"``: ``a_t = align(h_{t-1}, m)``, ``ctx_t = sum_s a_ts m_s``,
  ``h_t = cell([e_t; c; ctx_t], h_{t-1})``, ``o_t = [h_t; ctx_t]`` (Bahdanau et al. 2015);
* ``attention="luong"``:    ``h_t = cell([e_t; c], h_{t-1})``, ``a_t = align(h_t, m)``,
  ``o_t = tanh(W_c [ctx_t; h_t])`` (Luong et al. 2015).

Precision: ``dtype`` / ``param_dtype`` as for every model (:mod:`seqjax.models.precision`): the
encoder, the source embedding and the decoder cell compute in ``dtype``; the decoder's parameters
are stored in ``param_dtype`` and used in ``dtype``; the loss is taken in at least float32.

Training is teacher forcing; with ``scheduled_sampling = p`` each step's input is, with
probability ``p``, a token sampled from the model's previous prediction instead (Bengio et al.
2015).  Loss = ``-sum_{t < tgt_len} log p(y_t) / sum tgt_len`` (PAD is masked out, EOS counts).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from seqjax.cells import make_cell, scan
from seqjax.cells.base import Cell, hidden_of, readout, readout_init
from seqjax.errors import COUNT, UNIT, UserError, check_fields, checked
from seqjax.models.precision import check_precision, compute_dtype, param_dtype
from seqjax.models.recurrent import RecurrentOptions
from seqjax.models.registry import build_backbone
from seqjax.ops import decoding
from seqjax.ops.attention import (
    ATTENTION_KINDS,
    Attention,
    attend,
    make_attention,
    source_mask,
)
from seqjax.ops.initializers import input_init
from seqjax.ops.masking import length_mask
from seqjax.tasks.tokens import BOS, EOS, PAD
from seqjax.typing import Array, Carry

RECURRENT_CELLS = ("rnn", "lstm", "gru")


@dataclasses.dataclass
class Seq2SeqOptions:
    """Config keys of the ``seq2seq`` model (``configs/models/seq2seq*.yaml``)."""

    embed_size: int = checked(32, COUNT)
    encoder_cell: str = checked("lstm", choices=RECURRENT_CELLS)
    encoder_hidden_size: int = checked(64, COUNT)
    encoder_layers: int = checked(1, COUNT)
    encoder_bidirectional: bool = False
    decoder_cell: str = checked("lstm", choices=RECURRENT_CELLS)
    decoder_hidden_size: int = checked(64, COUNT)
    decoder_bidirectional: bool = False
    attention: str = checked("none", choices=ATTENTION_KINDS)  # none | bahdanau | luong
    attention_size: int = checked(64, COUNT)  # bahdanau only
    scheduled_sampling: float = checked(0.0, UNIT)  # the probability of feeding the model's own prediction
    dtype: Optional[str] = None  # compute dtype (seqjax.models.precision); unset: param_dtype
    param_dtype: str = "float32"

    def __post_init__(self) -> None:
        check_options(self)


def check_options(o: Seq2SeqOptions) -> None:
    """One-line :class:`UserError` for an option that cannot work."""
    if o.decoder_bidirectional:
        raise UserError(
            "model.decoder_bidirectional=true is impossible: a decoder generates left to right and cannot "
            "read future tokens; set decoder_bidirectional=false (use encoder_bidirectional=true instead)"
        )
    check_fields(o, "seq2seq")
    check_precision("seq2seq", o)


class EncoderContext(NamedTuple):
    """``memory [B, S, d_m]``, ``mask [B, S]`` (valid source positions), ``c [B, d_m]``."""

    memory: Array
    mask: Array
    c: Array


class Decoder(NamedTuple):
    """The decoder's pure parts: its cell, attention (or None) and kind."""

    cell: Cell
    attention: Attention | None
    kind: str


def _context_of(top_carry: Any, bidirectional: bool) -> Array:
    if bidirectional:
        c_fwd, c_bwd = top_carry
        return jnp.concatenate([hidden_of(c_fwd), hidden_of(c_bwd)], axis=-1)
    return hidden_of(top_carry)


@functools.lru_cache(maxsize=None)
def make_decoder(
    cell: str, hidden_size: int, attention: str, attention_size: int, dtype: str = "float32"
) -> Decoder:
    """The decoder's cell (computing in ``dtype``) and attention (cached: the same options give the same functions)."""
    att = None if attention == "none" else make_attention(attention, attention_size)
    return Decoder(make_cell(cell, hidden_size, dtype=jnp.dtype(dtype)), att, attention)


def decoder_of(o: Seq2SeqOptions) -> Decoder:
    return make_decoder(o.decoder_cell, o.decoder_hidden_size, o.attention, o.attention_size, compute_dtype(o).name)


def in_dtype(params: Any, dtype: Any) -> Any:
    """Every floating leaf of ``params`` cast to ``dtype`` (the decoder's parameters for its compute dtype)."""
    return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, params)


def init_decoder(dec: Decoder, key: Array, vocab: int, embed: int, memory: int, param_dtype: Any = jnp.float32) -> dict:
    """Params ``{embed [V, E], cell, readout, (attention), (combine W_c)}``, stored in ``param_dtype``."""
    k_e, k_c, k_o, k_a, k_w = jax.random.split(key, 5)
    H = dec.cell.hidden_size
    cell_in = embed + memory + (memory if dec.kind == "bahdanau" else 0)
    out = H + memory if dec.kind == "bahdanau" else H
    params = {
        "embed": jax.random.normal(k_e, (vocab, embed)) / jnp.sqrt(embed),
        "cell": dec.cell.init(k_c, cell_in),
        "readout": readout_init(k_o, out, vocab),
    }
    if dec.attention is not None:
        params["attention"] = dec.attention.init(k_a, H, memory)
    if dec.kind == "luong":
        params["combine"] = input_init(k_w, (memory + H, H), jnp.float32)
    return in_dtype(params, param_dtype)


def decoder_step(
    dec: Decoder, p: dict, ctx: EncoderContext, carry: Carry, y_prev: Array
) -> tuple[Carry, Array, Array]:
    """One step: ``(h_{t-1}, y_{t-1} [B]) -> (h_t, logits_t [B, V], a_t [B, S])`` (``a_t = 0`` without attention)."""
    e = p["embed"][y_prev]
    weights = jnp.zeros(ctx.mask.shape, jnp.float32)
    if dec.kind == "bahdanau":
        att, weights = attend(dec.attention, p["attention"], hidden_of(carry), ctx.memory, ctx.mask)
        carry, h = dec.cell.step(p["cell"], carry, jnp.concatenate([e, ctx.c, att], -1))
        out = jnp.concatenate([h, att], -1)
    else:
        carry, h = dec.cell.step(p["cell"], carry, jnp.concatenate([e, ctx.c], -1))
        out = h
        if dec.kind == "luong":
            att, weights = attend(dec.attention, p["attention"], h, ctx.memory, ctx.mask)
            out = jnp.tanh(jnp.concatenate([att, h], -1) @ p["combine"])
    return carry, readout(p["readout"], out), weights


def teacher_forced(dec: Decoder, p: dict, ctx: EncoderContext, y_in: Array) -> tuple[Array, Array]:
    """All steps at once given the inputs ``y_in [B, T]``: ``(logits [B, T, V], a [B, T, S])``.

    ``none``/``luong``: the recurrence is one :func:`seqjax.cells.scan.run` over ``[E y; c]`` (input
    projection hoisted) and Luong attention is applied to all ``h_t`` in one batched call.
    ``bahdanau`` feeds ``ctx_t`` into the cell, so it scans :func:`decoder_step`.
    """
    B, T = y_in.shape
    if dec.kind == "bahdanau":
        return _scan_steps(dec, p, ctx, y_in.T, lambda t, y_teacher, logits: y_teacher)
    e = p["embed"][y_in]
    x = jnp.concatenate([e, jnp.broadcast_to(ctx.c[:, None], (B, T, ctx.c.shape[-1]))], -1)
    _, h = scan.run(dec.cell, p["cell"], x)
    if dec.kind == "none":
        return readout(p["readout"], h), jnp.zeros((B, T) + ctx.mask.shape[1:], jnp.float32)
    att, weights = attend(dec.attention, p["attention"], h, ctx.memory, ctx.mask)
    return readout(p["readout"], jnp.tanh(jnp.concatenate([att, h], -1) @ p["combine"])), weights


def _scan_steps(
    dec: Decoder, p: dict, ctx: EncoderContext, y_teacher: Array, choose: Callable[[Array, Array, Array], Array]
) -> tuple[Array, Array]:
    """Scan :func:`decoder_step` over ``y_teacher [T, B]``; ``choose(t, y_teacher_t, logits_{t-1})`` picks the input."""
    B = y_teacher.shape[1]
    V = p["readout"]["b_o"].shape[0]

    def body(loop, inputs):
        carry, prev_logits = loop
        t, y_t = inputs
        carry, logits, weights = decoder_step(dec, p, ctx, carry, choose(t, y_t, prev_logits))
        return (carry, logits), (logits, weights)

    init = (dec.cell.initial_carry((B,)), jnp.zeros((B, V), p["readout"]["b_o"].dtype))
    _, (logits, weights) = jax.lax.scan(body, init, (jnp.arange(y_teacher.shape[0]), y_teacher))
    return jnp.swapaxes(logits, 0, 1), jnp.swapaxes(weights, 0, 1)


def scheduled_sampling(
    dec: Decoder, p: dict, ctx: EncoderContext, y_in: Array, key: Array, rate: float
) -> tuple[Array, Array]:
    """Teacher forcing where each input ``y_{t-1}`` (t > 1) is replaced with probability ``rate`` by a
    token sampled from ``softmax(logits_{t-1})``; the first input stays BOS."""
    k_coin, k_sample = jax.random.split(key)
    coins = jax.random.bernoulli(k_coin, rate, y_in.T.shape)

    def choose(t, y_t, prev_logits):
        sampled = jax.random.categorical(jax.random.fold_in(k_sample, t), prev_logits)
        return jnp.where(coins[t] & (t > 0), sampled, y_t)

    return _scan_steps(dec, p, ctx, y_in.T, choose)


def decoder_inputs(tgt: Array) -> Array:
    """``[BOS, y_1, .., y_{T-1}]``: the targets shifted right by one."""
    return jnp.concatenate([jnp.full_like(tgt[:, :1], BOS), tgt[:, :-1]], axis=1)


def target_mask(tgt_len: Array, T: int) -> Array:
    """``[B, T]`` float weights ``t < tgt_len`` (targets up to and including EOS)."""
    return length_mask(tgt_len, T).astype(jnp.float32)


def sequence_log_likelihood(logits: Array, tgt: Array, tgt_len: Array) -> Array:
    """``log p(y | x) = sum_{t < tgt_len} log softmax(logits_t)[y_t]`` per example, ``[B]``."""
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))  # bfloat16 up, float64 kept
    logp = -optax.softmax_cross_entropy_with_integer_labels(logits, tgt)
    return (logp * target_mask(tgt_len, tgt.shape[1])).sum(-1)


def masked_loss(logits: Array, tgt: Array, tgt_len: Array) -> Array:
    """Mean per-token cross-entropy over non-PAD target positions."""
    return -sequence_log_likelihood(logits, tgt, tgt_len).sum() / jnp.maximum(tgt_len.sum(), 1)


class Seq2Seq(nn.Module):
    """Declares the parameters (source embedding, encoder stack, decoder pytree) and calls the pure functions.

    Parameters: ``src_embed``, ``encoder`` (a registry backbone) and ``decoder`` (the pytree of
    :func:`init_decoder`, used as-is by :func:`make_step_fn` for decoding).
    """

    opts: Seq2SeqOptions
    src_vocab: int
    tgt_vocab: int

    def setup(self) -> None:
        o = self.opts
        self.src_embed = nn.Embed(self.src_vocab, o.embed_size, dtype=compute_dtype(o), param_dtype=param_dtype(o))
        self.encoder = build_backbone(
            o.encoder_cell,
            RecurrentOptions(
                hidden_size=o.encoder_hidden_size, num_layers=o.encoder_layers, bidirectional=o.encoder_bidirectional,
                dtype=o.dtype, param_dtype=o.param_dtype,
            ),
        )
        memory = o.encoder_hidden_size * (2 if o.encoder_bidirectional else 1)
        self.decoder = self.param(
            "decoder", lambda k: init_decoder(decoder_of(o), k, self.tgt_vocab, o.embed_size, memory, param_dtype(o))
        )

    def encode(self, src: Array, src_len: Array, deterministic: bool = True) -> EncoderContext:
        """``src [B, S]`` tokens -> :class:`EncoderContext`."""
        carries, memory = self.encoder(
            self.src_embed(src), src_len, deterministic=deterministic, return_carry=True
        )
        mask = source_mask(src_len, src.shape[1], src.shape[0])
        return EncoderContext(memory, mask, _context_of(carries[-1], self.opts.encoder_bidirectional))

    def __call__(
        self, src: Array, src_len: Array, tgt: Array, *, key: Array | None = None, deterministic: bool = True
    ) -> tuple[Array, Array]:
        """Logits ``[B, T, V]`` for ``p(y_t | y_<t, x)`` and attention weights ``[B, T, S]``.

        Teacher forcing; with ``key`` and ``scheduled_sampling > 0``, scheduled sampling.
        """
        ctx = self.encode(src, src_len, deterministic)
        dec, y_in = decoder_of(self.opts), decoder_inputs(tgt)
        p = in_dtype(self.decoder, compute_dtype(self.opts))
        rate = self.opts.scheduled_sampling
        if key is not None and rate > 0.0:
            return scheduled_sampling(dec, p, ctx, y_in, key, rate)
        return teacher_forced(dec, p, ctx, y_in)


@functools.lru_cache(maxsize=None)
def _step_fn(dec: Decoder) -> Callable:
    def step_fn(params, ctx, carry, y_prev):
        carry, logits, _ = decoder_step(dec, params, ctx, carry, y_prev)
        return carry, logits

    return step_fn


def make_step_fn(o: Seq2SeqOptions) -> Callable:
    """``step_fn(decoder_params, ctx, carry, y_prev) -> (carry, logits)`` for :mod:`seqjax.ops.decoding`
    (one function object per decoder configuration, so jitted decoders compile once)."""
    return _step_fn(decoder_of(o))


def decoder_start(model: Seq2Seq, variables: Any, src: Array, src_len: Array) -> tuple[Callable, dict, EncoderContext, Carry]:
    """``(step_fn, decoder_params, context, initial_carry)``: the arguments of the :mod:`seqjax.ops.decoding` functions."""
    ctx = model.apply(variables, src, src_len, method=Seq2Seq.encode)
    state = decoder_of(model.opts).cell.initial_carry((src.shape[0],))
    params = in_dtype(variables["params"]["decoder"], compute_dtype(model.opts))
    return make_step_fn(model.opts), params, ctx, state


def generate(
    model: Seq2Seq,
    variables: Any,
    src: Array,
    src_len: Array,
    *,
    max_len: int,
    beam_width: int = 1,
    alpha: float = 0.0,
) -> decoding.Decoded:
    """Decode ``src`` greedily (``beam_width=1``) or with beam search; jitted by :mod:`seqjax.ops.decoding`."""
    args = decoder_start(model, variables, src, src_len)
    if beam_width == 1:
        return decoding.greedy(*args, max_len=max_len, bos=BOS, eos=EOS, pad=PAD)
    return decoding.beam_search(
        *args, width=beam_width, max_len=max_len, bos=BOS, eos=EOS, pad=PAD, alpha=alpha
    )
