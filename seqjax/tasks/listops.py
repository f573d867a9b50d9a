"""ListOps (Nangia & Bowman 2018), generated locally with the rules of the Long Range Arena (Tay et al. 2021).

An example is a bracketed expression over the digits ``0..9`` and four operators, e.g.
``[MAX 4 3 [MIN 2 3 ] 1 0 ]`` (= 4), read one token per step and classified into its value (10 classes)::

    MIN(a) = min_i a_i      MAX(a) = max_i a_i      SM(a) = (sum_i a_i) mod 10
    MED(a) = floor(median(a))   (LRA computes int(np.median(a)): for an even count the mean of the two
                                 middle values, truncated, e.g. [MED 1 2 3 4 ] = floor(2.5) = 2)

Trees are drawn as LRA's ``generate_tree(1, max_depth=10, max_args=10)`` draws them (:func:`generate_tree`):
the root is at depth 1; a node at depth ``< max_depth`` is a digit with probability 0.75, else an operator,
uniform over the four, with ``2..max_args`` arguments (inclusive, as Python's ``random.randint(2, max_args)`` in
LRA: 2..10, not the 2..9 of ../shared/STUDIES.md),
each a node one level deeper; a node at ``max_depth`` is a digit.  A tree is kept when its token count
lies in ``[min_len, max_len]`` (rejection sampling).  LRA keeps ``500 < n < 2000`` counted on its string,
which still holds the tuple parentheses its input pipeline strips (``2k + 2`` of them per ``k``-argument
operator); here ``n`` counts the tokens the model reads, and the defaults are reduced to ``100..500`` so
that a study fits a CPU budget.

Tokens: ``PAD`` (0), the digits, the opening tokens ``[MIN [MAX [MED [SM`` and the closing ``]``
(:data:`SYMBOLS`, ids from :data:`seqjax.tasks.tokens.FIRST`).  Sequences are padded on the right to
``max_len`` and the batch carries ``"lengths"``: the ``classify_last`` head reads the model's output at
the last real token (the closing ``]``), so a causal model never reads padding, and the Transformer's
encoder form masks the padded keys.

Trees are recursive and their size is data-dependent, so each batch is drawn by NumPy inside a
``jax.pure_callback``, from a generator seeded with the JAX key's data: the batch of step ``s`` stays a
pure function of ``fold_in(key, s)`` (principle 5), under ``jit`` and ``vmap`` alike.

Memoryless baseline: the class frequencies of a fixed draw of :data:`BASELINE_EXAMPLES` examples, an
estimate (:func:`seqjax.tasks.base.prior_baseline`; about 0.16 accuracy at the defaults: MIN skews the
labels low, MAX high).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.errors import COUNT, Range, UserError, check_within, checked
from seqjax.tasks.base import Task, classification_metrics, prior_baseline
from seqjax.tasks.registry import register_task
from seqjax.tasks.tokens import FIRST, PAD
from seqjax.typing import Batch

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
CLOSE = "]"
SYMBOLS = tuple(str(d) for d in range(10)) + OPERATORS + (CLOSE,)
TOKEN_ID = {symbol: FIRST + i for i, symbol in enumerate(SYMBOLS)}
VOCAB_SIZE = FIRST + len(SYMBOLS)
VALUE_P = 0.75  # below max depth, the probability that a node is a digit
MIN_OPERATOR_LEN = 4  # "[OP d d ]": no expression has 2 or 3 tokens
BASELINE_EXAMPLES = 500
MAX_ATTEMPTS = 10_000  # draws per example before the length range is declared out of reach
BASELINE_SEED = 0

Tree = int | tuple[str, list["Tree"]]  # a digit, or (operator, arguments)


@dataclasses.dataclass
class ListOpsOptions:
    min_len: int = checked(100, COUNT)  # fewest tokens kept (LRA: 500, counted with its parentheses)
    max_len: int = checked(500, COUNT)  # most tokens kept, and the padded length (LRA: 2000)
    max_depth: int = checked(10, COUNT)  # digits only at this depth (the root is at depth 1)
    max_args: int = checked(10, Range(2, integer=True))  # an operator takes 2..max_args arguments


def apply_operator(op: str, args: list[int]) -> int:
    """``MIN``, ``MAX``, ``MED`` = ``floor(median)`` (LRA's ``int(np.median)``), ``SM`` = sum mod 10.

    >>> [apply_operator(op, [1, 2, 3, 4]) for op in OPERATORS]
    [1, 4, 2, 0]
    """
    if op == "[MIN":
        return min(args)
    if op == "[MAX":
        return max(args)
    if op == "[MED":
        ordered, half = sorted(args), len(args) // 2
        return ordered[half] if len(args) % 2 else (ordered[half - 1] + ordered[half]) // 2
    return sum(args) % 10


class _TooLong(Exception):
    """Raised inside :func:`generate_tree` once a draw passes its token budget (a certain rejection)."""


def uniforms(rng: np.random.Generator, block: int = 4096) -> Iterator[float]:
    """Uniform floats in ``[0, 1)`` from ``rng``, drawn a block per NumPy call (a call per node costs ~20x more).

    >>> u = uniforms(np.random.default_rng(0), block=2)
    >>> [next(u) for _ in range(3)] == np.random.default_rng(0).random(3).tolist()  # the stream, block by block
    True
    """
    while True:
        yield from rng.random(block).tolist()


def generate_tree(u: Iterator[float], depth: int = 1, max_depth: int = 10, max_args: int = 10,
                  budget: list[int] | None = None) -> Tree:
    """One LRA tree from the uniforms ``u``: at ``depth < max_depth`` a digit w.p. 0.75, else a uniform operator
    with ``2..max_args`` arguments at ``depth + 1``; at ``max_depth`` a digit.

    ``budget`` (a one-element list, decremented per token) stops a draw that is already longer than
    wanted by raising ``_TooLong``: the draw would be rejected anyway, so the kept trees are distributed
    as in full rejection sampling.

    >>> tree = generate_tree(uniforms(np.random.default_rng(3)))
    >>> isinstance(tree, int) or tree[0] in OPERATORS
    True
    """
    if budget is not None:
        budget[0] -= 1
        if budget[0] < 0:
            raise _TooLong
    if depth >= max_depth or next(u) < VALUE_P:
        return int(next(u) * 10)
    op = OPERATORS[int(next(u) * len(OPERATORS))]
    args = [generate_tree(u, depth + 1, max_depth, max_args, budget) for _ in range(2 + int(next(u) * (max_args - 1)))]
    if budget is not None:  # the closing token
        budget[0] -= 1
        if budget[0] < 0:
            raise _TooLong
    return op, args


def tree_symbols(tree: Tree) -> list[str]:
    """The tokens of ``tree``, operator first, ``]`` last.

    >>> " ".join(tree_symbols(("[MAX", [4, 3, ("[MIN", [2, 3]), 1, 0])))
    '[MAX 4 3 [MIN 2 3 ] 1 0 ]'
    """
    if isinstance(tree, int):
        return [str(tree)]
    op, args = tree
    return [op, *(s for arg in args for s in tree_symbols(arg)), CLOSE]


def tree_value(tree: Tree) -> int:
    """The value of ``tree``: :func:`apply_operator` applied bottom-up.

    >>> tree_value(("[MAX", [4, 3, ("[MIN", [2, 3]), 1, 0]))
    4
    """
    if isinstance(tree, int):
        return tree
    op, args = tree
    return apply_operator(op, [tree_value(arg) for arg in args])


def draw_example(u: Iterator[float], opts: ListOpsOptions) -> tuple[list[str], int]:
    """``(tokens, value)`` of the first tree drawn from the uniforms ``u`` whose length lies in ``[min_len, max_len]``
