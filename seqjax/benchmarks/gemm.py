"""The hardware limit of a sequential recurrence: a chain of dependent GEMMs.

A recurrent layer with ``G`` gate blocks multiplies ``h_{t-1} [B, H]`` by
``W_h [H, G H]`` at every step, ``F = 2 B H (G H) T`` flops in all, and step
``t`` cannot start before step ``t-1`` ends.  The fastest such loop on a device
is the chain ``z_t = h_{t-1} W_h``, ``h_t = z_t[:, :H]`` with nothing else in it;
:func:`gemm_chain` builds it.  A layer's *recurrent-matmul throughput* is
``F / t_layer`` and its fraction of the limit is ``t_chain / t_layer``.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from seqjax.benchmarks.programs import Shape
from seqjax.benchmarks.timing import blocking

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def recurrent_flops(cell_name: str, shape: Shape) -> float:
    """``2 B H (G H) T``: the flops of the recurrent matmuls of one forward pass."""
    return 2.0 * shape.batch * shape.hidden * GATES[cell_name] * shape.hidden * shape.time


def gemm_chain(cell_name: str, shape: Shape) -> Callable[[], Any]:
    """A blocking callable running ``T`` dependent ``[B, H] @ [H, G H]`` GEMMs under ``lax.scan``."""
    H = shape.hidden
    key_w, key_h = jax.random.split(jax.random.key(0))
    w = jax.random.normal(key_w, (H, GATES[cell_name] * H), jnp.float32) / jnp.sqrt(H)
    h0 = jax.random.normal(key_h, (shape.batch, H), jnp.float32)

    @jax.jit
    def chain(w, h0):
        def body(h, _):
            return (h @ w)[:, :H], None

        return jax.lax.scan(body, h0, None, length=shape.time)[0]

    return blocking(lambda: chain(w, h0))
