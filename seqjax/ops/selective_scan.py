"""The selective scan of Mamba (S6, Gu & Dao 2023): a diagonal SSM whose ``dt, B, C`` depend on the token.

Per channel ``d`` and state index ``n``::

    x_t[d, n] = exp(dt_t[d] A[d, n]) x_{t-1}[d, n] + dt_t[d] B_t[n] u_t[d]
    y_t[d]    = sum_n C_t[n] x_t[d, n] + D[d] u_t[d]

with ``x_{t-1} := 0`` where a packed sequence starts (``resets``).

The state sequence ``x`` is ``[batch, L, D, N]``, far larger than the inputs
and outputs, so it is never held whole: time is cut into chunks of
``chunk_size``, a :func:`jax.lax.scan` carries the state across chunks, and
with ``remat`` each chunk is recomputed in the backward pass, so training
memory is ``O(batch L (D + N) + batch (L / chunk) D N + batch chunk D N)``.
By ``method``:

* ``"native"`` (``auto`` on CPU, float32, where the kernel builds): the compiled CPU kernel
  (:mod:`seqjax.ops.selective_scan_native`, one pass over the inputs per direction, its own backward pass
  recomputing chunks of 32 tokens; ``chunk_size`` and ``remat`` do not apply); elsewhere it falls back to
  ``"sequential"``.

Otherwise, inside a chunk, by the resolved :func:`~seqjax.ops.linear_scan.linear_scan` method:

* ``"sequential"`` (``auto`` on CPU without the kernel): a fused per-token step builds
  ``exp(dt_t A)``, ``dt_t B_t u_t`` and ``y_t = C_t x_t`` from the token's own
  ``[batch, D]`` / ``[batch, N]`` slices, so not even one chunk's
  ``[batch, chunk, D, N]`` inputs are materialized (measured 1.3-4x faster on
  CPU than the materialized form, ``experiments/benchmarks/README.md``);
* ``"associative"`` / ``"chunked"``: the chunk's ``exp(dt A)`` and ``dt B u``
  are materialized and scanned by :func:`~seqjax.ops.linear_scan.linear_scan`,
  depth ``O(log chunk)``, for accelerators.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from seqjax.errors import check_choice
from seqjax.ops.linear_scan import METHODS as LINEAR_SCAN_METHODS
from seqjax.ops.linear_scan import linear_scan, resolve_method, scan_chunks
from seqjax.ops.selective_scan_native import available, selective_scan_native
from seqjax.typing import Array

METHODS = (*LINEAR_SCAN_METHODS, "native")


def selective_scan(
    u: Array,
    dt: Array,
    a: Array,
    b: Array,
    c: Array,
    d: Array,
    *,
    h0: Array | None = None,
    chunk_size: int | None = 16,
    method: str = "auto",
    remat: bool = True,
    resets: Array | None = None,
) -> tuple[Array, Array]:
    """``(y [batch, L, D], x_L [batch, D, N])`` of the recurrence above.

    ``u, dt [batch, L, D]``, ``a [D, N]`` (negative), ``b, c [batch, L, N]``,
    ``d [D]``, ``h0 [batch, D, N]`` (zeros when ``None``). ``chunk_size=None``
    scans the whole sequence as one chunk; ``method`` is ``"native"`` or the
    :func:`~seqjax.ops.linear_scan.linear_scan` method inside a chunk. ``resets [batch, L]`` (bool)
    restart the state where ``True`` (``exp(dt_t A) := 0`` there: packed sequences).
    """

    check_choice("selective_scan method", method, METHODS)
    if method in ("auto", "native") and available(u, dt, a, b, c, *([] if h0 is None else [h0])):
        h0 = jnp.zeros((u.shape[0], *a.shape), u.dtype) if h0 is None else h0
        resets = jnp.zeros(u.shape[:2], bool) if resets is None else resets
        y, h = selective_scan_native(u, dt, a, b, c, h0, resets)
        return y + d * u, h
    method = resolve_method("auto" if method == "native" else method)

    def token(h: Array, inputs: tuple[Array, ...]) -> tuple[Array, Array]:
        u_t, dt_t, b_t, c_t, *r_t = inputs  # [batch, D], [batch, D], [batch, N], [batch, N] (, resets [batch])
        decay = jnp.exp(dt_t[..., None] * a)
        if r_t:
            decay = jnp.where(r_t[0][:, None, None], 0.0, decay)
        h = decay * h + (dt_t * u_t)[..., None] * b_t[:, None, :]
        return h, jnp.einsum("bdn,bn->bd", h, c_t)

    def fused(h: Array, chunk: tuple[Array, ...]) -> tuple[Array, Array]:
        h, y = jax.lax.scan(token, h, tuple(jnp.swapaxes(x, 0, 1) for x in chunk))
        return h, jnp.swapaxes(y, 0, 1)

    def materialized(h: Array, chunk: tuple[Array, ...]) -> tuple[Array, Array]:
        u_c, dt_c, b_c, c_c, *r_c = chunk
        a_bar = jnp.exp(dt_c[..., None] * a)  # [batch, chunk, D, N]
        bu = (dt_c * u_c)[..., None] * b_c[:, :, None, :]
        hs = linear_scan(a_bar, bu, h, method=method, resets=r_c[0] if r_c else None)
        return hs[:, -1], jnp.einsum("bldn,bln->bld", hs, c_c)

    body = fused if method == "sequential" else materialized
    if h0 is None:
        h0 = jnp.zeros((u.shape[0], *a.shape), jnp.result_type(u, a))
    # padding dt = 0 gives exp(0 A) = 1 and dt B u = 0: the state passes through unchanged (and no reset)
    xs, pads = ((u, dt, b, c), (0, 0, 0, 0)) if resets is None else ((u, dt, b, c, resets), (0, 0, 0, 0, False))
    h, y = scan_chunks(body, h0, xs, chunk_size or u.shape[1], pads, remat=remat)
    return y + d * u, h
