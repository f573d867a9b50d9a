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
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from seqjax.typing import Array

METHODS = ("auto", "associative", "sequential", "chunked")


def resolve_method(method: str) -> str:
    """The concrete method behind ``method`` on the current default backend."""
    if method not in METHODS:
        raise ValueError(f"unknown linear_scan method {method!r}: choose one of {', '.join(METHODS)}")
    if method == "auto":
        return "sequential" if jax.default_backend() == "cpu" else "associative"
    return method


def _combine(left: tuple[Array, Array], right: tuple[Array, Array]) -> tuple[Array, Array]:
    """``(a_l, b_l) . (a_r, b_r) = (a_r a_l, a_r b_l + b_r)``: apply ``left`` then ``right``."""
    a_l, b_l = left
    a_r, b_r = right
    return a_r * a_l, a_r * b_l + b_r


def _associative(a: Array, b: Array) -> Array:
    return jax.lax.associative_scan(_combine, (a, b), axis=1)[1]


def _sequential(a: Array, b: Array) -> Array:
    def step(h: Array, ab: tuple[Array, Array]) -> tuple[Array, Array]:
        h = ab[0] * h + ab[1]
        return h, h

    _, h = jax.lax.scan(step, jnp.zeros_like(b[:, 0]), (jnp.swapaxes(a, 0, 1), jnp.swapaxes(b, 0, 1)))
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


def _chunked(a: Array, b: Array, chunk_size: int) -> Array:
    def body(h: Array, ab: tuple[Array, Array]) -> tuple[Array, Array]:
        a_c, b_c = ab
        hs = _associative(a_c, b_c.at[:, 0].add(a_c[:, 0] * h))
        return hs[:, -1], hs

    _, h = scan_chunks(body, jnp.zeros_like(b[:, 0]), (a, b), chunk_size, (1, 0))
    return h


def linear_scan(
    a: Array,
    b: Array,
    h0: Array | None = None,
    *,
    method: str = "auto",
    chunk_size: int = 128,
) -> Array:
    """``h_t = a_t * h_{t-1} + b_t`` for ``t = 0..T-1`` with ``h_{-1} = h0``; returns ``h [batch, time, ...]``.

    ``a`` broadcasts against ``b`` (``[batch, time, ...]``); ``h0`` is
    ``[batch, ...]`` (zeros when ``None``). ``chunk_size`` is used by
    ``method="chunked"`` only.
    """
    method = resolve_method(method)
    dtype = jnp.result_type(a, b) if h0 is None else jnp.result_type(a, b, h0)
    a = jnp.broadcast_to(a, b.shape).astype(dtype)
    b = b.astype(dtype)
    if b.ndim < 2:
        raise ValueError(f"linear_scan expects [batch, time, ...] inputs, got shape {b.shape}")
    if h0 is not None:
        b = b.at[:, 0].add(a[:, 0] * h0)
    if method == "associative":
        return _associative(a, b)
    if method == "sequential":
        return _sequential(a, b)
    return _chunked(a, b, chunk_size)
