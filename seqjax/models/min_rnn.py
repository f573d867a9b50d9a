"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): gates that see only the input.

With ``g(v) = v + 1/2`` for ``v >= 0`` and ``sigmoid(v)`` below (positive and continuous)::

    minGRU:   z_t = sigmoid(k_t),  h_t = (1 - z_t) h_{t-1} + z_t g(k~_t)
    minLSTM:  f'_t, i'_t = f_t / (f_t + i_t), i_t / (f_t + i_t)  (f, i = sigmoid(k^f), sigmoid(k^i))
              h_t = f'_t h_{t-1} + i'_t g(k~_t)

``[k, k~]`` (``[k^f, k^i, k~]``) is one bias-free projection of ``x_t`` to ``expansion * d_model`` per
gate. The parallel form scans the logarithms (:func:`~seqjax.ops.linear_scan.log_linear_scan`):
``log a = -softplus(k)``, ``log b = -softplus(-k) + log g(k~)`` (minGRU), or with
``delta = softplus(-k^f) - softplus(-k^i)``: ``log f' = -softplus(delta)``, ``log b = -softplus(-delta) +
log g(k~)`` (minLSTM), so ``h > 0`` is never formed from a long product. The step form is the linear
recurrence above, written again in linear space; it starts from ``h = 0`` (the parallel form's empty
state, ``log h_0 = -inf``: no prefix term). The chunk form is the parallel form from a carried ``h``
(``log h_0 = log h``). Layers follow lucidrains' minLM: a pre-RMSNorm residual
minRNN with an output projection, then a pre-RMSNorm residual feed-forward ``d -> 4d -> d`` (GELU).

Precision: projections in ``dtype``; gates, the scan and the state at least float32.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax.errors import COUNT, DROPOUT, POSITIVE, check_fields, checked
from seqjax.models.blocks import NORMS, FeedForward, ResidualStack
from seqjax.models.precision import BlockDtypes, check_precision, dtypes
from seqjax.models.registry import register_backbone
from seqjax.ops.linear_scan import METHODS, log_linear_scan
from seqjax.typing import Array


# g(v) = v + 1/2 (v >= 0), sigmoid(v) (v < 0)
def g(v: Array) -> Array:
    """The positive activation of the candidate state.

    >>> g(jnp.array([-100.0, 0.0, 1.0]))
    Array([0. , 0.5, 1.5], dtype=float32)
    """
    return jnp.where(v >= 0, v + 0.5, jax.nn.sigmoid(v))


# log g(v) = log(max(v, 0) + 1/2) (v >= 0), -softplus(-v) (v < 0)
def log_g(v: Array) -> Array:
    """``log g(v)``, finite for every ``v``.

    >>> log_g(jnp.array([-100.0, 0.5]))
    Array([-100.,    0.], dtype=float32)
    """
    return jnp.where(v >= 0, jnp.log(jnp.maximum(v, 0.0) + 0.5), -jax.nn.softplus(-v))


# minGRU: log a_t = log(1 - z_t) = -softplus(k_t),  log b_t = log z_t + log g(k~_t) = -softplus(-k_t) + log g(k~_t)
def min_gru_logs(gates: Array) -> tuple[Array, Array]:
    """``gates [..., 2 n] = [k, k~]`` -> ``(log a, log b) [..., n]``.

    >>> log_a, log_b = min_gru_logs(jnp.zeros(2))  # z = 1/2, g(0) = 1/2
    >>> jnp.exp(log_a), jnp.exp(log_b)
    (Array([0.5], dtype=float32), Array([0.25], dtype=float32))
    """
    k, cand = jnp.split(gates, 2, axis=-1)
    return -jax.nn.softplus(k), -jax.nn.softplus(-k) + log_g(cand)


# minLSTM: delta = softplus(-k^f) - softplus(-k^i);  log f' = -softplus(delta);  log b = -softplus(-delta) + log g(k~)
def min_lstm_logs(gates: Array) -> tuple[Array, Array]:
    """``gates [..., 3 n] = [k^f, k^i, k~]`` -> ``(log f', log i' + log g(k~)) [..., n]``.

    >>> log_f, log_b = min_lstm_logs(jnp.zeros(3))  # f = i: f' = i' = 1/2
    >>> jnp.exp(log_f), jnp.exp(log_b)
    (Array([0.5], dtype=float32), Array([0.25], dtype=float32))
    """
    k_f, k_i, cand = jnp.split(gates, 3, axis=-1)
    delta = jax.nn.softplus(-k_f) - jax.nn.softplus(-k_i)
    return -jax.nn.softplus(delta), -jax.nn.softplus(-delta) + log_g(cand)


# minGRU step: h_t = (1 - z_t) h_{t-1} + z_t g(k~_t)
def min_gru_step(h: Array, gates: Array) -> Array:
    """One token in linear space.

    >>> min_gru_step(jnp.ones(1), jnp.zeros(2))  # (1 - 1/2) 1 + 1/2 * 1/2
    Array([0.75], dtype=float32)
    """
    k, cand = jnp.split(gates, 2, axis=-1)
    z = jax.nn.sigmoid(k)
    return (1.0 - z) * h + z * g(cand)