(a ``UserError`` after :data:`MAX_ATTEMPTS` rejections: at the defaults about 1 draw in 23 is kept).

    >>> symbols, value = draw_example(uniforms(np.random.default_rng(0)), ListOpsOptions(min_len=10, max_len=40))
    >>> 10 <= len(symbols) <= 40, 0 <= value <= 9
    (True, True)
    """
    for _ in range(MAX_ATTEMPTS):
        budget = [opts.max_len]
        try:
            tree = generate_tree(u, 1, opts.max_depth, opts.max_args, budget)
        except _TooLong:
            continue
        if opts.max_len - budget[0] >= opts.min_len:  # the tokens the budget counted
            return tree_symbols(tree), tree_value(tree)
    raise UserError(f"listops: no tree of {opts.min_len}..{opts.max_len} tokens in {MAX_ATTEMPTS} draws at "
                    f"max_depth={opts.max_depth}, max_args={opts.max_args}; widen the length range or raise them")


def sample_numpy(seed: np.ndarray, batch_size: int, opts: ListOpsOptions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(tokens [B, max_len], lengths [B], labels [B])`` (int32, right-padded with ``PAD``) from ``seed``.

    >>> tokens, lengths, labels = sample_numpy(np.array([0, 7]), 3, ListOpsOptions(min_len=4, max_len=12))
    >>> tokens.shape, bool((tokens[np.arange(3), lengths - 1] == TOKEN_ID[CLOSE]).all())
    ((3, 12), True)
    """
    u = uniforms(np.random.default_rng(np.asarray(seed).ravel().tolist()))
    tokens = np.full((batch_size, opts.max_len), PAD, np.int32)
    lengths, labels = np.zeros(batch_size, np.int32), np.zeros(batch_size, np.int32)
    for b in range(batch_size):
        symbols, labels[b] = draw_example(u, opts)
        lengths[b] = len(symbols)
        tokens[b, : len(symbols)] = [TOKEN_ID[s] for s in symbols]
    return tokens, lengths, labels


