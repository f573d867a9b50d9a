"""Generated sequence-to-sequence tasks and their metrics: reversal, sorting, addition, toy translation.

Every task is a pure, jit-able generator ``sample(key, batch_size) -> batch`` with::

    src [B, S] int, src_len [B]     source tokens, PAD (0) after src_len
    tgt [B, T] int, tgt_len [B]     y_1 .. y_n EOS PAD ..,  tgt_len = n + 1

Token ids ``PAD = 0``, ``BOS = 1``, ``EOS = 2``; task symbols start at ``3``.  Source lengths are
uniform in ``[min_len, max_len]``.

* ``reverse``: ``y = x_L .. x_1`` over ``num_symbols`` symbols;
* ``sort``: ``y = sorted(x)``;
* ``addition``: ``x = "a+b"`` and ``y = "a+b evaluated"`` as decimal characters, each operand with
  ``1..max_digits`` digits (no leading zeros);
* ``translate``: a toy SVO -> SOV "translation" with reordering and different lengths, clause by
  clause (``1..max_clauses`` clauses joined by ``and`` / ``to``; ``0..max_adjectives`` adjectives)::

      source clause:  N_s  a_1 .. a_k   V   N_o  b_1 .. b_j          (adjectives after the noun)
      target clause:  a'_k .. a'_1 N'_s WA  b'_j .. b'_1 N'_o WO  V'_stem V'_aux

  (adjectives before the noun in reverse order, case markers, object before verb, and the verb
  translated to two tokens).

Metrics on decoded sequences (everything up to the first EOS): ``exact_match`` (the whole
sequence, EOS included, is right), ``token_accuracy`` (position-wise over the target's
``tgt_len`` positions) and, for ``translate``, corpus ``bleu`` from sacrebleu (tokens as words).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.errors import COUNT, NON_NEGATIVE, Range, UserError, check_fields, checked
from seqjax.tasks.registry import register_task

Array = jax.Array
Batch = dict[str, Array]
from seqjax.ops.masking import length_mask
from seqjax.tasks.tokens import BOS, EOS, FIRST, PAD  # noqa: F401  (BOS: public)


class Seq2SeqTask(NamedTuple):
    """A seq2seq task: ``sample(key, batch_size) -> batch`` plus vocabulary sizes and limits."""

    name: str
    sample: Callable[[Array, int], Batch]
    src_vocab: int
    tgt_vocab: int
    max_src_len: int
    max_tgt_len: int
    bleu: bool  # report corpus BLEU (translation)
    baseline: dict[str, float]
    kind: str = "seq2seq"
    fixed_set: None = None  # every split is drawn from a key (seqjax.tasks.splits.fixed_split)


# ---------------------------------------------------------------- helpers


def pack(segments: list[Array], lengths: list[Array], width: int) -> tuple[Array, Array]:
    """Concatenate variable-length segments row by row: ``[seg_1[:n_1] seg_2[:n_2] ..] + PAD``.

    ``segments[i] [B, L_i]``, ``lengths[i] [B]`` -> ``(tokens [B, width], total_length [B])``.
    """
    B = segments[0].shape[0]
    out = jnp.full((B, width + 1), PAD, jnp.int32)  # column ``width`` collects the unused entries
    offset = jnp.zeros((B,), jnp.int32)
    rows = jnp.arange(B)[:, None]
    for seg, n in zip(segments, lengths):
        j = jnp.arange(seg.shape[1])[None, :]
        pos = jnp.where(j < n[:, None], offset[:, None] + j, width)
        out = out.at[rows, pos].set(seg.astype(jnp.int32))
        offset = offset + n.astype(jnp.int32)
    return out[:, :width], offset


def _with_eos(body: Array, n: Array, width: int) -> tuple[Array, Array]:
    """``body[:n] EOS PAD ..`` as ``[B, width]`` and its length ``n + 1``."""
    eos = jnp.full((body.shape[0], 1), EOS, jnp.int32)
    return pack([body, eos], [n, jnp.ones_like(n)], width)


def _reverse_valid(x: Array, n: Array) -> Array:
    """``x[n-1], .., x[0], <junk>``: each row's first ``n`` entries reversed (the rest is left for pack)."""
    idx = jnp.clip(n[:, None] - 1 - jnp.arange(x.shape[1])[None, :], 0, x.shape[1] - 1)
    return jnp.take_along_axis(x, idx, axis=1)


