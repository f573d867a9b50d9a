"""S4 and S4D layers: ``H`` independent single-input SSMs, one per feature (Gu et al. 2021, 2022).

Per channel ``h``: ``y = K_h * u + D_h u`` (parallel form, FFT convolution)
or ``h_t = Abar h_{t-1} + Bbar u_t, y_t = Re(C h_t) + D u_t`` (step form),
both from the same parameters (math in :mod:`seqjax.layers.ssm_kernel`):

* ``log_dt [H]``: ``dt = exp(log_dt)``, initialized log-uniform in ``[dt_min, dt_max]``;
* ``Lambda_log_neg_re, Lambda_im [H, N/2]``: ``Lambda = -exp(Lambda_log_neg_re) + i Lambda_im``,
  so ``Re(Lambda) < 0`` always (a stable system);
* ``B, C`` (and S4's ``P``) ``[H, N/2, 2]``: complex numbers stored as real
  pairs ``(re, im)`` so that optimizers see real leaves;
* ``D [H]``: the skip.

``N`` (``state_size``) counts both modes of each conjugate pair.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from seqjax.errors import UserError
from seqjax.layers.hippo import dplr_legs, s4d_init
from seqjax.layers.ssm_kernel import (
    discretize_diag, dplr_dense, dplr_kernel, expand_conj, fft_conv, s4d_kernel,
)

Array = jax.Array


def _complex_param(module: nn.Module, name: str, value: Any) -> Array:
    """A complex parameter stored as ``[..., 2]`` real pairs; returns the complex array."""
    stored = module.param(name, lambda _: jnp.stack([jnp.real(value), jnp.imag(value)], -1).astype(jnp.float32))
    return jax.lax.complex(stored[..., 0], stored[..., 1])


def _ssm_params(module: nn.Module, lam0: np.ndarray, b0: np.ndarray) -> tuple[Array, Array, Array, Array, Array]:
    """Declare the shared SSM parameters; returns ``(Lambda, B, C, dt, D)``, ``[H, N/2]`` and ``[H]``."""
    h, modes = module.features, lam0.shape[-1]
    lam0, b0 = np.broadcast_to(lam0, (h, modes)), np.broadcast_to(b0, (h, modes))
    log_dt = module.param(
        "log_dt",
        lambda k: jax.random.uniform(k, (h,), minval=np.log(module.dt_min), maxval=np.log(module.dt_max)),
    )
    lam_re = module.param("Lambda_log_neg_re", lambda _: jnp.asarray(np.log(-lam0.real), jnp.float32))
    lam_im = module.param("Lambda_im", lambda _: jnp.asarray(lam0.imag, jnp.float32))
    b = _complex_param(module, "B", b0)
    c_stored = module.param("C", lambda k: jax.random.normal(k, (h, modes, 2)) * np.sqrt(0.5))
    d = module.param("D", nn.initializers.normal(1.0), (h,))
    lam = jax.lax.complex(-jnp.exp(lam_re), lam_im)
    return lam, b, jax.lax.complex(c_stored[..., 0], c_stored[..., 1]), jnp.exp(log_dt), d


class S4D(nn.Module):
    """Diagonal SSM: ``A = diag(Lambda)``, ``a_init`` ``"legs"``, ``"lin"`` or ``"inv"``; ``"zoh"`` or ``"bilinear"``.

    ``K_l = 2 Re(sum_n C_n Bbar_n Abar_n^l)``; the step state is ``h [batch, H, N/2]`` (complex).
    """

    features: int
    state_size: int = 64
    a_init: str = "legs"
    disc: str = "zoh"
    dt_min: float = 1e-3
    dt_max: float = 1e-1

    @nn.compact
    def __call__(self, u: Array, state: Array | None = None) -> Array | tuple[Array, Array]:
        """Parallel ``u [batch, L, H] -> y``; with ``state``, one token ``u_t [batch, H] -> (state', y_t)``."""
        lam, b, c, dt, d = _ssm_params(self, *s4d_init(self.state_size, self.a_init))
        if state is None:
            return fft_conv(u, s4d_kernel(lam, b, c, dt, u.shape[1], self.disc)) + d * u
        a_bar, b_bar = discretize_diag(lam, b, dt[:, None], self.disc)
        state = a_bar * state + b_bar * u[..., None]
        return state, 2.0 * jnp.sum(c * state, axis=-1).real + d * u

    def initial_state(self, batch_size: int) -> Array:
        return jnp.zeros((batch_size, self.features, self.state_size // 2), jnp.complex64)

    def step(self, state: Array, u_t: Array) -> tuple[Array, Array]:
        return self(u_t, state)


class S4(nn.Module):
    """S4: HiPPO-LegS in DPLR form ``A = diag(Lambda) - P P^*``, bilinear, Cauchy/Woodbury kernel.

    ``C`` holds the S4 paper's ``C~ = C (I - Abar^L)`` for kernel length
    ``L = l_max`` (the input length when ``l_max`` is unset); the parallel
    form computes the kernel at ``L`` and keeps the first ``T`` taps. The
    Cauchy method needs the bilinear transform (as in the S4 paper); for ZOH
    use :class:`S4D`. The step form rebuilds dense
    ``Abar [H, N, N]`` and ``C = C~ (I - Abar^L)^{-1}``, so it needs ``l_max``;
    its state is ``h [batch, H, N]`` (both conjugates). Rebuilding costs
    ``O(H N^3 log l_max)`` per token; :class:`S4D` streams in ``O(H N)``.
    """

    features: int
    state_size: int = 64
    l_max: int | None = None
    dt_min: float = 1e-3
    dt_max: float = 1e-1

    @nn.compact
    def __call__(self, u: Array, state: Array | None = None) -> Array | tuple[Array, Array]:
        """Parallel ``u [batch, L, H] -> y``; with ``state``, one token ``u_t [batch, H] -> (state', y_t)``."""
        lam0, p0, b0 = dplr_legs(self.state_size)
        p = _complex_param(self, "P", np.broadcast_to(p0, (self.features, p0.shape[-1])))
        lam, b, c_tilde, dt, d = _ssm_params(self, lam0, b0)
        full = [expand_conj(x) for x in (lam, p, b, c_tilde)]
        if state is None:
            length = u.shape[1]
            kernel_length = self.l_max or length
            if length > kernel_length:
                raise UserError(f"s4: sequence length {length} exceeds l_max={kernel_length}; set l_max >= {length}")
            kernel = dplr_kernel(*full, dt, kernel_length)[:, :length]
            return fft_conv(u, kernel) + d * u
        if self.l_max is None:
            raise UserError("s4 step mode needs l_max (the kernel length it was trained with): set l_max")
        a_bar, b_bar, c = jax.vmap(dplr_dense, in_axes=(0, 0, 0, 0, 0, None))(*full, dt, self.l_max)
        state = jnp.einsum("hnm,bhm->bhn", a_bar, state) + b_bar * u[..., None]
        return state, jnp.einsum("hn,bhn->bh", c, state).real + d * u

    def initial_state(self, batch_size: int) -> Array:
        return jnp.zeros((batch_size, self.features, self.state_size), jnp.complex64)

    def step(self, state: Array, u_t: Array) -> tuple[Array, Array]:
        return self(u_t, state)


class SSMBlock(nn.Module):
    """``y = W gelu(ssm(u)) + b``: an S4/S4D layer followed by a position-wise linear mix of the ``H`` channels."""

    ssm: nn.Module
    features: int

    def setup(self) -> None:
        self.out = nn.Dense(self.features)

    def __call__(self, u: Array) -> Array:
        return self.out(nn.gelu(self.ssm(u)))

    def initial_state(self, batch_size: int) -> Array:
        return self.ssm.initial_state(batch_size)

    def step(self, state: Array, u_t: Array) -> tuple[Array, Array]:
        state, y = self.ssm.step(state, u_t)
        return state, self.out(nn.gelu(y))
