"""The Linear Recurrent Unit (LRU; Orvieto et al. 2023), ``[batch, time, d_model] -> same``::

    lambda = exp(-exp(nu) + i exp(theta))            (|lambda| < 1 for any nu)
    x_k    = lambda * x_{k-1} + gamma * (B u_k)      (x in C^N, x_0 = 0; gamma = exp(gamma_log))
    y_k    = Re(C x_k) + D * u_k
    out_k  = W_1 v_k * sigmoid(W_2 v_k),  v_k = GELU(y_k)        (the paper's GLU block)

The scan is :func:`~seqjax.ops.linear_scan.linear_scan` on the complex diagonal ``lambda``.
Initialization: the ring init below, ``gamma_log = log sqrt(1 - |lambda|^2)`` of the initial ``lambda`` (trained as
its own parameter, as minimal-LRU does), ``B_re, B_im ~ N(0, 1/(2H))``, ``C_re, C_im ~ N(0, 1/N)``, ``D ~ N(0, 1)``.
``nu_log, theta_log, gamma_log, B_re, B_im`` form the ``"ssm"`` group (``optim.ssm_lr``, e.g. half the
learning rate, and no weight decay, as in the paper). The step form carries ``x [batch, N]`` (complex); the chunk
form scans a chunk from it.

Precision: parameters in ``param_dtype``; the recurrence in ``dtype`` promoted to at least float32 (complex64 or
complex128); the GLU in ``dtype``.
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
    check_fields,
    check_range,
    checked,
)
from seqjax.models.blocks import NORMS, ResidualStack, named_param_labels
from seqjax.models.precision import BlockDtypes, check_precision, dtypes
from seqjax.models.registry import register_backbone
from seqjax.ops.linear_scan import METHODS, linear_scan
from seqjax.typing import Array

LRU_PARAM_NAMES = frozenset({"nu_log", "theta_log", "gamma_log", "B_re", "B_im"})


# nu = log(-1/2 log(u_1 (r_max^2 - r_min^2) + r_min^2)),  theta = log(max_phase u_2),  u_1, u_2 ~ U(0, 1]
def ring_init(key: jax.Array, n: int, r_min: float, r_max: float, max_phase: float, dtype: Any) -> tuple[Array, Array]:
    """``(nu_log, theta_log) [n]`` with ``|lambda|^2`` uniform on ``[r_min^2, r_max^2]`` (uniform on the ring's area).

    >>> nu, theta = ring_init(jax.random.key(0), 1000, 0.5, 0.9, 6.28, jnp.float32)
    >>> bool(jnp.all((jnp.exp(-jnp.exp(nu)) >= 0.5 - 1e-6) & (jnp.exp(-jnp.exp(nu)) <= 0.9 + 1e-6)))
    True
    """
    u1, u2 = (1.0 - jax.random.uniform(k, (n,), dtype) for k in jax.random.split(key))
    nu = jnp.log(-0.5 * jnp.log(u1 * (r_max**2 - r_min**2) + r_min**2))
    return nu, jnp.log(max_phase * u2)


class LRUBlock(BlockDtypes, nn.Module):
    """One LRU with its GLU (equations in the module docstring); ``H = d_model`` inputs, ``N = d_state`` modes.

    >>> block = LRUBlock(d_model=4, d_state=6)
    >>> u = jnp.ones((2, 5, 4))
    >>> params = block.init(jax.random.key(0), u)
    >>> block.apply(params, u).shape
    (2, 5, 4)
    """

    d_model: int
    d_state: int = 64
    r_min: float = 0.0
    r_max: float = 0.99
    max_phase: float = 6.28
    scan_method: str = "auto"
    chunk_size: int = 128
    dtype: Any = None  # compute dtype; None: param_dtype
    param_dtype: Any = jnp.float32

    def setup(self) -> None:
        n, h, pd = self.d_state, self.d_model, self.param_dtype
        ring = lambda key: ring_init(key, n, self.r_min, self.r_max, self.max_phase, pd)  # noqa: E731
        self.nu_log = self.param("nu_log", lambda key: ring(key)[0])
        self.theta_log = self.param("theta_log", lambda key: ring(key)[1])
        # gamma = sqrt(1 - |lambda|^2) = sqrt(1 - exp(-2 exp(nu))) at init
        self.gamma_log = self.param("gamma_log", lambda _: 0.5 * jnp.log(-jnp.expm1(-2.0 * jnp.exp(self.nu_log))))
        self.B_re, self.B_im = (self.param(name, nn.initializers.normal((2 * h) ** -0.5), (n, h), pd)
                                for name in ("B_re", "B_im"))
        self.C_re, self.C_im = (self.param(name, nn.initializers.normal(n**-0.5), (h, n), pd)
                                for name in ("C_re", "C_im"))
        self.D = self.param("D", nn.initializers.normal(1.0), (h,), pd)
        dense = dict(dtype=self._dtype(), param_dtype=pd)
        self.glu_value, self.glu_gate = nn.Dense(h, **dense), nn.Dense(h, **dense)

    def _recurrence(self, u: Array, x0: Array | None, method: str, resets: Array | None) -> tuple[Array, Array]:
        """``u [batch, T, H] -> (y [batch, T, H], x_T [batch, N])``: the LRU's scan (restarting at ``resets``) and
        readout."""
        real = self._real()
        cast = lambda p: p.astype(real)  # noqa: E731
        lam = jnp.exp(jax.lax.complex(-jnp.exp(cast(self.nu_log)), jnp.exp(cast(self.theta_log))))
        b = jax.lax.complex(cast(self.B_re), cast(self.B_im)) * jnp.exp(cast(self.gamma_log))[:, None]
        u = u.astype(real)
        x, last = linear_scan(lam, jnp.einsum("bth,nh->btn", u, b), x0, method=method, chunk_size=self.chunk_size,
                              resets=resets, return_state=True)
        c = jax.lax.complex(cast(self.C_re), cast(self.C_im))
        return jnp.einsum("btn,hn->bth", x, c).real + cast(self.D) * u, last

    def _glu(self, y: Array) -> Array:
        v = nn.gelu(y.astype(self._dtype()))
        return self.glu_value(v) * nn.sigmoid(self.glu_gate(v))

    def __call__(self, u: Array, resets: Array | None = None) -> Array:
        """``u [batch, T, H] -> [batch, T, H]``; ``resets [batch, T]`` start packed sequences (``x`` restarts at 0)."""
        return self._glu(self._recurrence(u, None, self.scan_method, resets)[0])

    def initial_state(self, batch_size: int) -> Array:
        return jnp.zeros((batch_size, self.d_state), jnp.result_type(self._real(), jnp.complex64))

    def step(self, state: Array, u_t: Array) -> tuple[Array, Array]:
        """One token: ``x <- lambda x + gamma (B u_t)``, ``y = Re(C x) + D u_t``, then the GLU."""
        state, y = self.chunk(state, u_t[:, None])
        return state, y[:, 0]

    def chunk(self, state: Array, u: Array, resets: Array | None = None) -> tuple[Array, Array]:
        """A chunk ``u [batch, T, H]`` from the carried ``x``: the parallel form with ``x_0 = state``."""
        y, state = self._recurrence(u, state, self.scan_method, resets)
        return state, self._glu(y)


@dataclasses.dataclass
class LRUOptions:
    """``n_layers`` pre-norm residual LRU blocks of width ``d_model`` with ``d_state`` complex modes each."""

    d_model: int = checked(64, COUNT)
    n_layers: int = checked(2, COUNT)
    d_state: int = checked(64, COUNT)
    r_min: float = checked(0.0, Range(0, 1, hi_open=True))  # ring init: |lambda| in [r_min, r_max]
    r_max: float = checked(0.99, Range(0, 1, lo_open=True, hi_open=True))
    max_phase: float = checked(6.28, POSITIVE)
    norm: str = checked("layer", choices=NORMS)  # "layer" or "rms"
    dropout: float = checked(0.0, DROPOUT)
    scan_method: str = checked("auto", choices=METHODS)  # linear_scan method
    chunk_size: int = checked(128, COUNT)  # for scan_method=chunked
    dtype: Optional[str] = None  # compute dtype (seqjax.models.precision); unset: param_dtype
    param_dtype: str = "float32"

    def __post_init__(self) -> None:
        check_fields(self, "lru")
        check_range("r_max", self.r_max, self.r_min, where="lru")
        check_precision("lru", self)


@register_backbone("lru", LRUOptions, param_labels=named_param_labels(LRU_PARAM_NAMES))
def build_lru(opts: LRUOptions) -> nn.Module:
    block = dict(d_model=opts.d_model, d_state=opts.d_state, r_min=opts.r_min, r_max=opts.r_max,
                 max_phase=opts.max_phase, scan_method=opts.scan_method, chunk_size=opts.chunk_size, **dtypes(opts))
    blocks = [LRUBlock(**block) for _ in range(opts.n_layers)]
    return ResidualStack(blocks=blocks, d_model=opts.d_model, norm=opts.norm, dropout=opts.dropout, **dtypes(opts))