def _lengths(key: Array, batch_size: int, lo: int, hi: int) -> Array:
    return jax.random.randint(key, (batch_size,), lo, hi + 1, dtype=jnp.int32)


def _check_lengths(task: str, min_len: int, max_len: int) -> None:
    if not 1 <= min_len <= max_len:
        raise UserError(f"{task}: need 1 <= min_len <= max_len, got min_len={min_len} max_len={max_len}")


def _batch(src: tuple[Array, Array], tgt: tuple[Array, Array]) -> Batch:
    return {"src": src[0], "src_len": src[1], "tgt": tgt[0], "tgt_len": tgt[1]}


def _chance(num_symbols: int) -> dict[str, float]:
    """Memoryless guesser over ``num_symbols`` output symbols: token accuracy ``1/num_symbols``."""
    return {"token_accuracy": 1.0 / num_symbols, "exact_match": 0.0}


# ---------------------------------------------------------------- reversal and sorting


@dataclasses.dataclass
class SymbolsOptions:
    min_len: int = checked(5, COUNT)
    max_len: int = checked(10, COUNT)
    num_symbols: int = checked(10, Range(2, integer=True))


def _symbols_task(name: str, transform: Callable[[Array, Array], Array]) -> Callable[[SymbolsOptions], Seq2SeqTask]:
    def make(o: SymbolsOptions) -> Seq2SeqTask:
        check_fields(o, name)
        _check_lengths(name, o.min_len, o.max_len)

        def sample(key: Array, batch_size: int) -> Batch:
            k_len, k_sym = jax.random.split(key)
            n = _lengths(k_len, batch_size, o.min_len, o.max_len)
            x = jax.random.randint(k_sym, (batch_size, o.max_len), FIRST, FIRST + o.num_symbols, dtype=jnp.int32)
            src = pack([x], [n], o.max_len)
            return _batch(src, _with_eos(transform(x, n), n, o.max_len + 1))

        vocab = FIRST + o.num_symbols
        return Seq2SeqTask(name, sample, vocab, vocab, o.max_len, o.max_len + 1, False, _chance(o.num_symbols))

    return make


def _sorted_valid(x: Array, n: Array) -> Array:
    """Each row's first ``n`` entries in increasing order."""
    big = jnp.iinfo(jnp.int32).max
    return jnp.sort(jnp.where(length_mask(n, x.shape[1]), x, big), axis=1)


register_task("reverse", SymbolsOptions)(_symbols_task("reverse", _reverse_valid))
register_task("sort", SymbolsOptions)(_symbols_task("sort", _sorted_valid))


# ---------------------------------------------------------------- addition

PLUS = FIRST + 10  # digits d -> FIRST + d


@dataclasses.dataclass
class AdditionOptions:
    max_digits: int = checked(3, Range(1, 8, integer=True))  # int32 arithmetic


