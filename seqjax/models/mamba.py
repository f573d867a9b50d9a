"""The Mamba block (Gu & Dao 2023), ``[batch, time, d_model] -> same``::

    x, z = split(W_in u)                           (each [.., d_inner], d_inner = expand d_model)
    x    = silu(causal_depthwise_conv1d(x))        (kernel d_conv)
    dt   = softplus(W_dt (W_x x)[:R] + b_dt),  B = (W_x x)[R:R+N],  C = (W_x x)[R+N:]
    y    = selective_scan(x, dt, A = -exp(A_log), B, C, D)
    out  = W_out (y * silu(z))

Initialization as in the paper: ``A = -(1, 2, ..., N)`` per channel (S4D-real),
``b_dt = softplus^{-1}(dt_0)`` with ``dt_0`` log-uniform in
``[dt_min, dt_max]`` (floored at ``dt_floor``), ``W_dt ~ U(+-R^{-1/2})``,
``D = 1``. The step form carries ``(conv_state [batch, d_conv-1, d_inner],
ssm_state [batch, d_inner, N])``; the chunk form runs the parallel form over a chunk from that state.

Precision: parameters in ``param_dtype``; projections and the convolution compute in ``dtype``
(``None``: ``param_dtype``); the selective scan (its inputs, ``A`` and its state) runs in ``dtype``
promoted to at least float32, as the reference CUDA kernel does (:mod:`seqjax.models.precision`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from seqjax.errors import COUNT, DROPOUT, POSITIVE, check_fields, check_range, checked
from seqjax.models.blocks import NORMS, CausalConv, ResidualStack, ssm_param_labels
from seqjax.models.precision import check_precision, dtypes
from seqjax.models.registry import register_backbone
from seqjax.ops.selective_scan import METHODS, selective_scan
from seqjax.typing import Array


def dt_bias_init(dt_min: float, dt_max: float, dt_floor: float = 1e-4):
    """``b = softplus^{-1}(dt_0) = dt_0 + log(1 - exp(-dt_0))``, ``log dt_0 ~ U(log dt_min, log dt_max)``."""

    def init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> Array:
        dt = jnp.exp(jax.random.uniform(key, shape, dtype, np.log(dt_min), np.log(dt_max)))
        dt = jnp.maximum(dt, dt_floor)
        return dt + jnp.log(-jnp.expm1(-dt))

    return init


class MambaBlock(nn.Module):
    """One Mamba block (equations in the module docstring); ``chunk_size``/``scan_method`` go to the selective scan."""

    d_model: int
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: int | None = None  # default ceil(d_model / 16)
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    chunk_size: int | None = 16
    scan_method: str = "auto"
    dtype: Any = None  # compute dtype; None: param_dtype
    param_dtype: Any = jnp.float32

    def setup(self) -> None:
        d_inner = self.expand * self.d_model
        rank = self._rank()
        dtypes = dict(dtype=self._dtype(), param_dtype=self.param_dtype)
        self.in_proj = nn.Dense(2 * d_inner, use_bias=False, **dtypes)
        self.conv = CausalConv(d_inner, self.d_conv, depthwise=True, **dtypes)
        self.x_proj = nn.Dense(rank + 2 * self.d_state, use_bias=False, **dtypes)
        self.dt_proj = nn.Dense(
            d_inner,
            kernel_init=lambda k, shape, dtype=jnp.float32: jax.random.uniform(
                k, shape, dtype, -(rank**-0.5), rank**-0.5
            ),
            bias_init=dt_bias_init(self.dt_min, self.dt_max),
            **dtypes,
        )
        self.A_log = self.param(
            "A_log",
            lambda _: jnp.log(jnp.tile(jnp.arange(1, self.d_state + 1, dtype=self._init_dtype()), (d_inner, 1)))
            .astype(self.param_dtype),
        )
        self.D = self.param("D", nn.initializers.ones, (d_inner,), self.param_dtype)
        self.out_proj = nn.Dense(self.d_model, use_bias=False, **dtypes)

    def _rank(self) -> int:
        return self.dt_rank or math.ceil(self.d_model / 16)

    def _dtype(self) -> Any:
        return self.dtype or self.param_dtype

    def _init_dtype(self) -> Any:
        return jnp.promote_types(self.param_dtype, jnp.float32)

    def _scan_dtype(self) -> Any:
        """The selective scan's dtype: the compute dtype, at least float32."""
        return jnp.promote_types(self._dtype(), jnp.float32)

    def _scan(
        self, x: Array, z: Array, h0: Array | None, chunk_size: int | None, method: str, resets: Array | None = None
    ) -> tuple[Array, Array]:
        """``x, z [batch, L, d_inner]`` (x after conv and SiLU) -> ``(out [batch, L, d_model], last state)``; the
        state restarts at 0 at ``resets``."""
        dt, b, c = jnp.split(self.x_proj(x), [self._rank(), self._rank() + self.d_state], axis=-1)
        dt = nn.softplus(self.dt_proj(dt))
        f = self._scan_dtype()
        y, h = selective_scan(
            x.astype(f), dt.astype(f), -jnp.exp(self.A_log.astype(f)), b.astype(f), c.astype(f), self.D.astype(f),
            h0=h0, chunk_size=chunk_size, method=method, resets=resets,
        )
        return self.out_proj(y.astype(self._dtype()) * nn.silu(z)), h

    def __call__(self, u: Array, resets: Array | None = None) -> Array:
        """``u [batch, L, d_model] -> same``; ``resets [batch, L]`` start packed sequences: no conv tap and no
        state crosses one."""
        x, z = jnp.split(self.in_proj(u), 2, axis=-1)
        return self._scan(nn.silu(self.conv(x, resets=resets)), z, None, self.chunk_size, self.scan_method, resets)[0]

    def initial_state(self, batch_size: int) -> tuple[Array, Array]:
        d_inner = self.expand * self.d_model
        return (jnp.zeros((batch_size, self.d_conv - 1, d_inner), self._dtype()),
                jnp.zeros((batch_size, d_inner, self.d_state), self._scan_dtype()))

    def step(self, state: tuple[Array, Array], u_t: Array) -> tuple[tuple[Array, Array], Array]:
        """One token ``u_t [batch, d_model]``: the same equations with ``L = 1`` from the carried state."""
        conv_state, ssm_state = state
        x, z = jnp.split(self.in_proj(u_t), 2, axis=-1)
        conv_state, x = self.conv.step(conv_state, x)
        out, ssm_state = self._scan(nn.silu(x)[:, None], z[:, None], ssm_state, 1, "sequential")
        return (conv_state, ssm_state), out[:, 0]

    def chunk(
        self, state: tuple[Array, Array], u: Array, resets: Array | None = None
    ) -> tuple[tuple[Array, Array], Array]:
        """A chunk ``u [batch, T, d_model]``: the parallel form after the buffered conv inputs, from ``ssm_state``."""
        conv_state, ssm_state = state
        x, z = jnp.split(self.in_proj(u), 2, axis=-1)
        conv_state, x = self.conv.chunk(conv_state, x, resets)
        out, ssm_state = self._scan(nn.silu(x), z, ssm_state, self.chunk_size, self.scan_method, resets)
        return (conv_state, ssm_state), out


