"""The selective scan of Mamba (S6, Gu & Dao 2023): a diagonal SSM whose ``dt, B, C`` depend on the token.

Per channel ``d`` and state index ``n``::

    x_t[d, n] = exp(dt_t[d] A[d, n]) x_{t-1}[d, n] + dt_t[d] B_t[n] u_t[d]
    y_t[d]    = sum_n C_t[n] x_t[d, n] + D[d] u_t[d]

The state sequence ``x`` is ``[batch, L, D, N]``, far larger than the inputs
and outputs, so it is never held whole: time is cut into chunks of
``chunk_size``; each chunk builds its ``exp(dt A)`` and ``dt B u``, runs
:func:`seqjax.linear_scan.linear_scan` from the carried state, contracts with
``C`` and keeps only ``y`` and the last state. With ``remat`` the chunk is
recomputed in the backward pass, so training memory is
``O(batch L (D + N) + batch (L / chunk) D N + batch chunk D N)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from seqjax.linear_scan import linear_scan, scan_chunks

Array = jax.Array


def selective_scan(
    u: Array,
    dt: Array,
    a: Array,
    b: Array,
    c: Array,
    d: Array,
    *,
    h0: Array | None = None,
    chunk_size: int | None = 64,
    method: str = "auto",
    remat: bool = True,
) -> tuple[Array, Array]:
    """``(y [batch, L, D], x_L [batch, D, N])`` of the recurrence above.

    ``u, dt [batch, L, D]``, ``a [D, N]`` (negative), ``b, c [batch, L, N]``,
    ``d [D]``, ``h0 [batch, D, N]`` (zeros when ``None``). ``chunk_size=None``
    scans the whole sequence as one chunk; ``method`` is the
    :func:`~seqjax.linear_scan.linear_scan` method inside a chunk.
    """

    def body(h: Array, chunk: tuple[Array, Array, Array, Array]) -> tuple[Array, Array]:
        u_c, dt_c, b_c, c_c = chunk
        a_bar = jnp.exp(dt_c[..., None] * a)  # [batch, chunk, D, N]
        bu = (dt_c * u_c)[..., None] * b_c[:, :, None, :]
        hs = linear_scan(a_bar, bu, h, method=method)
        return hs[:, -1], jnp.einsum("bldn,bln->bld", hs, c_c)

    if h0 is None:
        h0 = jnp.zeros((u.shape[0], *a.shape), jnp.result_type(u, a))
    # padding dt = 0 gives exp(0 A) = 1 and dt B u = 0: the state passes through unchanged
    h, y = scan_chunks(body, h0, (u, dt, b, c), chunk_size or u.shape[1], (0, 0, 0, 0), remat=remat)
    return y + d * u, h
