"""S5 (Smith et al. 2023): one MIMO diagonal SSM over all ``H = d_model`` features, scanned in parallel::

    Lambda_bar = exp(Lambda dt),  B_bar = ((Lambda_bar - 1) / Lambda) B~       (ZOH; or bilinear)
    x_k = Lambda_bar * x_{k-1} + B_bar u_k                                     (x in C^{P/2}, x_0 = 0)
    y_k = 2 Re(C~ x_k) + D * u_k                                               (conjugate symmetry)
    out_k = g_k * sigmoid(W g_k + b),  g_k = GELU(y_k)                         (the "half_glu1" layer)

Initialization (HiPPO-N, :func:`~seqjax.ops.hippo.hippo_n`): ``J = blocks`` blocks of size ``P/J``, each
``S_b = V_b diag(Lambda_b) V_b^*``, keeping one eigenvalue of each conjugate pair; ``B~ = V^* B`` with real
``B [P, H]`` LeCun normal, ``C~ = C V`` with complex ``C [H, P]`` (each part ``N(0, 1/P)``), ``D ~ N(0, 1)``,
one ``log dt`` per mode, uniform on ``[log dt_min, log dt_max]``. ``Lambda`` is stored as ``(log(-Re),
Im)``, so ``Re(Lambda) < 0`` always (the reference code stores ``Re`` and optionally clips it; this
parameterization keeps every point stable). ``Lambda, B, log_dt`` are the ``"ssm"`` group (``optim.ssm_lr``,
no weight decay). ``state_size = P`` counts both modes of each pair. The step form carries ``x [batch, P/2]``;
the chunk form scans a chunk from it.

Precision: parameters in ``param_dtype``; the SSM in at least float32 (complex64 / complex128); the GLU in
``dtype``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

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
from seqjax.models.blocks import NORMS, ResidualStack, ssm_param_labels
from seqjax.models.precision import BlockDtypes, check_precision, dtypes
from seqjax.models.registry import register_backbone
from seqjax.ops.hippo import hippo_n
from seqjax.ops.linear_scan import METHODS, linear_scan
from seqjax.ops.ssm_kernel import DISCRETIZATIONS, discretize_diag
from seqjax.typing import Array


# Lambda = (Lambda_b, ..., Lambda_b),  V = blockdiag(V_b, ..., V_b)   (J blocks of HiPPO-N of size P/J)
def block_hippo_n(state_size: int, blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """``(Lambda [P/2], V [P, P/2])`` of S5's block-diagonal HiPPO-N initialization.

    >>> lam, v = block_hippo_n(8, 2)
    >>> lam.shape, v.shape, bool(np.allclose(v.conj().T @ v, np.eye(4)))
    ((4,), (8, 4), True)
    """
    lam, v = hippo_n(state_size // blocks)
    return np.tile(lam, blocks), np.kron(np.eye(blocks), v)


class S5Block(BlockDtypes, nn.Module):
    """One S5 layer on ``[batch, T, d_model]`` (equations in the module docstring).

    >>> block = S5Block(d_model=4, state_size=8, blocks=2)
    >>> u = jnp.ones((2, 5, 4))
    >>> params = block.init(jax.random.key(0), u)
    >>> block.apply(params, u).shape
    (2, 5, 4)
    """

    d_model: int
    state_size: int = 64
    blocks: int = 4
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    disc: str = "zoh"
    scan_method: str = "auto"
    chunk_size: int = 128
    dtype: Any = None  # compute dtype; None: param_dtype
    param_dtype: Any = jnp.float32

    def setup(self) -> None:
        h, p, pd = self.d_model, self.state_size, self.param_dtype
        lam, v = block_hippo_n(p, self.blocks)
        real = jnp.promote_types(pd, jnp.float32)
        v = jnp.asarray(v, jnp.result_type(real, jnp.complex64))
        pairs = lambda z: jnp.stack([jnp.real(z), jnp.imag(z)], -1).astype(pd)  # noqa: E731

        def b_init(key: jax.Array) -> Array:  # B~ = V^* B
            return pairs(v.conj().T @ nn.initializers.lecun_normal()(key, (p, h), real))

        def c_init(key: jax.Array) -> Array:  # C~ = C V
            re, im = jax.random.normal(key, (2, h, p), real) * p**-0.5
            return pairs(jax.lax.complex(re, im) @ v)

        self.Lambda_log_neg_re = self.param("Lambda_log_neg_re", lambda _: jnp.asarray(np.log(-lam.real), pd))
        self.Lambda_im = self.param("Lambda_im", lambda _: jnp.asarray(lam.imag, pd))
        self.B, self.C = self.param("B", b_init), self.param("C", c_init)
        self.D = self.param("D", nn.initializers.normal(1.0), (h,), pd)
        self.log_dt = self.param("log_dt", lambda k: jax.random.uniform(k, (p // 2,), pd, np.log(self.dt_min),
                                                                        np.log(self.dt_max)))
        self.glu = nn.Dense(h, dtype=self._dtype(), param_dtype=pd)

    def _ssm(self, u: Array, x0: Array | None, method: str, resets: Array | None) -> tuple[Array, Array]:
        """``u [batch, T, H] -> (y [batch, T, H], x_T [batch, P/2])``, ``x`` restarting at 0 at ``resets``."""
        real = self._real()
        cast = lambda p: p.astype(real)  # noqa: E731
        lam = jax.lax.complex(-jnp.exp(cast(self.Lambda_log_neg_re)), cast(self.Lambda_im))
        b, c = (jax.lax.complex(cast(m[..., 0]), cast(m[..., 1])) for m in (self.B, self.C))
        a_bar, b_bar = discretize_diag(lam[:, None], b, jnp.exp(cast(self.log_dt))[:, None], self.disc)
        u = u.astype(real)
        x, last = linear_scan(a_bar[:, 0], jnp.einsum("bth,ph->btp", u, b_bar), x0, method=method,
                              chunk_size=self.chunk_size, resets=resets, return_state=True)
        return 2.0 * jnp.einsum("btp,hp->bth", x, c).real + cast(self.D) * u, last

    def _glu(self, y: Array) -> Array:
        g = nn.gelu(y.astype(self._dtype()))
        return g * nn.sigmoid(self.glu(g))

    def __call__(self, u: Array, resets: Array | None = None) -> Array:
        """``u [batch, T, H] -> [batch, T, H]``; ``resets [batch, T]`` start packed sequences."""
        return self._glu(self._ssm(u, None, self.scan_method, resets)[0])

    def initial_state(self, batch_size: int) -> Array:
        return jnp.zeros((batch_size, self.state_size // 2), jnp.result_type(self._real(), jnp.complex64))

    def step(self, state: Array, u_t: Array) -> tuple[Array, Array]:
        """One token: ``x <- Lambda_bar x + B_bar u_t``, ``y = 2 Re(C~ x) + D u_t``, then the GLU."""
        state, y = self.chunk(state, u_t[:, None])
        return state, y[:, 0]

    def chunk(self, state: Array, u: Array, resets: Array | None = None) -> tuple[Array, Array]:
        """A chunk ``u [batch, T, H]`` from the carried ``x``: the parallel form with ``x_0 = state``."""
        y, state = self._ssm(u, state, self.scan_method, resets)
        return state, self._glu(y)


@dataclasses.dataclass
class S5Options:
    """``n_layers`` pre-norm residual S5 layers of width ``d_model``, ``state_size`` modes (both of each pair)."""

    d_model: int = checked(64, COUNT)
    n_layers: int = checked(2, COUNT)
    state_size: int = checked(64, Range(2, even=True))  # P, before keeping one mode of each conjugate pair
    blocks: int = checked(4, COUNT)  # J: HiPPO-N blocks of size P/J (even)
    dt_min: float = checked(1e-3, POSITIVE)
    dt_max: float = checked(1e-1, POSITIVE)
    disc: str = checked("zoh", choices=DISCRETIZATIONS)
    norm: str = checked("layer", choices=NORMS)
    dropout: float = checked(0.0, DROPOUT)
    scan_method: str = checked("auto", choices=METHODS)  # linear_scan method
    chunk_size: int = checked(128, COUNT)  # for scan_method=chunked
    dtype: Optional[str] = None  # compute dtype (seqjax.models.precision); unset: param_dtype
    param_dtype: str = "float32"

    def __post_init__(self) -> None:
        check_fields(self, "s5")
        check_range("dt_max", self.dt_max, self.dt_min, where="s5")
        if self.state_size % (2 * self.blocks):
            raise UserError(f"s5: state_size={self.state_size} must be a multiple of 2 blocks = {2 * self.blocks} "
                            "(each HiPPO-N block holds conjugate pairs)")
        check_precision("s5", self)


@register_backbone("s5", S5Options, param_labels=ssm_param_labels)
def build_s5(opts: S5Options) -> nn.Module:
    block = dict(d_model=opts.d_model, state_size=opts.state_size, blocks=opts.blocks, dt_min=opts.dt_min,
                 dt_max=opts.dt_max, disc=opts.disc, scan_method=opts.scan_method, chunk_size=opts.chunk_size,
                 **dtypes(opts))
    blocks = [S5Block(**block) for _ in range(opts.n_layers)]
    return ResidualStack(blocks=blocks, d_model=opts.d_model, norm=opts.norm, dropout=opts.dropout, **dtypes(opts))
