"""Recurrent cells as bundles of pure functions.

A :class:`Cell` is built by a constructor (``rnn``, ``lstm``, ``gru``) and holds
pure functions over an explicit parameter pytree, in the style of optax's
``GradientTransformation``::

    cell = lstm(hidden_size=128, forget_bias=1.0)
    params = cell.init(key, input_size)
    carry = cell.initial_carry((batch,))
    carry, h_t = cell.step(params, carry, x_t)

Every cell splits its step into an input projection ``input_proj(params, x_t)``
(affine in ``x_t``, no recurrence) and the recurrent update
``recur(params, carry, xp_t)``, so that ``step = recur ∘ input_proj``.  On
accelerators the scan driver (:mod:`seqjax.scan`) hoists ``input_proj`` out of
the time loop: one large matmul over all time steps instead of ``T`` small
ones (on CPU it runs ``step`` in the loop, which measured faster).

Layout: ``x_t`` is ``[..., input_size]``; weights multiply from the right
(``x @ W``), so ``W_x`` is ``[input_size, G*hidden]`` and ``W_h`` is
``[hidden, G*hidden]`` where ``G`` is the number of gates.  Writing
``W [h; x] = W_h h + W_x x`` is the same matrix split in two.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from seqjax.bptt import FusedBPTT
from seqjax.cell_bptt import (
    ACTIVATIONS, gru_reset_after_bptt, gru_reset_after_update, lstm_bptt, lstm_update, preactivation, rnn_bptt,
)
from seqjax.initializers import RECURRENT_INITS, recurrent_init, input_init

Array = jax.Array
Params = dict[str, Array]
Carry = Any


class LSTMCarry(NamedTuple):
    """LSTM state: hidden output ``h`` and memory cell ``c``."""

    h: Array
    c: Array


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
      bptt: the hand-derived backward pass (:mod:`seqjax.cell_bptt`) that
        :func:`seqjax.scan.run` uses for gradients, or None (autodiff only).
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


def _check_choice(option: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {option} {value!r}: choose one of {', '.join(map(repr, allowed))}")


def _check_weight_options(recurrent: str, spectral_norm: float | None) -> None:
    """Reject bad ``W_h`` options when the cell is built, not later at ``init``."""
    _check_choice("recurrent initializer", recurrent, RECURRENT_INITS)
    if spectral_norm is not None and not spectral_norm > 0:
        raise ValueError(f"spectral_norm must be positive (it is sigma_max of each W_h block), got {spectral_norm}")


def _init_weights(key, input_size, hidden_size, gates, *, param_dtype, recurrent, spectral_norm):
    k_x, k_h = jax.random.split(key)
    return {
        "w_x": input_init(k_x, (input_size, gates * hidden_size), param_dtype),
        "w_h": recurrent_init(
            k_h, hidden_size, gates, param_dtype, kind=recurrent, spectral_norm=spectral_norm
        ),
    }


def rnn(
    hidden_size: int,
    *,
    activation: str = "tanh",
    recurrent: str = "orthogonal",
    spectral_norm: float | None = None,
    dtype: Any = jnp.float32,
    param_dtype: Any = jnp.float32,
) -> Cell:
    """Elman RNN cell.

    .. math::  h_t = \\phi(W_h h_{t-1} + W_x x_t + b), \\qquad \\phi \\in \\{\\tanh, \\mathrm{relu}\\}

    Args:
      hidden_size: width of ``h``.
      activation: ``"tanh"`` (default) or ``"relu"``.
      recurrent: initializer of ``W_h``: ``"orthogonal"``, ``"normal"`` (variance
        ``1/hidden``) or ``"identity"`` (IRNN, Le et al. 2015).
      spectral_norm: if set, ``W_h`` is rescaled so its largest singular value
        equals this number (for vanishing/exploding-gradient studies).
      dtype: computation dtype.  param_dtype: parameter storage dtype.
    """
    _check_choice("activation", activation, tuple(ACTIVATIONS))
    _check_weight_options(recurrent, spectral_norm)
    act = ACTIVATIONS[activation]

    def init(key: Array, input_size: int) -> Params:
        params = _init_weights(
            key, input_size, hidden_size, 1,
            param_dtype=param_dtype, recurrent=recurrent, spectral_norm=spectral_norm,
        )
        params["b"] = jnp.zeros((hidden_size,), param_dtype)
        return params

    def update(h: Array, z: Array) -> tuple[Array, Array]:
        h = act(z)
        return h, h

    recur, step = _gated(update, lambda h: h, dtype)
    return Cell(init, _zeros_carry(hidden_size, dtype), _affine_input(dtype), recur, step,
                _input_size, hidden_size, "rnn", rnn_bptt(activation, dtype))


def lstm(
    hidden_size: int,
    *,
    forget_bias: float = 1.0,
    recurrent: str = "orthogonal",
    spectral_norm: float | None = None,
    dtype: Any = jnp.float32,
    param_dtype: Any = jnp.float32,
) -> Cell:
    """Long short-term memory cell (Hochreiter & Schmidhuber 1997; forget gate of Gers et al. 2000).

    Gates act on ``[h_{t-1}, x_t]``; ``W_h``, ``W_x`` and ``b`` hold the four
    blocks in the order i, f, g, o (PyTorch's order):

    .. math::
        i_t &= \\sigma(W_{hi} h_{t-1} + W_{xi} x_t + b_i) \\\\
        f_t &= \\sigma(W_{hf} h_{t-1} + W_{xf} x_t + b_f) \\\\
        g_t &= \\tanh(W_{hg} h_{t-1} + W_{xg} x_t + b_g) \\\\
        o_t &= \\sigma(W_{ho} h_{t-1} + W_{xo} x_t + b_o) \\\\
        c_t &= f_t \\odot c_{t-1} + i_t \\odot g_t \\\\
        h_t &= o_t \\odot \\tanh(c_t)

    The carry is ``LSTMCarry(h, c)``; the output is ``h_t``.

    Args:
      forget_bias: initial value of ``b_f`` (default 1.0, Jozefowicz et al. 2015).
      recurrent, spectral_norm, dtype, param_dtype: as for :func:`rnn`; the
        recurrent initializer applies to each gate's ``hidden x hidden`` block.
    """
    _check_weight_options(recurrent, spectral_norm)
    H = hidden_size

    def init(key: Array, input_size: int) -> Params:
        params = _init_weights(
            key, input_size, H, 4,
            param_dtype=param_dtype, recurrent=recurrent, spectral_norm=spectral_norm,
        )
        params["b"] = jnp.zeros((4 * H,), param_dtype).at[H : 2 * H].set(forget_bias)
        return params

    def initial_carry(batch_shape: tuple[int, ...]) -> LSTMCarry:
        zeros = jnp.zeros((*batch_shape, H), dtype)
        return LSTMCarry(h=zeros, c=zeros)

    def update(carry: LSTMCarry, z: Array) -> tuple[LSTMCarry, Array]:
        return lstm_update(carry, z)[:2]

    recur, step = _gated(update, lambda carry: carry.h, dtype)
    return Cell(init, initial_carry, _affine_input(dtype), recur, step, _input_size, H, "lstm", lstm_bptt(dtype))


GRU_VARIANTS = ("reset_after", "cho")


def gru(
    hidden_size: int,
    *,
    variant: str = "reset_after",
    recurrent: str = "orthogonal",
    spectral_norm: float | None = None,
    dtype: Any = jnp.float32,
    param_dtype: Any = jnp.float32,
) -> Cell:
    """Gated recurrent unit, in two variants; blocks are ordered r, z, n.

    ``variant="cho"`` — the original equations (Cho et al. 2014, in the
    notation of Chung et al. 2014): the reset gate acts on ``h`` *before* the
    candidate's matmul.

    .. math::
        r_t &= \\sigma(W_{hr} h_{t-1} + W_{xr} x_t + b_r) \\\\
        z_t &= \\sigma(W_{hz} h_{t-1} + W_{xz} x_t + b_z) \\\\
        \\tilde h_t &= \\tanh(W_{hn} (r_t \\odot h_{t-1}) + W_{xn} x_t + b_n) \\\\
        h_t &= (1 - z_t) \\odot h_{t-1} + z_t \\odot \\tilde h_t

    ``variant="reset_after"`` (default) — the cuDNN / PyTorch ``nn.GRU`` / Flax
    ``GRUCell`` form: the reset gate multiplies the recurrent matmul's result,
    which has its own bias ``b_hn``, and ``z`` weighs the *old* state.

    .. math::
        n_t &= \\tanh(W_{xn} x_t + b_n + r_t \\odot (W_{hn} h_{t-1} + b_{hn})) \\\\
        h_t &= (1 - z_t) \\odot n_t + z_t \\odot h_{t-1}

    Both variants have the same parameter shapes but ``b_hn`` (reset-after only).
    """
    _check_choice("GRU variant", variant, GRU_VARIANTS)
    _check_weight_options(recurrent, spectral_norm)
    H = hidden_size

    def init(key: Array, input_size: int) -> Params:
        params = _init_weights(
            key, input_size, H, 3,
            param_dtype=param_dtype, recurrent=recurrent, spectral_norm=spectral_norm,
        )
        params["b"] = jnp.zeros((3 * H,), param_dtype)
        if variant == "reset_after":
            params["b_hn"] = jnp.zeros((H,), param_dtype)
        return params

    def recur_cho(params: Params, h: Array, xp: Array) -> tuple[Array, Array]:
        w_h = params["w_h"].astype(dtype)
        x_rz, x_n = xp[..., : 2 * H], xp[..., 2 * H :]
        r, z = jnp.split(jax.nn.sigmoid(x_rz + h @ w_h[:, : 2 * H]), 2, axis=-1)
        n = jnp.tanh(x_n + (r * h) @ w_h[:, 2 * H :])
        h = (1.0 - z) * h + z * n
        return h, h

    def recur_reset_after(params: Params, h: Array, xp: Array) -> tuple[Array, Array]:
        return gru_reset_after_update(params, h, xp, dtype)[:2]  # all three blocks' W_h h in one matmul

    input_proj = _affine_input(dtype)
    recur = recur_cho if variant == "cho" else recur_reset_after
    fused = gru_reset_after_bptt(input_proj, dtype) if variant == "reset_after" else None
    return Cell(init, _zeros_carry(H, dtype), input_proj, recur,
                _compose_step(input_proj, recur), _input_size, H, "gru", fused)


CELLS: dict[str, Callable[..., Cell]] = {"rnn": rnn, "lstm": lstm, "gru": gru}


def make_cell(name: str, hidden_size: int, **options: Any) -> Cell:
    """Build a cell by name (``"rnn"``, ``"lstm"``, ``"gru"``) with its options."""
    _check_choice("cell", name, tuple(CELLS))
    try:
        return CELLS[name](hidden_size, **options)
    except TypeError as e:  # an unknown keyword option
        raise ValueError(f"unknown option for cell {name!r}: {e}") from None
