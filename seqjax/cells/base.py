"""seqjax.cells.base."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from seqjax.cells.fused_bptt import FusedBPTT
from seqjax.errors import check_choice, check_positive
from seqjax.ops.initializers import RECURRENT_INITS, input_init, recurrent_init
from seqjax.typing import Array, Carry, Params


class Cell(NamedTuple):
    """A recurrent cell: pure functions over an explicit parameter pytree.

    Attributes:
      init: ``(key, input_size) -> params``.
      initial_carry: ``(batch_shape) -> carry`` (zeros).
      input_proj: ``(params, x) -> xp``: the part of the step that is affine in
        the input and independent of the carry; works on any leading shape.
      recur: ``(params, carry, xp_t) -> (carry, h_t)``: the recurrence proper.
      step: ``(params, carry, x_t) -> (carry, h_t)``, equal (up to float
        rounding) to ``recur(params, carry, input_proj(params, x_t))``.
      input_size: ``params -> int``, the feature size the params expect.
      hidden_size: width of ``h_t``.
      name: ``"rnn"``, ``"lstm"`` or ``"gru"``.
      bptt: the hand-derived backward pass (:mod:`seqjax.cells`) that
        :func:`seqjax.cells.scan.run` uses for gradients, or None (autodiff only).
    """

    init: Callable[[Array, int], Params]
    initial_carry: Callable[[tuple[int, ...]], Carry]
    input_proj: Callable[[Params, Array], Array]
    recur: Callable[[Params, Carry, Array], tuple[Carry, Array]]
    step: Callable[[Params, Carry, Array], tuple[Carry, Array]]
    input_size: Callable[[Params], int]
    hidden_size: int
    name: str
    bptt: FusedBPTT | None = None


def hidden_of(carry: Carry) -> Array:
    """The hidden state ``h`` in a cell's carry: ``carry.h`` for the LSTM's ``(c, h)``, else the carry itself.

    >>> from seqjax.cells.lstm import LSTMCarry
    >>> hidden_of(LSTMCarry(c=jnp.zeros(2), h=jnp.ones(2)))
    Array([1., 1.], dtype=float32)
    """
    return getattr(carry, "h", carry)


def _compose_step(input_proj, recur):
    def step(params, carry, x_t):
        return recur(params, carry, input_proj(params, x_t))

    return step


def _gated(update, hidden, dtype):
    """``(recur, step)`` of a cell whose gate pre-activations ``z`` are one affine map of ``[h_{t-1}, x_t]``.

    ``recur`` adds ``h W_h`` to a precomputed ``xp = x W_x + b``; ``step`` computes
    ``z = [h, x] [W_h; W_x] + b`` as a single matmul, which measured faster than two on CPU
    (``experiments/benchmarks/README.md``).  Both then return ``update(carry, z)``.
    """

    def recur(params: Params, carry: Carry, xp: Array) -> tuple[Carry, Array]:
        return update(carry, xp + hidden(carry) @ params["w_h"].astype(dtype))

    def step(params: Params, carry: Carry, x_t: Array) -> tuple[Carry, Array]:
        return update(carry, preactivation(params, hidden(carry), x_t, dtype))

    return recur, step


def _affine_input(dtype):
    """``xp = x @ W_x + b``, computed in ``dtype``."""

    def input_proj(params: Params, x: Array) -> Array:
        w_x = params["w_x"].astype(dtype)
        return x.astype(dtype) @ w_x + params["b"].astype(dtype)

    return input_proj


def _input_size(params: Params) -> int:
    return params["w_x"].shape[0]


def _zeros_carry(hidden_size, dtype):
    def initial_carry(batch_shape: tuple[int, ...]) -> Array:
        return jnp.zeros((*batch_shape, hidden_size), dtype)

    return initial_carry


def gate_weights(
    hidden_size: int, gates: int, *, recurrent: str, spectral_norm: float | None, param_dtype: Any
) -> Callable[[Array, int], Params]:
    """``init(key, input_size) -> {w_x, w_h, b}`` for ``gates`` blocks of width ``hidden_size`` (``b = 0``).

    Bad ``W_h`` options are rejected here, when the cell is built, not later at ``init``.
    """
    check_choice("recurrent initializer", recurrent, RECURRENT_INITS)
    check_positive("spectral_norm", spectral_norm)  # sigma_max of each W_h block

    def init(key: Array, input_size: int) -> Params:
        k_x, k_h = jax.random.split(key)
        return {
            "w_x": input_init(k_x, (input_size, gates * hidden_size), param_dtype),
            "w_h": recurrent_init(k_h, hidden_size, gates, param_dtype, kind=recurrent, spectral_norm=spectral_norm),
            "b": jnp.zeros((gates * hidden_size,), param_dtype),
        }

    return init


def hidden_carry_bptt(forward: Callable, backward: Callable) -> FusedBPTT:
    """The :class:`FusedBPTT` of a cell whose carry is its hidden state ``h`` (the RNN, the GRU)."""
    return FusedBPTT(forward=forward, backward=backward, hidden=lambda h: h, add_hidden=lambda d_c, d_h: d_c + d_h)


def preactivation(params: Params, h: Array, x: Array, dtype: Any) -> Array:
    """``z = [h, x] [W_h; W_x] + b``: one matmul (the cells' ``step``)."""
    w = jnp.concatenate([params["w_h"], params["w_x"]], axis=0).astype(dtype)
    return jnp.concatenate([h, x.astype(dtype)], axis=-1) @ w + params["b"].astype(dtype)


def readout_init(key: jax.Array, hidden_size: int, output_size: int, param_dtype: Any = jnp.float32) -> dict:
    """Parameters ``{"w_o": [hidden, out], "b_o": [out]}``; ``W_o ~ N(0, 1/hidden)``, ``b_o = 0``."""
    return {
        "w_o": input_init(key, (hidden_size, output_size), param_dtype),
        "b_o": jnp.zeros((output_size,), param_dtype),
    }


def readout(params: dict, h: jax.Array) -> jax.Array:
    """``y = h @ W_o + b_o`` over any leading shape (``y_t = W_o h_t + b_o`` per step)."""
    return h @ params["w_o"].astype(h.dtype) + params["b_o"].astype(h.dtype)