@dataclasses.dataclass
class MambaOptions:
    """``n_layers`` Mamba blocks of width ``d_model``; ``chunk_size`` bounds the selective scan's memory."""

    d_model: int = checked(64, COUNT)
    n_layers: int = checked(2, COUNT)
    d_state: int = checked(16, COUNT)
    d_conv: int = checked(4, COUNT)
    expand: int = checked(2, COUNT)
    dt_rank: Optional[int] = checked(None, COUNT)  # ceil(d_model / 16) when unset
    dt_min: float = checked(1e-3, POSITIVE)
    dt_max: float = checked(1e-1, POSITIVE)
    norm: str = checked("rms", choices=NORMS)  # "rms" or "layer"
    dropout: float = checked(0.0, DROPOUT)
    chunk_size: Optional[int] = checked(16, COUNT)  # None: one chunk (holds [batch, L, d_inner, d_state])
    scan_method: str = checked("auto", choices=METHODS)  # "native" (the CPU kernel) or the linear_scan method
    dtype: Optional[str] = None  # compute dtype (seqjax.models.precision); unset: param_dtype
    param_dtype: str = "float32"

    def __post_init__(self) -> None:
        check_fields(self, "mamba")
        check_range("dt_max", self.dt_max, self.dt_min, where="mamba")
        check_precision("mamba", self)


@register_backbone("mamba", MambaOptions, param_labels=ssm_param_labels)
def build_mamba(opts: MambaOptions) -> nn.Module:
    block = dict(
        d_model=opts.d_model, d_state=opts.d_state, d_conv=opts.d_conv, expand=opts.expand,
        dt_rank=opts.dt_rank, dt_min=opts.dt_min, dt_max=opts.dt_max, chunk_size=opts.chunk_size,
        scan_method=opts.scan_method, **dtypes(opts),
    )
    blocks = [MambaBlock(**block) for _ in range(opts.n_layers)]
    return ResidualStack(blocks=blocks, d_model=opts.d_model, norm=opts.norm, dropout=opts.dropout, **dtypes(opts))
