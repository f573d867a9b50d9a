"""The Mamba-2 block (Dao & Gu 2024), ``[batch, time, d_model] -> same``::

    z, x, B, C, dt = split(W_in u)               ([d_inner], [d_inner], [G N], [G N], [H]; no bias)
    x, B, C = silu(causal_depthwise_conv1d([x, B, C]))                        (kernel d_conv, with bias)
    dt = softplus(dt + b_dt),  A = -exp(A_log)                                (one scalar A per head)
    H_t = exp(dt_t A) H_{t-1} + (dt_t x_t) B_t^T,  y_t = H_t C_t + D x_t      (per head: x_t [P], B_t, C_t [N])
    out = W_out(RMSNorm_G(y * silu(z)) * w)                                   (gate, then norm over each group)

``H = d_inner / head_dim`` heads, ``G = n_groups`` groups of ``B, C`` (head ``h`` reads group
``h // (H / G)``). The parallel form is SSD's chunked matrix form (:func:`~seqjax.ops.ssd.ssd`, chunks of
``chunk_size``); the step form is the same function on one token from the carried state, and the chunk form on
a chunk of any length.
Initialization as the reference: ``A = -U[1, 16]``, ``b_dt = softplus^{-1}(dt_0)`` with ``dt_0``
log-uniform in ``[dt_min, dt_max]``, ``D = 1``, ``w = 1``. ``A_log, dt_bias, D`` are the ``"ssm"`` group
(``optim.ssm_lr``, no weight decay). The step form carries ``(conv buffer [batch, d_conv - 1, d_inner + 2 G N],
H [batch, heads, head_dim, N])``.

Precision: projections and the convolution in ``dtype``; SSD, its state and the gated norm at least float32.
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
    UserError,
    check_fields,
    check_range,
    checked,
)
from seqjax.models.blocks import NORMS, CausalConv, ResidualStack, named_param_labels
from seqjax.models.mamba import dt_bias_init
from seqjax.models.precision import BlockDtypes, check_precision, dtypes
from seqjax.models.registry import register_backbone
from seqjax.ops.ssd import ssd
from seqjax.typing import Array

MAMBA2_PARAM_NAMES = frozenset({"A_log", "dt_bias", "D"})
RMS_EPS = 1e-5


# RMSNorm_G(v) = v / sqrt(mean_group(v^2) + eps) * w, the mean over each of G groups of d_inner / G
def group_rms_norm(v: Array, weight: Array, groups: int) -> Array:
    """Normalize each of ``groups`` contiguous groups of the last axis by its RMS, then scale by ``weight``.

    >>> group_rms_norm(jnp.array([[3.0, 3.0, 1.0, 1.0]]), jnp.ones(4), 2).round(3)
    Array([[1., 1., 1., 1.]], dtype=float32)
    """
    g = v.reshape(*v.shape[:-1], groups, -1)
    g = g * jax.lax.rsqrt(jnp.mean(g * g, axis=-1, keepdims=True) + RMS_EPS)
    return g.reshape(v.shape) * weight


class Mamba2Block(BlockDtypes, nn.Module):
    """One Mamba-2 block (equations in the module docstring).

    >>> block = Mamba2Block(d_model=4, d_state=3, head_dim=2, n_groups=2, chunk_size=2)
    >>> u = jnp.ones((2, 5, 4))
    >>> params = block.init(jax.random.key(0), u)
    >>> block.apply(params, u).shape
    (2, 5, 4)
    """

    d_model: int
    d_state: int = 64
    d_conv: int = 4
    expand: int = 2
    head_dim: int = 64
    n_groups: int = 1
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    chunk_size: int = 64
    dtype: Any = None  # compute dtype; None: param_dtype
    param_dtype: Any = jnp.float32

    def setup(self) -> None:
        d_inner, heads, pd = self._d_inner(), self._heads(), self.param_dtype
        dense = dict(use_bias=False, dtype=self._dtype(), param_dtype=pd)
        self.in_proj = nn.Dense(2 * d_inner + 2 * self.n_groups * self.d_state + heads, **dense)
        self.conv = CausalConv(self._conv_dim(), self.d_conv, depthwise=True, dtype=self._dtype(), param_dtype=pd)
        self.dt_bias = self.param("dt_bias", dt_bias_init(self.dt_min, self.dt_max), (heads,), pd)
        self.A_log = self.param("A_log", lambda k: jnp.log(jax.random.uniform(k, (heads,), pd, 1.0, 16.0)))
        self.D = self.param("D", nn.initializers.ones, (heads,), pd)
        self.norm_weight = self.param("norm_weight", nn.initializers.ones, (d_inner,), pd)
        self.out_proj = nn.Dense(self.d_model, **dense)

    def _d_inner(self) -> int:
        return self.expand * self.d_model

    def _heads(self) -> int:
        return self._d_inner() // self.head_dim

    def _conv_dim(self) -> int:
        return self._d_inner() + 2 * self.n_groups * self.d_state

    def _split(self, u: Array) -> tuple[Array, Array, Array]:
        """``W_in u -> (z, xbc, dt)``: ``xbc = [x, B, C]`` goes through the convolution."""
        return tuple(jnp.split(self.in_proj(u), [self._d_inner(), self._d_inner() + self._conv_dim()], axis=-1))

    def _mix(
        self, z: Array, xbc: Array, dt: Array, h0: Array | None, chunk_size: int, resets: Array | None = None
    ) -> tuple[Array, Array]:
        """``xbc`` after conv and SiLU, ``z, dt [batch, T, .]`` -> ``(out [batch, T, d_model], H_T)``; ``H`` restarts
        at 0 at ``resets``."""
        real, heads, gn = self._real(), self._heads(), self.n_groups * self.d_state
        x, b, c = jnp.split(xbc.astype(real), [self._d_inner(), self._d_inner() + gn], axis=-1)
        x = x.reshape(*x.shape[:2], heads, self.head_dim)
        per_head = lambda m: jnp.repeat(m.reshape(*m.shape[:2], self.n_groups, self.d_state),  # noqa: E731
                                        heads // self.n_groups, axis=2)
        dt = nn.softplus(dt.astype(real) + self.dt_bias.astype(real))  # [batch, T, H]
        alpha = dt * -jnp.exp(self.A_log.astype(real))
        y, h = ssd(x * dt[..., None], alpha, per_head(b), per_head(c), h0, chunk_size=chunk_size, resets=resets)
        y = (y + self.D.astype(real)[:, None] * x).reshape(*y.shape[:2], -1)
        y = group_rms_norm(y * nn.silu(z.astype(real)), self.norm_weight.astype(real), self.n_groups)
        return self.out_proj(y.astype(self._dtype())), h

    def __call__(self, u: Array, resets: Array | None = None) -> Array:
        """``u [batch, T, d_model] -> same``; ``resets [batch, T]`` start packed sequences: no conv tap and no state
        crosses one (SSD's decay mask cut there)."""
        z, xbc, dt = self._split(u)
        return self._mix(z, nn.silu(self.conv(xbc, resets=resets)), dt, None, self.chunk_size, resets)[0]

    def initial_state(self, batch_size: int) -> tuple[Array, Array]:
        return (self.conv.initial_state(batch_size, self._conv_dim()),
                jnp.zeros((batch_size, self._heads(), self.head_dim, self.d_state), self._real()))

    def step(self, state: tuple[Array, Array], u_t: Array) -> tuple[tuple[Array, Array], Array]:
        """One token ``u_t [batch, d_model]``: the same equations with ``T = 1`` from the carried state."""
        buffer, h = state
        z, xbc, dt = self._split(u_t)
        buffer, xbc = self.conv.step(buffer, xbc)
        out, h = self._mix(z[:, None], nn.silu(xbc)[:, None], dt[:, None], h, 1)
        return (buffer, h), out[:, 0]

    def chunk(
        self, state: tuple[Array, Array], u: Array, resets: Array | None = None
    ) -> tuple[tuple[Array, Array], Array]:
        """A chunk ``u [batch, T, d_model]``: SSD's chunked form after the buffered conv inputs, from ``H``."""
        buffer, h = state
        z, xbc, dt = self._split(u)
        buffer, xbc = self.conv.chunk(buffer, xbc, resets)
        out, h = self._mix(z, nn.silu(xbc), dt, h, self.chunk_size, resets)
        return (buffer, h), out


@dataclasses.dataclass
class Mamba2Options:
    """``n_layers`` pre-norm residual Mamba-2 blocks of width ``d_model`` (no MLP, as the reference LM)."""

    d_model: int = checked(64, COUNT)
    n_layers: int = checked(2, COUNT)
    d_state: int = checked(64, COUNT)
    d_conv: int = checked(4, COUNT)
    expand: int = checked(2, COUNT)
    head_dim: int = checked(32, COUNT)  # P; heads = expand d_model / head_dim
    n_groups: int = checked(1, COUNT)  # groups of B, C (must divide the heads)
    dt_min: float = checked(1e-3, POSITIVE)
    dt_max: float = checked(1e-1, POSITIVE)
    chunk_size: int = checked(64, COUNT)  # SSD chunk length Q
    norm: str = checked("rms", choices=NORMS)
    dropout: float = checked(0.0, DROPOUT)
    dtype: Optional[str] = None  # compute dtype (seqjax.models.precision); unset: param_dtype
    param_dtype: str = "float32"

    def __post_init__(self) -> None:
        check_fields(self, "mamba2")
        check_range("dt_max", self.dt_max, self.dt_min, where="mamba2")
        d_inner = self.expand * self.d_model
        if d_inner % self.head_dim or (d_inner // self.head_dim) % self.n_groups:
            raise UserError(f"mamba2: head_dim={self.head_dim} must divide expand * d_model = {d_inner} into heads "
                            f"that n_groups={self.n_groups} divides")
        check_precision("mamba2", self)


@register_backbone("mamba2", Mamba2Options, param_labels=named_param_labels(MAMBA2_PARAM_NAMES))
def build_mamba2(opts: Mamba2Options) -> nn.Module:
    block = dict(d_model=opts.d_model, d_state=opts.d_state, d_conv=opts.d_conv, expand=opts.expand,
                 head_dim=opts.head_dim, n_groups=opts.n_groups, dt_min=opts.dt_min, dt_max=opts.dt_max,
                 chunk_size=opts.chunk_size, **dtypes(opts))
    blocks = [Mamba2Block(**block) for _ in range(opts.n_layers)]
    return ResidualStack(blocks=blocks, d_model=opts.d_model, norm=opts.norm, dropout=opts.dropout, **dtypes(opts))
