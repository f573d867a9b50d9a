"""Hawk (De et al. 2024, Griffin): residual blocks of the RG-LRU recurrent block and a gated MLP.

The RG-LRU on ``x_t [D_rnn]`` (the convolution's output), with block-diagonal gates (``n_heads`` blocks)::

    r_t = sigmoid(W_a x_t + b_a),   i_t = sigmoid(W_x x_t + b_x)
    log a_t = -c r_t softplus(Lambda)          (a_t = sigmoid(-Lambda)^(c r_t), c = 8)
    h_t = (1 - rho_t) a_t h_{t-1} + (rho_t + (1 - rho_t) sqrt(1 - a_t^2)) (i_t x_t)

``rho_t = 1`` where a document starts: at ``t = 0`` of the parallel form, as in recurrentgemma, whose
``segment_pos = 0`` there, and wherever ``resets`` marks a packed document's first token (the conv's taps
are cut there too); the step form carries that flag. The recurrent block and the layer::

    out = W_o(RG-LRU(conv1d_4(W_x u)) * GELU(W_y u))
    r   = u + RecurrentBlock(RMSNorm(u));   y = r + MLP(RMSNorm(r)),   MLP = W_d(GELU(W_1 v) * W_2 v)

``Lambda`` (``a_param``) is initialized as recurrentgemma's code does: ``a = sigmoid(-Lambda)`` has
``a^2 ~ U[min_rad^2, max_rad^2]``, so the base ``a`` lies in ``[0.9, 0.999]`` (the paper words it as
``a^c`` in that range; the code is what was trained, so we follow it). Gate weights ``~ N(0, 1/D_rnn)``,
biases 0, conv weights ``~ N(0, 0.01/4)``. ``a_param`` is the ``"ssm"`` group (``optim.ssm_lr``, no weight
decay). Step state: ``(conv buffer [batch, 3, D_rnn], h [batch, D_rnn], fresh [batch])``; the chunk form runs the
parallel form over a chunk from it (``rho = 1`` at its first token where ``fresh``).

Precision: projections, conv and MLP in ``dtype``; gates, ``a_t`` and the scan at least float32.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax.errors import (
    COUNT,
    DROPOUT,
    POSITIVE,
    Range,
    UserError,
    check_fields,
    check_range,
    checked,
)
from seqjax.models.blocks import (
    NORMS,
    CausalConv,
    FeedForward,
    ResidualStack,
    named_param_labels,
)
from seqjax.models.precision import BlockDtypes, check_precision, dtypes
from seqjax.models.registry import register_backbone
from seqjax.ops.linear_scan import METHODS, linear_scan
from seqjax.typing import Array

MAX_SQRT_GRADIENT = 1000.0  # recurrentgemma caps d sqrt(v)/dv there (at v = 1 / (4 * 1000^2))


# d sqrt(v) = dv / (2 sqrt(max(v, 1 / (4 M^2)))): the derivative capped at M = MAX_SQRT_GRADIENT
@jax.custom_jvp
def sqrt_bounded_derivative(v: Array) -> Array:
    """``sqrt(v)`` whose derivative is at most ``MAX_SQRT_GRADIENT`` (finite at ``v = 0``).

    >>> round(float(jax.grad(sqrt_bounded_derivative)(0.0)))
    1000
    """
    return jnp.sqrt(v)


@sqrt_bounded_derivative.defjvp
def _sqrt_jvp(primals: tuple[Array], tangents: tuple[Array]) -> tuple[Array, Array]:
    (v,), (dv,) = primals, tangents
    floor = 1.0 / (4.0 * MAX_SQRT_GRADIENT**2)
    return jnp.sqrt(v), dv * 0.5 / jnp.sqrt(jnp.maximum(v, floor))


# a^2 ~ U[min_rad^2, max_rad^2],  Lambda = log(1/a - 1)   (so a = sigmoid(-Lambda))
def a_param_init(min_rad: float, max_rad: float):
    """Initializer of ``Lambda`` with the base decay ``a = sigmoid(-Lambda)`` in ``[min_rad, max_rad]``.

    >>> lam = a_param_init(0.9, 0.999)(jax.random.key(0), (1000,))
    >>> a = jax.nn.sigmoid(-lam)
    >>> bool((a.min() >= 0.9 - 1e-6) & (a.max() <= 0.999 + 1e-6))
    True
    """

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
        a = jnp.sqrt(jax.random.uniform(key, shape, dtype, min_rad**2, max_rad**2))
        return jnp.log(1.0 / a - 1.0)

    return init


# log a_t = -c r_t softplus(Lambda);  b_t = (rho_t + (1 - rho_t) sqrt(1 - a_t^2)) i_t x_t
def rg_lru_coefficients(x: Array, r: Array, i: Array, a_param: Array, c: float, starts: Array) -> tuple[Array, Array]:
    """``(a, b)`` of ``h_t = a_t h_{t-1} + b_t`` (``a_t`` to be zeroed at ``starts [batch, T]`` by the scan).

    >>> a, b = rg_lru_coefficients(jnp.ones((1, 2, 1)), jnp.ones((1, 2, 1)), jnp.ones((1, 2, 1)),
    ...                            jnp.zeros(1), 1.0, jnp.array([[True, False]]))
    >>> a[0, :, 0], b[0, :, 0]  # a = sigmoid(0) = 0.5; b = 1 at the start, sqrt(1 - 0.25) after
    (Array([0.5, 0.5], dtype=float32), Array([1.       , 0.8660254], dtype=float32))
    """
    log_a = -c * r * jax.nn.softplus(a_param)
    scale = jnp.where(starts[..., None], 1.0, sqrt_bounded_derivative(-jnp.expm1(2.0 * log_a)))
    return jnp.exp(log_a), scale * i * x


class RGLRUBlock(BlockDtypes, nn.Module):
    """Griffin's recurrent block ``d_model -> d_rnn -> d_model`` (equations in the module docstring).

    >>> block = RGLRUBlock(d_model=4, d_rnn=6, n_heads=2)
    >>> u = jnp.ones((2, 5, 4))
    >>> params = block.init(jax.random.key(0), u)
    >>> block.apply(params, u).shape
    (2, 5, 4)
    """

    d_model: int
    d_rnn: int
    n_heads: int = 1
    d_conv: int = 4
    c: float = 8.0
    min_rad: float = 0.9
    max_rad: float = 0.999
    scan_method: str = "auto"
    chunk_size: int = 128
    dtype: Any = None  # compute dtype; None: param_dtype
    param_dtype: Any = jnp.float32

    def setup(self) -> None:
        d, pd = self.d_rnn, self.param_dtype
        dense = dict(dtype=self._dtype(), param_dtype=pd)
        self.linear_x, self.linear_y = nn.Dense(d, **dense), nn.Dense(d, **dense)
        self.conv = CausalConv(d, self.d_conv, depthwise=True, kernel_init=nn.initializers.normal((0.01 / 4) ** 0.5),
                               **dense)
        block = (self.n_heads, d // self.n_heads, d // self.n_heads)
        gate_w, zeros = nn.initializers.normal(d**-0.5), nn.initializers.zeros
        self.gate_a_w, self.gate_x_w = (self.param(n, gate_w, block, pd) for n in ("gate_a_w", "gate_x_w"))
        self.gate_a_b, self.gate_x_b = (self.param(n, zeros, block[:2], pd) for n in ("gate_a_b", "gate_x_b"))
        self.a_param = self.param("a_param", a_param_init(self.min_rad, self.max_rad), (d,), pd)
        self.linear_out = nn.Dense(self.d_model, **dense)

    def _gate(self, x: Array, w: Array, b: Array) -> Array:
        """``sigmoid(W x + b)`` with block-diagonal ``W [heads, d/heads, d/heads]``."""
        xh = x.reshape(*x.shape[:-1], self.n_heads, -1)
        real = self._real()
        y = jnp.einsum("...hi,hij->...hj", xh, w.astype(real)) + b.astype(real)
        return nn.sigmoid(y).reshape(x.shape)

    def _rg_lru(self, x: Array, h0: Array | None, starts: Array, method: str) -> tuple[Array, Array]:
        """``x [batch, T, d_rnn]`` -> ``(h [batch, T, d_rnn], h_T)``; ``starts [batch, T]`` are the ``rho_t``."""
        x = x.astype(self._real())
        r, i = self._gate(x, self.gate_a_w, self.gate_a_b), self._gate(x, self.gate_x_w, self.gate_x_b)
        a, b = rg_lru_coefficients(x, r, i, self.a_param.astype(self._real()), self.c, starts)
        return linear_scan(a, b, h0, method=method, chunk_size=self.chunk_size, resets=starts, return_state=True)

    def __call__(self, u: Array, resets: Array | None = None) -> Array:
        """``u [batch, T, d_model] -> same``; ``resets [batch, T]`` start packed documents."""
        starts = self._starts(u, True, resets)
        h, _ = self._rg_lru(self.conv(self.linear_x(u), resets=resets), None, starts, self.scan_method)
        return self.linear_out(h.astype(self._dtype()) * nn.gelu(self.linear_y(u)))

    @staticmethod
    def _starts(u: Array, first: Array | bool, resets: Array | None) -> Array:
        """The ``rho_t [batch, T]``: ``resets``, and ``first`` at ``t = 0``."""
        starts = jnp.zeros(u.shape[:2], bool) if resets is None else jnp.asarray(resets, bool)
        return starts.at[:, 0].set(starts[:, 0] | first)

    def initial_state(self, batch_size: int) -> tuple[Array, Array, Array]:
        return (self.conv.initial_state(batch_size, self.d_rnn), jnp.zeros((batch_size, self.d_rnn), self._real()),
                jnp.ones((batch_size,), bool))

    def step(self, state: tuple[Array, Array, Array], u_t: Array) -> tuple[tuple[Array, Array, Array], Array]:
        """One token from ``(conv buffer, h, fresh)``: a fresh state starts a document (``rho = 1``)."""
        state, out = self.chunk(state, u_t[:, None])
        return state, out[:, 0]

    def chunk(
        self, state: tuple[Array, Array, Array], u: Array, resets: Array | None = None
    ) -> tuple[tuple[Array, Array, Array], Array]:
        """A chunk ``u [batch, T, d_model]`` from ``(conv buffer, h, fresh)``, in the parallel form."""
        buffer, h, fresh = state
        buffer, x = self.conv.chunk(buffer, self.linear_x(u), resets)
        starts = self._starts(u, fresh, resets)
        hs, h = self._rg_lru(x, h, starts, self.scan_method)
        out = self.linear_out(hs.astype(self._dtype()) * nn.gelu(self.linear_y(u)))
        return (buffer, h, jnp.zeros_like(fresh)), out


@dataclasses.dataclass
class HawkOptions:
    """``n_layers`` Hawk layers (an RG-LRU block then a gated MLP, each pre-RMSNorm residual) of width ``d_model``."""

    d_model: int = checked(64, COUNT)
    n_layers: int = checked(2, COUNT)
    d_rnn: Optional[int] = checked(None, COUNT)  # the recurrence width; unset: round(4/3 d_model)
    n_heads: int = checked(1, COUNT)  # blocks of the block-diagonal gates (must divide d_rnn)
    d_conv: int = checked(4, COUNT)
    mlp_ratio: int = checked(3, COUNT)  # MLP hidden width / d_model
    c: float = checked(8.0, POSITIVE)
    min_rad: float = checked(0.9, Range(0, 1, lo_open=True, hi_open=True))
    max_rad: float = checked(0.999, Range(0, 1, lo_open=True, hi_open=True))
    norm: str = checked("rms", choices=NORMS)
    dropout: float = checked(0.0, DROPOUT)
    scan_method: str = checked("auto", choices=METHODS)  # linear_scan method
    chunk_size: int = checked(128, COUNT)  # for scan_method=chunked
    dtype: Optional[str] = None  # compute dtype (seqjax.models.precision); unset: param_dtype
    param_dtype: str = "float32"

    def __post_init__(self) -> None:
        check_fields(self, "hawk")
        check_range("max_rad", self.max_rad, self.min_rad, where="hawk")
        if self.width() % self.n_heads:
            raise UserError(f"hawk: n_heads={self.n_heads} must divide the recurrence width d_rnn={self.width()}")
        check_precision("hawk", self)

    def width(self) -> int:
        return self.d_rnn or round(4 * self.d_model / 3)


@register_backbone("hawk", HawkOptions, param_labels=named_param_labels(frozenset({"a_param"})))
def build_hawk(opts: HawkOptions) -> nn.Module:
    block = dict(d_model=opts.d_model, d_rnn=opts.width(), n_heads=opts.n_heads, d_conv=opts.d_conv, c=opts.c,
                 min_rad=opts.min_rad, max_rad=opts.max_rad, scan_method=opts.scan_method,
                 chunk_size=opts.chunk_size, **dtypes(opts))
    mlp = dict(hidden=opts.mlp_ratio * opts.d_model, gated=True, **dtypes(opts))
    blocks = [b for _ in range(opts.n_layers) for b in (RGLRUBlock(**block), FeedForward(**mlp))]
    return ResidualStack(blocks=blocks, d_model=opts.d_model, norm=opts.norm, dropout=opts.dropout, **dtypes(opts))
