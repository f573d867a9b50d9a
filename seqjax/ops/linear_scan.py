"""The linear recurrence ``h_t = a_t * h_{t-1} + b_t`` over the time axis.

Inputs are ``[batch, time, ...]`` (time is axis 1), real or complex; ``a`` is
broadcast against ``b`` and ``h_0`` (``[batch, ...]``, default zeros) enters as
``b_0 <- a_0 * h_0 + b_0``. One function, three methods:

* ``"associative"``: :func:`jax.lax.associative_scan` with the combine
  ``(a_1, b_1) . (a_2, b_2) = (a_2 a_1, a_2 b_1 + b_2)``: depth ``O(log T)``,
  suited to GPU/TPU; every ``h_t`` and partial product is live at once.
* ``"sequential"``: :func:`jax.lax.scan`, one step per token: work ``O(T)``.
* ``"chunked"``: time split into chunks of ``chunk_size``; inside a chunk the
  associative scan, across chunks a :func:`jax.lax.scan` carrying ``h``.
  Each chunk is rematerialized (``jax.checkpoint``) in the backward pass, so
  only one chunk's intermediates are alive at once.

``"auto"`` picks ``"sequential"`` on CPU and ``"associative"`` elsewhere: on
CPU the associative forward pass can be faster, but its backward pass is
slower, and training time is forward plus backward
(``experiments/benchmarks/linear_scan.py`` prints the ratios).

Every method takes ``resets [batch, time]`` (restart where ``True``: packed sequences,
episode boundaries) and ``lengths [batch]`` (state held past each row's end, outputs zeroed
there, as the nonlinear :mod:`seqjax.cells.scan` does), and runs in a :class:`Semiring`:
:func:`linear_scan` in ``(*, +)`` on real or complex ``a``, :func:`log_linear_scan` in
``(+, logaddexp)`` on the logarithms of positive ``a, b, h`` (minGRU/minLSTM). Padding, resets and
``h_0`` are all written in the semiring's units, so one code path serves both.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from seqjax.errors import check_choice
from seqjax.ops.masking import length_mask
from seqjax.typing import Array

METHODS = ("auto", "associative", "sequential", "chunked")


def resolve_method(method: str) -> str:
    """The concrete method behind ``method`` on the current default backend."""
    check_choice("linear_scan method", method, METHODS)
    if method == "auto":
        return "sequential" if jax.default_backend() == "cpu" else "associative"
    return method


class Semiring(NamedTuple):
    """The ``(times, plus)`` pair a scan runs in, with their units: ``h_t = plus(times(a_t, h_{t-1}), b_t)``.

    >>> LOG.plus(LOG.times(0.0, -jnp.inf), 1.0)  # log(e^0 * 0 + e^1)
    Array(1., dtype=float32, weak_type=True)
    """

    times: Callable[[Array, Array], Array]
    plus: Callable[[Array, Array], Array]
    one: float  # times-unit: a padded step keeps the state
    zero: float  # plus-unit: a reset step forgets it; also the empty state and zeroed outputs


# log(e^x + e^y), with derivatives e^(x - out), e^(y - out) taken as 0 where out = -inf (both terms empty)
@jax.custom_jvp
def logaddexp(x: Array, y: Array) -> Array:
    """``log(e^x + e^y)`` whose gradient is 0, not NaN, at ``x = y = -inf``.

    >>> jax.grad(logaddexp)(-jnp.inf, -jnp.inf)
    Array(0., dtype=float32, weak_type=True)
    """
    return jnp.logaddexp(x, y)


@logaddexp.defjvp
def _logaddexp_jvp(primals: tuple[Array, Array], tangents: tuple[Array, Array]) -> tuple[Array, Array]:
    (x, y), (dx, dy) = primals, tangents
    out = logaddexp(x, y)
    empty = out == -jnp.inf
    safe = jnp.where(empty, 0.0, out)
    weight = lambda v: jnp.where(empty, 0.0, jnp.exp(v - safe))  # noqa: E731
    return out, weight(x) * dx + weight(y) * dy


LINEAR = Semiring(times=jnp.multiply, plus=jnp.add, one=1.0, zero=0.0)
# log h_t = logaddexp(log a_t + log h_{t-1}, log b_t): the same recurrence on logarithms of positive a, b, h
LOG = Semiring(times=jnp.add, plus=logaddexp, one=0.0, zero=-jnp.inf)


# (a_l, b_l) . (a_r, b_r) = (a_r a_l, a_r b_l + b_r), in ``ring``: apply ``left`` then ``right``
def _combine(ring: Semiring) -> Callable[[tuple[Array, Array], tuple[Array, Array]], tuple[Array, Array]]:
    def combine(left: tuple[Array, Array], right: tuple[Array, Array]) -> tuple[Array, Array]:
        (a_l, b_l), (a_r, b_r) = left, right
        return ring.times(a_r, a_l), ring.plus(ring.times(a_r, b_l), b_r)

    return combine


def _associative(ring: Semiring, a: Array, b: Array) -> Array:
    return jax.lax.associative_scan(_combine(ring), (a, b), axis=1)[1]


# h_t = a_t h_{t-1} + b_t, one token per step, from the empty state
def _sequential(ring: Semiring, a: Array, b: Array) -> Array:
    def step(h: Array, ab: tuple[Array, Array]) -> tuple[Array, Array]:
        h = ring.plus(ring.times(ab[0], h), ab[1])
        return h, h

    empty = jnp.full_like(b[:, 0], ring.zero)
    _, h = jax.lax.scan(step, empty, (jnp.swapaxes(a, 0, 1), jnp.swapaxes(b, 0, 1)))
    return jnp.swapaxes(h, 0, 1)


def scan_chunks(
    body: Callable[[Any, tuple[Array, ...]], tuple[Any, Any]],
    carry: Any,
    xs: Sequence[Array],
    chunk_size: int,
    pad_values: Sequence[float],
    *,
    remat: bool = True,
) -> tuple[Any, Any]:
    """Run ``body(carry, chunk) -> (carry, ys_chunk)`` over time chunks of ``chunk_size``.

    ``xs`` are ``[batch, time, ...]``; time is padded at the end with
    ``pad_values`` (one per input, chosen so that padding leaves the carry
    unchanged) up to a multiple of ``chunk_size``; the outputs ``ys``
    (``[batch, chunk, ...]`` leaves) are stitched back and cut to ``time``.
    With ``remat`` each chunk is recomputed in the backward pass.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
    steps = xs[0].shape[1]
    chunk_size = min(chunk_size, steps)
    n = -(-steps // chunk_size)
    extra = n * chunk_size - steps

    def split(x: Array, value: float) -> Array:
        x = jnp.pad(x, [(0, 0), (0, extra)] + [(0, 0)] * (x.ndim - 2), constant_values=value)
        return jnp.swapaxes(x.reshape(x.shape[0], n, chunk_size, *x.shape[2:]), 0, 1)

    def join(y: Array) -> Array:
        y = jnp.swapaxes(y, 0, 1)
        return y.reshape(y.shape[0], n * chunk_size, *y.shape[3:])[:, :steps]

    chunks = tuple(split(x, v) for x, v in zip(xs, pad_values))
    carry, ys = jax.lax.scan(jax.checkpoint(body, prevent_cse=False) if remat else body, carry, chunks)
    return carry, jax.tree.map(join, ys)


def _chunked(ring: Semiring, a: Array, b: Array, chunk_size: int) -> Array:
    def body(h: Array, ab: tuple[Array, Array]) -> tuple[Array, Array]:
        a_c, b_c = ab
        hs = _associative(ring, a_c, b_c.at[:, 0].set(ring.plus(ring.times(a_c[:, 0], h), b_c[:, 0])))
        return hs[:, -1], hs

    _, h = scan_chunks(body, jnp.full_like(b[:, 0], ring.zero), (a, b), chunk_size, (ring.one, ring.zero))
    return h


def _time_mask(mask: Array, like: Array) -> Array:
    """``[batch, time]`` booleans shaped to broadcast against ``like [batch, time, ...]``."""
    return jnp.asarray(mask).reshape(mask.shape + (1,) * (like.ndim - 2))


# h_t = plus(times(a'_t, h_{t-1}), b'_t), a' = zero at resets, (a', b') = (one, zero) past the lengths
def _scan(
    ring: Semiring, a: Array, b: Array, h0: Array | None, method: str, chunk_size: int,
    resets: Array | None, lengths: Array | None, return_state: bool,
) -> Array | tuple[Array, Array]:
    method = resolve_method(method)
    if b.ndim < 2:
        raise ValueError(f"linear_scan expects [batch, time, ...] inputs, got shape {b.shape}")
    dtype = jnp.result_type(a, b) if h0 is None else jnp.result_type(a, b, h0)
    a = jnp.broadcast_to(jnp.asarray(a, dtype), b.shape)
    b = jnp.asarray(b, dtype)
    if resets is not None:
        a = jnp.where(_time_mask(resets, a), jnp.asarray(ring.zero, dtype), a)
    valid = None if lengths is None else _time_mask(length_mask(lengths, b.shape[1]), b)
    if valid is not None:
        a, b = jnp.where(valid, a, jnp.asarray(ring.one, dtype)), jnp.where(valid, b, jnp.asarray(ring.zero, dtype))
    if h0 is not None:
        b = b.at[:, 0].set(ring.plus(ring.times(a[:, 0], h0.astype(dtype)), b[:, 0]))
    if method == "associative":
        h = _associative(ring, a, b)
    elif method == "sequential":
        h = _sequential(ring, a, b)
    else:
        h = _chunked(ring, a, b, chunk_size)
    last = h[:, -1]
    if valid is not None:
        h = jnp.where(valid, h, jnp.asarray(ring.zero, dtype))
    return (h, last) if return_state else h


def linear_scan(
    a: Array,
    b: Array,
    h0: Array | None = None,
    *,
    method: str = "auto",
    chunk_size: int = 128,
    resets: Array | None = None,
    lengths: Array | None = None,
    return_state: bool = False,
) -> Array | tuple[Array, Array]:
    """``h_t = a_t * h_{t-1} + b_t`` for ``t = 0..T-1`` with ``h_{-1} = h0``; returns ``h [batch, time, ...]``.

    ``a`` (real or complex) broadcasts against ``b`` (``[batch, time, ...]``); ``h0`` is
    ``[batch, ...]`` (zeros when ``None``). ``chunk_size`` is used by ``method="chunked"`` only.
    ``resets [batch, time]`` (bool) restarts the recurrence where ``True`` (``a_t := 0`` there, so
    ``h_t = b_t``; a reset at ``t = 0`` drops ``h0``). ``lengths [batch]`` holds the state after
    each row's last valid step (``t >= lengths[b]``: ``a_t := 1, b_t := 0``) and zeroes ``h`` there.
    With ``return_state``, returns ``(h, h_last)``, ``h_last [batch, ...]`` the held final state.

    >>> linear_scan(jnp.full((1, 3), 0.5), jnp.ones((1, 3)), resets=jnp.array([[False, False, True]]))
    Array([[1. , 1.5, 1. ]], dtype=float32)
    """
    return _scan(LINEAR, a, b, h0, method, chunk_size, resets, lengths, return_state)


def log_linear_scan(
    log_a: Array,
    log_b: Array,
    log_h0: Array | None = None,
    *,
    method: str = "auto",
    chunk_size: int = 128,
    resets: Array | None = None,
    lengths: Array | None = None,
    return_state: bool = False,
) -> Array | tuple[Array, Array]:
    """:func:`linear_scan` of positive ``a, b, h`` on their logarithms: returns ``log h [batch, time, ...]``.

    ``log h_t = logaddexp(log a_t + log h_{t-1}, log b_t)``, which unrolls to Heinsen's form
    ``log h_t = A_t + logcumsumexp_{s <= t}(log b_s - A_s)``, ``A_t = sum_{s <= t} log a_s``
    (minGRU/minLSTM, Feng et al. 2024): the associative method scans the pairs
    ``(log a, log b)`` with that combine, so no ``exp`` of a long sum under- or overflows.
    ``log_h0 = None`` is the empty state ``h_0 = 0`` (``log 0 = -inf``, with finite gradients);
    ``resets`` and ``lengths`` as in :func:`linear_scan`, zeroed outputs being ``log h = -inf``.

    >>> log_h = log_linear_scan(jnp.log(jnp.full((1, 2), 0.5)), jnp.log(jnp.ones((1, 2))))
    >>> jnp.exp(log_h)  # h = [1, 0.5 * 1 + 1]
    Array([[1. , 1.5]], dtype=float32)
    """
    return _scan(LOG, log_a, log_b, log_h0, method, chunk_size, resets, lengths, return_state)