# minLSTM step: h_t = f_t / (f_t + i_t) h_{t-1} + i_t / (f_t + i_t) g(k~_t)
def min_lstm_step(h: Array, gates: Array) -> Array:
    """One token in linear space.

    >>> min_lstm_step(jnp.ones(1), jnp.zeros(3))  # f' = i' = 1/2: 1/2 + 1/2 * 1/2
    Array([0.75], dtype=float32)
    """
    k_f, k_i, cand = jnp.split(gates, 3, axis=-1)
    f, i = jax.nn.sigmoid(k_f), jax.nn.sigmoid(k_i)
    return (f * h + i * g(cand)) / (f + i)


CELLS: dict[str, tuple[int, Callable[[Array], tuple[Array, Array]], Callable[[Array, Array], Array]]] = {
    "gru": (2, min_gru_logs, min_gru_step),  # (gates per unit, parallel form, step form)
    "lstm": (3, min_lstm_logs, min_lstm_step),
}


class MinRNN(BlockDtypes, nn.Module):
    """A minGRU / minLSTM layer ``d_model -> expansion d_model -> d_model`` (equations in the module docstring).

    >>> layer = MinRNN(d_model=4, cell="lstm")
    >>> x = jnp.ones((2, 5, 4))
    >>> params = layer.init(jax.random.key(0), x)
    >>> layer.apply(params, x).shape
    (2, 5, 4)
    """

    d_model: int
    cell: str = "gru"  # "gru" or "lstm"
    expansion: float = 1.5
    scan_method: str = "auto"
    chunk_size: int = 128
    dtype: Any = None  # compute dtype; None: param_dtype
    param_dtype: Any = jnp.float32

    def setup(self) -> None:
        dense = dict(use_bias=False, dtype=self._dtype(), param_dtype=self.param_dtype)
        self.to_gates = nn.Dense(CELLS[self.cell][0] * self._hidden(), **dense)
        self.to_out = nn.Dense(self.d_model, **dense)

    def _hidden(self) -> int:
        return int(self.expansion * self.d_model)

    def __call__(self, x: Array, resets: Array | None = None) -> Array:
        """``x [batch, T, d_model] -> same``; ``resets [batch, T]`` start packed sequences (each from ``h = 0``)."""
        log_a, log_b = CELLS[self.cell][1](self.to_gates(x).astype(self._real()))
        log_h = log_linear_scan(log_a, log_b, method=self.scan_method, chunk_size=self.chunk_size, resets=resets)
        return self.to_out(jnp.exp(log_h).astype(self._dtype()))

    def initial_state(self, batch_size: int) -> Array:
        return jnp.zeros((batch_size, self._hidden()), self._real())

    def step(self, state: Array, x_t: Array) -> tuple[Array, Array]:
        h = CELLS[self.cell][2](state, self.to_gates(x_t).astype(self._real()))
        return h, self.to_out(h.astype(self._dtype()))

    def chunk(self, state: Array, x: Array, resets: Array | None = None) -> tuple[Array, Array]:
        """A chunk ``x [batch, T, d_model]`` from the carried ``h`` (``h >= 0``), in log space."""
        log_a, log_b = CELLS[self.cell][1](self.to_gates(x).astype(self._real()))
        log_h, log_last = log_linear_scan(log_a, log_b, jnp.log(state), method=self.scan_method,
                                          chunk_size=self.chunk_size, resets=resets, return_state=True)
        return jnp.exp(log_last), self.to_out(jnp.exp(log_h).astype(self._dtype()))


@dataclasses.dataclass
class MinRNNOptions:
    """``n_layers`` minLM layers (minRNN then feed-forward, each pre-norm residual) of width ``d_model``."""

    d_model: int = checked(64, COUNT)
    n_layers: int = checked(2, COUNT)
    expansion: float = checked(1.5, POSITIVE)  # recurrence width / d_model
    ff_mult: int = checked(4, COUNT)  # feed-forward hidden width / d_model
    norm: str = checked("rms", choices=NORMS)
    dropout: float = checked(0.0, DROPOUT)
    scan_method: str = checked("auto", choices=METHODS)  # log_linear_scan method
    chunk_size: int = checked(128, COUNT)  # for scan_method=chunked
    dtype: Optional[str] = None  # compute dtype (seqjax.models.precision); unset: param_dtype
    param_dtype: str = "float32"

    def __post_init__(self) -> None:
        check_fields(self, "min_rnn")
        check_precision("min_rnn", self)


def build_min_rnn(cell: str, opts: MinRNNOptions) -> nn.Module:
    layer = dict(d_model=opts.d_model, cell=cell, expansion=opts.expansion, scan_method=opts.scan_method,
                 chunk_size=opts.chunk_size, **dtypes(opts))
    ff = dict(hidden=opts.ff_mult * opts.d_model, **dtypes(opts))
    blocks = [b for _ in range(opts.n_layers) for b in (MinRNN(**layer), FeedForward(**ff))]
    return ResidualStack(blocks=blocks, d_model=opts.d_model, norm=opts.norm, dropout=opts.dropout, **dtypes(opts))


@register_backbone("mingru", MinRNNOptions)
def build_mingru(opts: MinRNNOptions) -> nn.Module:
    return build_min_rnn("gru", opts)


@register_backbone("minlstm", MinRNNOptions)
def build_minlstm(opts: MinRNNOptions) -> nn.Module:
    return build_min_rnn("lstm", opts)