def _digits(value: Array, n: Array, width: int) -> Array:
    """Most significant first: ``d_k = (value // 10^(n-1-k)) mod 10`` as tokens, ``[B, width]``."""
    power = jnp.clip(n[:, None] - 1 - jnp.arange(width)[None, :], 0, None)
    return FIRST + (value[:, None] // 10 ** power) % 10


def _num_digits(value: Array, max_digits: int) -> Array:
    return 1 + sum((value >= 10 ** k).astype(jnp.int32) for k in range(1, max_digits + 1))


@register_task("addition", AdditionOptions)
def addition(o: AdditionOptions) -> Seq2SeqTask:
    check_fields(o, "addition")
    D = o.max_digits

    def operand(key: Array, batch_size: int) -> tuple[Array, Array]:
        k_n, k_v = jax.random.split(key)
        n = _lengths(k_n, batch_size, 1, D)
        lo = jnp.where(n == 1, 0, 10 ** (n - 1))
        return jax.random.randint(k_v, (batch_size,), lo, 10 ** n, dtype=jnp.int32), n

    def sample(key: Array, batch_size: int) -> Batch:
        k_a, k_b = jax.random.split(key)
        (a, n_a), (b, n_b) = operand(k_a, batch_size), operand(k_b, batch_size)
        plus = jnp.full((batch_size, 1), PLUS)
        src = pack([_digits(a, n_a, D), plus, _digits(b, n_b, D)], [n_a, jnp.ones_like(n_a), n_b], 2 * D + 1)
        n_s = _num_digits(a + b, D + 1)
        return _batch(src, _with_eos(_digits(a + b, n_s, D + 1), n_s, D + 2))

    return Seq2SeqTask("addition", sample, PLUS + 1, PLUS + 1, 2 * D + 1, D + 2, False, _chance(10))


# ---------------------------------------------------------------- toy translation


@dataclasses.dataclass
class TranslateOptions:
    max_clauses: int = checked(2, COUNT)
    max_adjectives: int = checked(2, NON_NEGATIVE)
    num_nouns: int = checked(8, COUNT)
    num_adjectives: int = checked(6, COUNT)
    num_verbs: int = checked(6, COUNT)


class Lexicon(NamedTuple):
    """Token ids of each word class: source ``noun/adj/verb/and``; target ``noun/adj/stem/aux/wa/wo/to``."""

    noun: int
    adj: int
    verb: int
    and_: int
    t_noun: int
    t_adj: int
    t_stem: int
    t_aux: int  # two auxiliaries: verb v takes aux v mod 2
    wa: int
    wo: int
    to: int
    size: int


def lexicon(o: TranslateOptions) -> Lexicon:
    starts = np.cumsum([FIRST, o.num_nouns, o.num_adjectives, o.num_verbs, 1,
                        o.num_nouns, o.num_adjectives, o.num_verbs, 2, 1, 1, 1])
    return Lexicon(*map(int, starts))


def _clause(key: Array, o: TranslateOptions, lex: Lexicon, batch_size: int, present: Array, first: Array):
    """Source and target segments (tokens, lengths) of one clause; all lengths 0 where not ``present``."""
    ks = jax.random.split(key, 7)
    A = o.max_adjectives
    subj = jax.random.randint(ks[0], (batch_size, 1), 0, o.num_nouns, dtype=jnp.int32)
    obj = jax.random.randint(ks[1], (batch_size, 1), 0, o.num_nouns, dtype=jnp.int32)
    verb = jax.random.randint(ks[2], (batch_size, 1), 0, o.num_verbs, dtype=jnp.int32)
    adj_s = jax.random.randint(ks[3], (batch_size, max(A, 1)), 0, o.num_adjectives, dtype=jnp.int32)
    adj_o = jax.random.randint(ks[4], (batch_size, max(A, 1)), 0, o.num_adjectives, dtype=jnp.int32)
    n_s = jax.random.randint(ks[5], (batch_size,), 0, A + 1, dtype=jnp.int32) * present
    n_o = jax.random.randint(ks[6], (batch_size,), 0, A + 1, dtype=jnp.int32) * present
    one, joiner = present, present * (1 - first)
    word = lambda base, ids: base + ids  # noqa: E731
    col = lambda tok: jnp.full((batch_size, 1), tok)  # noqa: E731
    src = [(col(lex.and_), joiner), (word(lex.noun, subj), one), (word(lex.adj, adj_s), n_s),
           (word(lex.verb, verb), one), (word(lex.noun, obj), one), (word(lex.adj, adj_o), n_o)]
    tgt = [(col(lex.to), joiner), (word(lex.t_adj, _reverse_valid(adj_s, n_s)), n_s),
           (word(lex.t_noun, subj), one), (col(lex.wa), one),
           (word(lex.t_adj, _reverse_valid(adj_o, n_o)), n_o), (word(lex.t_noun, obj), one), (col(lex.wo), one),
           (word(lex.t_stem, verb), one), (word(lex.t_aux, verb % 2), one)]
    return src, tgt


@register_task("translate", TranslateOptions)
def translate(o: TranslateOptions) -> Seq2SeqTask:
    check_fields(o, "translate")
    lex = lexicon(o)
    C, A = o.max_clauses, o.max_adjectives
    S, T = C * (4 + 2 * A), C * (8 + 2 * A)  # longest source (with 'and'), target (with 'to' and EOS)

    def sample(key: Array, batch_size: int) -> Batch:
        k_c, *k_clause = jax.random.split(key, C + 1)
        n_clauses = _lengths(k_c, batch_size, 1, C)
        src, tgt = [], []
        for c in range(C):
            s, t = _clause(k_clause[c], o, lex, batch_size, (c < n_clauses).astype(jnp.int32), jnp.int32(c == 0))
            src += s
            tgt += t
        body, n = pack([seg for seg, _ in tgt], [m for _, m in tgt], T)
        return _batch(pack([seg for seg, _ in src], [m for _, m in src], S), _with_eos(body, n, T))

    return Seq2SeqTask("translate", sample, lex.size, lex.size, S, T, True,
                       _chance(o.num_nouns + o.num_adjectives + o.num_verbs + 5))


# ---------------------------------------------------------------- metrics


def decoded_metrics(pred: Array, tgt: Array, tgt_len: Array) -> dict[str, Array]:
    """``exact_match`` and ``token_accuracy`` of decoded ``pred [B, T']`` (PAD after EOS) against ``tgt [B, T]``.

    ``token_accuracy = sum_{t < tgt_len} [pred_t = y_t] / sum tgt_len``; ``exact_match`` needs every
    target position right, EOS included (hence nothing generated after it either).
    """
    T = tgt.shape[1]
    if pred.shape[1] < T:
        pred = jnp.pad(pred, ((0, 0), (0, T - pred.shape[1])), constant_values=PAD)
    pred = pred[:, :T]
    valid = length_mask(tgt_len, T)
    right = (pred == tgt) & valid
    return {
        "exact_match": jnp.mean(jnp.all(right | ~valid, axis=1).astype(jnp.float32)),
        "token_accuracy": right.sum() / jnp.maximum(valid.sum(), 1),
    }


def strip(tokens: np.ndarray) -> list[list[int]]:
    """Each row up to (not including) its first EOS, without PAD."""
    rows = []
    for row in np.asarray(tokens):
        cut = np.flatnonzero(row == EOS)
        row = row[: cut[0]] if cut.size else row
        rows.append([int(t) for t in row if t != PAD])
    return rows


def bleu(pred: np.ndarray, tgt: np.ndarray) -> float:
    """Corpus BLEU (sacrebleu, no tokenisation: each token id is a word) of ``pred`` against ``tgt``."""
    import sacrebleu

    words = lambda rows: [" ".join(map(str, r)) for r in strip(rows)]  # noqa: E731
    return float(sacrebleu.corpus_bleu(words(pred), [words(tgt)], tokenize="none", force=True).score)


def bleu_in_jit(pred: Array, tgt: Array) -> Array:
    """:func:`bleu` as a float32 scalar usable inside ``jax.jit`` (a host callback)."""
    return jax.pure_callback(lambda p, t: np.float32(bleu(p, t)), jax.ShapeDtypeStruct((), jnp.float32), pred, tgt)