def _check(opts: ListOpsOptions) -> None:
    for field in dataclasses.fields(ListOpsOptions):
        check_within(field.name, getattr(opts, field.name), field.metadata["within"], where="listops")
    if opts.min_len > opts.max_len:
        raise UserError(f"listops: min_len={opts.min_len} exceeds max_len={opts.max_len}")
    if opts.max_len < MIN_OPERATOR_LEN and opts.min_len > 1:
        raise UserError(f"listops: no expression has {opts.min_len}..{opts.max_len} tokens (a digit has 1, an "
                        f"operator at least {MIN_OPERATOR_LEN}); raise max_len to {MIN_OPERATOR_LEN} or more")
    if opts.max_depth == 1 and opts.min_len > 1:
        raise UserError("listops: max_depth=1 allows only single digits; raise max_depth or set min_len=1")


@functools.cache
def _baseline(min_len: int, max_len: int, max_depth: int, max_args: int) -> tuple[tuple[str, float], ...]:
    """The label frequencies of a fixed draw of :data:`BASELINE_EXAMPLES` examples, as a baseline (cached)."""
    labels = sample_numpy(np.array([BASELINE_SEED]), BASELINE_EXAMPLES,
                          ListOpsOptions(min_len, max_len, max_depth, max_args))[2]
    return tuple(prior_baseline(labels, 10).items())


@register_task("listops", ListOpsOptions)
def listops(opts: ListOpsOptions) -> Task:
    """The ListOps task (see the module docstring).

    >>> task = listops(ListOpsOptions(min_len=8, max_len=30))
    >>> batch = task.sample(jax.random.key(0), 4)
    >>> batch["inputs"].shape, batch["lengths"].shape, batch["targets"].shape, task.kind
    ((4, 30), (4,), (4,), 'classify_last')
    """
    _check(opts)
    shapes = (jax.ShapeDtypeStruct((opts.max_len,), jnp.int32), jax.ShapeDtypeStruct((), jnp.int32),
              jax.ShapeDtypeStruct((), jnp.int32))

    def sample(key: jax.Array, batch_size: int) -> Batch:
        batched = tuple(jax.ShapeDtypeStruct((batch_size, *s.shape), s.dtype) for s in shapes)
        tokens, lengths, labels = jax.pure_callback(
            functools.partial(sample_numpy, batch_size=batch_size, opts=opts), batched, jax.random.key_data(key),
            vmap_method="sequential")
        return {"inputs": tokens, "lengths": lengths, "targets": labels}

    baseline = dict(_baseline(opts.min_len, opts.max_len, opts.max_depth, opts.max_args))
    return Task(name="listops", sample=sample, kind="classify_last", input_vocab=VOCAB_SIZE, input_dim=VOCAB_SIZE,
                output_dim=10, seq_len=opts.max_len, baseline=baseline, metrics=classification_metrics)
