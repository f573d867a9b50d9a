"""S4 and S4D layers: ``H`` independent single-input SSMs, one per feature (Gu et al. 2021, 2022).

Per channel ``h``: ``y = K_h * u + D_h u`` (parallel form, FFT convolution)
or ``h_t = Abar h_{t-1} + Bbar u_t, y_t = Re(C h_t) + D u_t`` (the step form, and the chunk form: that
recurrence over a chunk of any length from a carried ``h``), all from the same parameters (math in :mod:`seqjax.ops.ssm_kernel`).
A convolution cannot restart, so the parallel form given ``resets [batch, time]`` (packed sequences) runs the
recurrence instead, with ``h_{t-1} := 0`` where a sequence starts. The parameters:

* ``log_dt [H]``: ``dt = exp(log_dt)``, initialized log-uniform in ``[dt_min, dt_max]``;
* ``Lambda_log_neg_re, Lambda_im [H, N/2]``: ``Lambda = -exp(Lambda_log_neg_re) + i Lambda_im``,
  so ``Re(Lambda) < 0`` always (a stable system);
* ``B, C`` (and S4's ``P``) ``[H, N/2, 2]``: complex numbers stored as real
  pairs ``(re, im)`` so that optimizers see real leaves;
* ``D [H]``: the skip.

``N`` (``state_size``) counts both modes of each conjugate pair.

Precision: parameters are stored in ``param_dtype``; the kernel, the FFT convolution and the step
state are computed in ``param_dtype`` promoted to at least float32 (complex64 / complex128: there is
no complex bfloat16), and the layer's input and output are in ``dtype`` (``None``: ``param_dtype``;
:mod:`seqjax.models.precision`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from seqjax.errors import COUNT, DROPOUT, POSITIVE, Range, UserError, check_fields, check_range, checked
from seqjax.models.blocks import NORMS, ResidualStack, ssm_param_labels
from seqjax.models.precision import check_precision, dtypes
from seqjax.models.registry import register_backbone
from seqjax.ops.hippo import S4D_INITS, dplr_legs, s4d_init
from seqjax.ops.linear_scan import linear_scan
from seqjax.ops.masking import restart_where
from seqjax.ops.ssm_kernel import (
    DISCRETIZATIONS,
    discretize_diag,
    dplr_dense,
    dplr_kernel,
    expand_conj,
    fft_conv,
    s4d_kernel,
)
from seqjax.typing import Array


def _real_dtype(module: nn.Module) -> Any:
    """The dtype the kernel is computed in: ``param_dtype`` promoted to at least float32."""
    return jnp.promote_types(module.param_dtype, jnp.float32)


def _compute_dtype(module: nn.Module) -> Any:
    return module.dtype or module.param_dtype


def _as_complex(stored: Array, real_dtype: Any) -> Array:
    stored = stored.astype(real_dtype)
    return jax.lax.complex(stored[..., 0], stored[..., 1])


def _complex_param(module: nn.Module, name: str, value: Any) -> Array:
    """A complex parameter stored as ``[..., 2]`` real pairs; returns the complex array."""
    stored = module.param(
        name, lambda _: jnp.stack([jnp.real(value), jnp.imag(value)], -1).astype(module.param_dtype)
    )
    return _as_complex(stored, _real_dtype(module))


def _ssm_params(module: nn.Module, lam0: np.ndarray, b0: np.ndarray) -> tuple[Array, Array, Array, Array, Array]:
    """Declare the shared SSM parameters; returns ``(Lambda, B, C, dt, D)``, ``[H, N/2]`` and ``[H]``.

    Stored in ``module.param_dtype``, returned in :func:`_real_dtype` (complex for ``Lambda, B, C``).
    """
    h, modes, pd, real = module.features, lam0.shape[-1], module.param_dtype, _real_dtype(module)
    lam0, b0 = np.broadcast_to(lam0, (h, modes)), np.broadcast_to(b0, (h, modes))
    log_dt = module.param(
        "log_dt",
        lambda k: jax.random.uniform(k, (h,), pd, minval=np.log(module.dt_min), maxval=np.log(module.dt_max)),
    )
    lam_re = module.param("Lambda_log_neg_re", lambda _: jnp.asarray(np.log(-lam0.real), pd))
    lam_im = module.param("Lambda_im", lambda _: jnp.asarray(lam0.imag, pd))
    b = _complex_param(module, "B", b0)
    c_stored = module.param("C", lambda k: (jax.random.normal(k, (h, modes, 2), pd) * np.sqrt(0.5)).astype(pd))
    d = module.param("D", nn.initializers.normal(1.0), (h,), pd)
    lam = jax.lax.complex(-jnp.exp(lam_re.astype(real)), lam_im.astype(real))
    return lam, b, _as_complex(c_stored, real), jnp.exp(log_dt.astype(real)), d.astype(real)


class SSMLayer(nn.Module):
    """The fields S4 and S4D share: ``H = features`` channels, ``N = state_size``, the ``dt`` range, dtypes."""

    features: int
    state_size: int = 64
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    dtype: Any = None  # input/output dtype; None: param_dtype
    param_dtype: Any = jnp.float32


class S4D(SSMLayer):
    """Diagonal SSM: ``A = diag(Lambda)``, ``a_init`` ``"legs"``, ``"lin"`` or ``"inv"``; ``"zoh"`` or ``"bilinear"``.

    ``K_l = 2 Re(sum_n C_n Bbar_n Abar_n^l)``; the step state is ``h [batch, H, N/2]`` (complex); the chunk
    form is :func:`~seqjax.ops.linear_scan.linear_scan` of the diagonal recurrence from it.
    """

    a_init: str = "legs"
    disc: str = "zoh"

    @nn.compact
    def __call__(
        self, u: Array, state: Array | None = None, resets: Array | None = None
    ) -> Array | tuple[Array, Array]:
        """Parallel ``u [batch, L, H] -> y`` (the recurrence given ``resets``); with ``state``, the chunk form
        ``u -> (state', y)``."""
        lam, b, c, dt, d = _ssm_params(self, *s4d_init(self.state_size, self.a_init))
        out_dtype = _compute_dtype(self)
        u = u.astype(out_dtype).astype(_real_dtype(self))
        if state is None and resets is None:
            return (fft_conv(u, s4d_kernel(lam, b, c, dt, u.shape[1], self.disc)) + d * u).astype(out_dtype)
        a_bar, b_bar = discretize_diag(lam, b, dt[:, None], self.disc)
        hs, new_state = linear_scan(a_bar, b_bar * u[..., None], state, resets=resets,
                                    return_state=True)  # [batch, L, H, N/2]
        y = (2.0 * jnp.sum(c * hs, axis=-1).real + d * u).astype(out_dtype)
        return y if state is None else (new_state.astype(state.dtype), y)

    def initial_state(self, batch_size: int) -> Array:
        complex_dtype = jnp.result_type(_real_dtype(self), jnp.complex64)
        return jnp.zeros((batch_size, self.features, self.state_size // 2), complex_dtype)

    def step(self, state: Array, u_t: Array) -> tuple[Array, Array]:
        state, y = self(u_t[:, None], state)
        return state, y[:, 0]

    def chunk(self, state: Array, u: Array, resets: Array | None = None) -> tuple[Array, Array]:
        return self(u, state, resets)


class S4(SSMLayer):
    """S4: HiPPO-LegS in DPLR form ``A = diag(Lambda) - P P^*``, bilinear, Cauchy/Woodbury kernel.

    ``C`` holds the S4 paper's ``C~ = C (I - Abar^L)`` for kernel length
    ``L = l_max`` (the input length when ``l_max`` is unset); the parallel
    form computes the kernel at ``L`` and keeps the first ``T`` taps. The
    Cauchy method needs the bilinear transform (as in the S4 paper); for ZOH
    use :class:`S4D`. The step form (and the parallel form given ``resets``, with ``L = l_max`` or the
    input length as for the kernel) rebuilds dense
    ``Abar [H, N, N]`` and ``C = C~ (I - Abar^L)^{-1}``, so it needs ``l_max``;
    its state is ``h [batch, H, N]`` (both conjugates). Rebuilding costs
    ``O(H N^3 log l_max)`` per call (a token, or a whole chunk: the chunk form scans the dense recurrence);
    :class:`S4D` streams in ``O(H N)``.
    """

    l_max: int | None = None

    @nn.compact
    def __call__(
        self, u: Array, state: Array | None = None, resets: Array | None = None
    ) -> Array | tuple[Array, Array]:
        """Parallel ``u [batch, L, H] -> y`` (the recurrence given ``resets``); with ``state``, the chunk form
        ``u -> (state', y)``."""
        lam0, p0, b0 = dplr_legs(self.state_size)
        p = _complex_param(self, "P", np.broadcast_to(p0, (self.features, p0.shape[-1])))
        lam, b, c_tilde, dt, d = _ssm_params(self, lam0, b0)
        full = [expand_conj(x) for x in (lam, p, b, c_tilde)]
        out_dtype = _compute_dtype(self)
        u = u.astype(out_dtype).astype(_real_dtype(self))
        length = u.shape[1]
        if state is None:
            kernel_length = self.l_max or length
            if length > kernel_length:
                raise UserError(f"s4: sequence length {length} exceeds l_max={kernel_length}; set l_max >= {length}")
            if resets is None:
                kernel = dplr_kernel(*full, dt, kernel_length)[:, :length]
                return (fft_conv(u, kernel) + d * u).astype(out_dtype)
        elif self.l_max is None:
            raise UserError("s4 step mode needs l_max (the kernel length it was trained with): set l_max")
        else:
            kernel_length = self.l_max
        a_bar, b_bar, c = jax.vmap(dplr_dense, in_axes=(0, 0, 0, 0, 0, None))(*full, dt, kernel_length)

        # h_t = Abar h_{t-1} + Bbar u_t (h_{t-1} := 0 at a reset),  y_t = Re(C h_t) + D u_t
        def token(h: Array, inputs: tuple[Array, Array | None]) -> tuple[Array, Array]:
            u_t, r_t = inputs
            h = jnp.einsum("hnm,bhm->bhn", a_bar, restart_where(r_t, jnp.zeros_like(h), h)) + b_bar * u_t[..., None]
            return h, jnp.einsum("hn,bhn->bh", c, h).real + d * u_t

        h0 = jnp.zeros((u.shape[0], *b_bar.shape), a_bar.dtype) if state is None else state.astype(a_bar.dtype)
        new_state, y = jax.lax.scan(token, h0, (jnp.swapaxes(u, 0, 1), None if resets is None else resets.T))
        y = jnp.swapaxes(y, 0, 1).astype(out_dtype)
        return y if state is None else (new_state.astype(state.dtype), y)

    def initial_state(self, batch_size: int) -> Array:
        complex_dtype = jnp.result_type(_real_dtype(self), jnp.complex64)
        return jnp.zeros((batch_size, self.features, self.state_size), complex_dtype)

    def step(self, state: Array, u_t: Array) -> tuple[Array, Array]:
        state, y = self(u_t[:, None], state)
        return state, y[:, 0]

    def chunk(self, state: Array, u: Array, resets: Array | None = None) -> tuple[Array, Array]:
        return self(u, state, resets)


class SSMBlock(nn.Module):
    """``y = W gelu(ssm(u)) + b``: an S4/S4D layer followed by a position-wise linear mix of the ``H`` channels."""

    ssm: nn.Module
    features: int
    dtype: Any = None  # compute dtype; None: param_dtype
    param_dtype: Any = jnp.float32

    def setup(self) -> None:
        self.out = nn.Dense(self.features, dtype=self.dtype or self.param_dtype, param_dtype=self.param_dtype)

    def __call__(self, u: Array, resets: Array | None = None) -> Array:
        return self.out(nn.gelu(self.ssm(u, resets=resets)))

    def initial_state(self, batch_size: int) -> Array:
        return self.ssm.initial_state(batch_size)

    def step(self, state: Array, u_t: Array) -> tuple[Array, Array]:
        state, y = self.ssm.step(state, u_t)
        return state, self.out(nn.gelu(y))

    def chunk(self, state: Array, u: Array, resets: Array | None = None) -> tuple[Array, Array]:
        state, y = self.ssm.chunk(state, u, resets)
        return state, self.out(nn.gelu(y))


@dataclasses.dataclass
class SSMOptions:
    """Shared options: ``n_layers`` blocks of width ``d_model``, state size ``N`` (``state_size``)."""

    d_model: int = checked(64, COUNT)
    n_layers: int = checked(4, COUNT)
    state_size: int = checked(64, Range(2, even=True))  # conjugate pairs
    dropout: float = checked(0.0, DROPOUT)
    norm: str = checked("layer", choices=NORMS)  # "layer" or "rms"
    dt_min: float = checked(1e-3, POSITIVE)
    dt_max: float = checked(1e-1, POSITIVE)
    dtype: Optional[str] = None  # compute dtype (seqjax.models.precision); unset: param_dtype
    param_dtype: str = "float32"

    def __post_init__(self) -> None:
        check_fields(self, "ssm")
        check_range("dt_max", self.dt_max, self.dt_min, where="ssm")
        check_precision("ssm", self)


@dataclasses.dataclass
class S4Options(SSMOptions):
    l_max: Optional[int] = checked(None, COUNT)  # kernel length (needed for step mode); the input length when unset


@dataclasses.dataclass
class S4DOptions(SSMOptions):
    a_init: str = checked("legs", choices=S4D_INITS)  # "legs", "lin" or "inv"
    disc: str = checked("zoh", choices=DISCRETIZATIONS)  # "zoh" or "bilinear"


def _stack(opts: SSMOptions, make_ssm) -> nn.Module:
    blocks = [SSMBlock(make_ssm(), opts.d_model, **dtypes(opts)) for _ in range(opts.n_layers)]
    return ResidualStack(blocks=blocks, d_model=opts.d_model, norm=opts.norm, dropout=opts.dropout, **dtypes(opts))


@register_backbone("s4", S4Options, param_labels=ssm_param_labels)
def build_s4(opts: S4Options) -> nn.Module:
    return _stack(opts, lambda: S4(features=opts.d_model, state_size=opts.state_size, l_max=opts.l_max,
                                   dt_min=opts.dt_min, dt_max=opts.dt_max, **dtypes(opts)))


@register_backbone("s4d", S4DOptions, param_labels=ssm_param_labels)
def build_s4d(opts: S4DOptions) -> nn.Module:
    return _stack(opts, lambda: S4D(features=opts.d_model, state_size=opts.state_size, a_init=opts.a_init,
                                    disc=opts.disc, dt_min=opts.dt_min, dt_max=opts.dt_max, **dtypes(opts)))
