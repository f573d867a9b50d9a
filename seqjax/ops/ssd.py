"""State space duality (SSD, Mamba-2; Dao & Gu 2024): the chunked matrix form of a scalar-decay SSM.

Per head ``h`` (state ``[P, N]``: head dim by state size), with scalar decay ``a_t = exp(alpha_t)``::

    H_t = a_t H_{t-1} + x_t B_t^T          (x_t [P], B_t [N])
    y_t = H_t C_t                           (C_t [N])

is a :func:`~seqjax.ops.linear_scan.linear_scan` with ``a_t`` broadcast over ``[P, N]``. Its matrix
form is ``Y = (L o C B^T) X`` with the 1-semiseparable decay mask ``L = exp(segsum(alpha))``.
:func:`ssd` cuts time into chunks of ``Q``: inside a chunk the quadratic (attention-like) form,
between chunks the recurrence on the chunk states -- ``O(T Q)`` work in matrix multiplies, no
``[T, P, N]`` state sequence. Resets (``a_t = 0``: no decay path crosses one) and lengths
(``alpha_t := 0, x_t := 0`` past the end, outputs zeroed) behave as in ``linear_scan``.
"""

from __future__ import annotations

import jax.numpy as jnp

from seqjax.ops.linear_scan import linear_scan
from seqjax.ops.masking import length_mask
from seqjax.typing import Array


# segsum(alpha)_{ij} = sum_{k=j+1}^{i} alpha_k = cs_i - cs_j for i >= j (cs = cumsum(alpha)), -inf for j > i
def segsum(alpha: Array) -> Array:
    """``[..., T] -> [..., T, T]`` segment sums; ``exp(segsum)`` is the decay mask ``L``.

    As differences of one cumulative sum (as the reference Triton kernel, ``exp(dA_cs_m - dA_cs_k)``), not the
    minimal reference's masked ``[T, T]`` cumsum, which XLA:CPU runs as a reduce-window (the Mamba-2 train step
    spent 55 of 650 ms there at ``B=32 T=1024``); within a chunk ``|cs|`` stays small enough that the difference
    loses little.

    >>> jnp.exp(segsum(jnp.log(jnp.array([1.0, 0.5, 0.5]))))
    Array([[1.  , 0.  , 0.  ],
           [0.5 , 1.  , 0.  ],
           [0.25, 0.5 , 1.  ]], dtype=float32)
    """
    return _differences(jnp.cumsum(alpha, axis=-1))


def _differences(cs: Array) -> Array:
    """:func:`segsum` from the cumulative sums ``cs [..., T]``: ``cs_i - cs_j`` for ``i >= j``, ``-inf`` above."""
    steps = cs.shape[-1]
    return jnp.where(jnp.tril(jnp.ones((steps, steps), bool)), cs[..., :, None] - cs[..., None, :], -jnp.inf)


def _to_chunks(x: Array, chunk_size: int) -> Array:
    """``[batch, time, ...] -> [batch, n_chunks, chunk, ...]``, zero-padded at the end."""
    extra = -x.shape[1] % chunk_size
    x = jnp.pad(x, [(0, 0), (0, extra)] + [(0, 0)] * (x.ndim - 2))
    return x.reshape(x.shape[0], -1, chunk_size, *x.shape[2:])


# Y^diag_{l} = sum_{s <= l} (C_l . B_s) L_{ls} x_s   (within a chunk; L = exp(segsum(alpha)))
def _intra_chunk(x: Array, b: Array, c: Array, decay: Array) -> Array:
    return jnp.einsum("bclhn,bcshn,bchls,bcshp->bclhp", c, b, decay, x)


# S_c = sum_s exp(sum_{k=s+1}^{Q} alpha_k) x_s B_s^T   (the state a chunk leaves from a zero start)
def _chunk_states(x: Array, b: Array, decay: Array) -> Array:
    return jnp.einsum("bcshn,bchs,bcshp->bchpn", b, decay[..., -1, :], x)


# Y^off_{l} = exp(sum_{k <= l} alpha_k) H_c C_l   (the state entering chunk c, decayed to l, read out)
def _state_outputs(c: Array, entering: Array, from_start: Array) -> Array:
    return jnp.einsum("bclhn,bchpn,bchl->bclhp", c, entering, from_start)


def ssd(
    x: Array,
    alpha: Array,
    b: Array,
    c: Array,
    h0: Array | None = None,
    *,
    chunk_size: int = 64,
    resets: Array | None = None,
    lengths: Array | None = None,
) -> tuple[Array, Array]:
    """``(y [batch, T, H, P], H_T [batch, H, P, N])`` of the recurrence above, chunk by chunk.

    ``x [batch, T, H, P]`` (already scaled by the step, ``x_bar = dt x``), ``alpha [batch, T, H]``
    (``log a_t <= 0``), ``b, c [batch, T, H, N]`` (groups already broadcast to heads), ``h0
    [batch, H, P, N]`` (zeros when ``None``). Between chunks ``H_{c+1} = exp(sum_chunk alpha) H_c +
    S_c`` is a :func:`~seqjax.ops.linear_scan.linear_scan` over the chunk axis.

    >>> x, b, c = jnp.ones((1, 3, 1, 1)), jnp.ones((1, 3, 1, 1)), jnp.ones((1, 3, 1, 1))
    >>> y, h = ssd(x, jnp.log(jnp.full((1, 3, 1), 0.5)), b, c, chunk_size=2)
    >>> y[0, :, 0, 0]  # h_t = 0.5 h_{t-1} + 1
    Array([1.  , 1.5 , 1.75], dtype=float32)
    """
    steps = x.shape[1]
    valid = None if lengths is None else length_mask(lengths, steps)
    if valid is not None:  # a = 1 and no input past the end: the state is held
        alpha, x = jnp.where(valid[..., None], alpha, 0.0), jnp.where(valid[..., None, None], x, 0.0)
    chunk_size = min(chunk_size, steps)
    xs, bs, cs = (_to_chunks(v, chunk_size) for v in (x, b, c))
    alpha = jnp.moveaxis(_to_chunks(alpha, chunk_size), -1, 2)  # [batch, n, H, Q]
    sums = jnp.cumsum(alpha, axis=-1)  # [batch, n, H, Q]
    decay = jnp.exp(_differences(sums))  # [batch, n, H, Q, Q]: exp(segsum(alpha))
    from_start = jnp.exp(sums)  # the decay from the chunk's start to l
    if resets is not None:  # a_t = 0 at a reset: no decay path crosses one (ids count the resets up to l)
        ids = jnp.cumsum(_to_chunks(resets, chunk_size), axis=-1)[:, :, None, :]  # [batch, n, 1, Q]
        decay = jnp.where(ids[..., :, None] == ids[..., None, :], decay, 0.0)
        from_start = jnp.where(ids == 0, from_start, 0.0)
    states = _chunk_states(xs, bs, decay)  # [batch, n, H, P, N]
    totals = from_start[..., -1, None, None]  # [batch, n, H, 1, 1]: exp(sum_chunk alpha)
    after, last = linear_scan(totals, states, h0, method="sequential", return_state=True)
    start = jnp.zeros_like(states[:, 0]) if h0 is None else h0.astype(states.dtype)
    entering = jnp.concatenate([start[:, None], after[:, :-1]], axis=1)
    y = _intra_chunk(xs, bs, cs, decay) + _state_outputs(cs, entering, from_start)
    y = y.reshape(y.shape[0], -1, *y.shape[3:])[:, :steps]
    if valid is not None:
        y = jnp.where(valid[..., None, None], y, 0.0)
    return y, last
