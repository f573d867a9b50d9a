"""Mamba's selective scan by the compiled CPU kernel ``csrc/selective_scan.cc``, with its own backward pass.

The same recurrence as :func:`seqjax.ops.selective_scan.selective_scan` (without the ``D u`` skip, added
there), float32::

    x_t[d, n] = exp(dt_t[d] A[d, n]) x_{t-1}[d, n] + dt_t[d] B_t[n] u_t[d]      (x := 0 at resets)
    y_t[d]    = sum_n C_t[n] x_t[d, n]

The forward pass keeps the state entering every ``CHUNK`` tokens (``[batch, L / CHUNK, D, N]``); the backward
pass recomputes each chunk from it and runs the adjoint recurrence (the equations are in the kernel's source),
so training memory is that of the inputs plus those checkpoints.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.ops import native
from seqjax.typing import Array

CHUNK = 32  # tokens between the forward pass's saved states
SYMBOLS = ("SelectiveScanForward", "SelectiveScanBackward")
# flops per state element (batch, token, channel, state index), counted on the kernel's loops: forward
# dt A, exp, the reset mask, a h + g B, C h accumulated (8); backward the same recurrence recomputed (6) and the
# adjoint's 15 (lambda, q, the dC, dB, g, q A and dA sums, the carried a lambda)
FLOPS_PER_STATE = {"seqjax_SelectiveScanForward": 8, "seqjax_SelectiveScanBackward": 21}


def kernel_flops(target: str, shapes: list[tuple[int, ...]]) -> float | None:
    """The flops of one call of the kernel ``target`` on arguments of ``shapes`` (``u [batch, L, D], dt, a [D, N],
    ...``); ``None`` for another target.

    >>> kernel_flops("seqjax_SelectiveScanForward", [(2, 10, 4), (2, 10, 4), (4, 16)])  # 8 per state element
    10240.0
    """
    per_state = FLOPS_PER_STATE.get(target)
    return None if per_state is None else float(per_state * np.prod(shapes[0]) * shapes[2][-1])


def available(*arrays: Array) -> bool:
    """Whether the kernel runs here: float32 inputs, kernels :func:`~seqjax.ops.native.enabled` and one that built."""
    return (all(jnp.result_type(x) == jnp.float32 for x in arrays) and native.enabled()
            and native.register("selective_scan", *SYMBOLS))


def _call(symbol: str, results: list, *args: Array) -> tuple[Array, ...]:
    return native.call("selective_scan", SYMBOLS, symbol, results, *args, chunk=np.int64(CHUNK))


def _forward(u: Array, dt: Array, a: Array, b: Array, c: Array, h0: Array, resets: Array) -> tuple[Array, ...]:
    batch, length, _ = u.shape
    chunks = -(-length // CHUNK)
    checkpoints = jax.ShapeDtypeStruct((batch, chunks, *a.shape), u.dtype)
    return _call("SelectiveScanForward", [u, h0, checkpoints], u, dt, a, b, c, h0, resets)


@jax.custom_vjp
def selective_scan_native(u: Array, dt: Array, a: Array, b: Array, c: Array, h0: Array,
                          resets: Array) -> tuple[Array, Array]:
    """``(y [batch, L, D], x_L [batch, D, N])``; ``u, dt [batch, L, D]``, ``a [D, N]``, ``b, c [batch, L, N]``,
    ``h0 [batch, D, N]``, ``resets [batch, L]`` (bool), all float32 but ``resets``.

    >>> import jax.numpy as jnp
    >>> if available(jnp.zeros(1)):
    ...     y, h = selective_scan_native(jnp.ones((1, 3, 2)), jnp.ones((1, 3, 2)), -jnp.ones((2, 1)),
    ...                                  jnp.ones((1, 3, 1)), jnp.ones((1, 3, 1)), jnp.zeros((1, 2, 1)),
    ...                                  jnp.zeros((1, 3), bool))
    ...     print([round(float(v), 4) for v in y[0, :, 0]])   # x_t = e^-1 x_{t-1} + 1
    [1.0, 1.3679, 1.5032]
    """
    y, h, _ = _forward(u, dt, a, b, c, h0, resets)
    return y, h


def _fwd(u, dt, a, b, c, h0, resets):
    y, h, checkpoints = _forward(u, dt, a, b, c, h0, resets)
    return (y, h), (u, dt, a, b, c, resets, checkpoints)


def _bwd(residuals, cotangents):
    u, dt, a, b, c, resets, checkpoints = residuals
    dy, dh = cotangents
    grads = _call("SelectiveScanBackward", [u, dt, a, b, c, dh], u, dt, a, b, c, resets, checkpoints, dy, dh)
    return (*grads, None)


selective_scan_native.defvjp(_fwd, _bwd)
