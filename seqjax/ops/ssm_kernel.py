"""Pure functions of the S4 / S4D state space models: discretization, kernels, FFT convolution.

Continuous SSM ``h' = A h + B u``, ``y = Re(C h) + D u``; discretized with
step ``dt``::

    ZOH:       Abar = exp(dt A),                     Bbar = A^{-1} (Abar - I) B
    bilinear:  Abar = (I - dt/2 A)^{-1} (I + dt/2 A), Bbar = (I - dt/2 A)^{-1} dt B

then ``h_t = Abar h_{t-1} + Bbar u_t`` (the recurrent form) or, unrolled,
``y = K * u + D u`` with ``K_l = Re(C Abar^l Bbar)`` (the convolutional form,
computed by FFT in ``O(L log L)``).

Diagonal systems keep only one of each conjugate pair of modes: with
``N/2`` stored modes, ``K_l = 2 Re(sum_n C_n Bbar_n Abar_n^l)``.

The DPLR kernel's sums over the state index ``n`` run in blocks of ``STATE_BLOCK`` under
:func:`jax.lax.scan` (:func:`state_sum`), so no ``[N, L]`` array exists:
kernel memory is flat in ``N``. The S4D kernel needs no ``[N, L]`` array either: it splits
the powers ``Abar^l`` at ``sqrt(L)`` and sums over ``n`` by a matmul (:func:`s4d_kernel`).
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from seqjax.errors import check_choice
from seqjax.typing import Array

DISCRETIZATIONS = ("zoh", "bilinear")


STATE_BLOCK = 8


def expand_conj(x: Array) -> Array:
    """``[..., N/2] -> [..., N]``: append the conjugate of each mode."""
    return jnp.concatenate([x, jnp.conj(x)], axis=-1)


def discretize_diag(lam: Array, b: Array, dt: Array, method: str) -> tuple[Array, Array]:
    """``(Abar, Bbar)`` of the diagonal system ``A = diag(lam)`` (equations in the module docstring)."""
    check_choice("discretization", method, DISCRETIZATIONS)
    if method == "zoh":
        a_bar = jnp.exp(dt * lam)
        return a_bar, (a_bar - 1.0) / lam * b
    inv = 1.0 / (1.0 - dt / 2.0 * lam)  # bilinear
    return (1.0 + dt / 2.0 * lam) * inv, dt * inv * b


def state_sum(term: Callable[..., Array], *xs: Array, block: int = STATE_BLOCK) -> Array:
    """``sum_n term(x_n...)`` over the last axis of ``xs`` (length ``N``), ``block`` modes at a time.

    ``block`` is lowered to a divisor of ``N``. ``term`` maps
    ``[..., block]`` slices to ``[..., block, L]``; the running
    sum ``[..., L]`` is the only thing kept, and each block is recomputed in
    the backward pass, so memory does not grow with ``N``.
    """
    n = xs[0].shape[-1]
    block = max(d for d in range(1, min(block, n) + 1) if n % d == 0)  # a divisor of N: no padding
    blocks = [jnp.moveaxis(x.reshape(*x.shape[:-1], n // block, block), -2, 0) for x in xs]

    def body(acc: Array, xb: tuple[Array, ...]) -> tuple[Array, None]:
        return acc + term(*xb).sum(axis=-2), None

    first = jax.eval_shape(lambda *b: term(*b).sum(axis=-2), *[bl[0] for bl in blocks])
    acc, _ = jax.lax.scan(jax.checkpoint(body, prevent_cse=False), jnp.zeros(first.shape, first.dtype), tuple(blocks))
    return acc


# K_{qR+r} = 2 Re(sum_n (C_n Bbar_n Abar_n^{qR}) Abar_n^r), R = ceil(sqrt(L)): one real batched matmul over n
def s4d_kernel(lam: Array, b: Array, c: Array, dt: Array, length: int, method: str) -> Array:
    """``K_l = 2 Re(sum_n C_n Bbar_n Abar_n^l)``, ``l < length``: ``lam, b, c [H, N/2]``, ``dt [H]`` -> ``[H, L]``.

    The Vandermonde product is split at ``R = ceil(sqrt(L))``: ``l = qR + r`` and
    ``Abar^l = Abar^{qR} Abar^r``, so only ``[H, N/2, R]`` and ``[H, N/2, L/R]`` powers
    are exponentiated and the sum over ``n`` is a ``[L/R, N] x [N, R]`` real matmul per
    channel (complex ``exp`` of every ``[H, N/2, L]`` term measured 15-20x slower on CPU,
    ``experiments/benchmarks/README.md``). Memory is ``O(H N sqrt(L) + H L)``.
    """
    a_bar, b_bar = discretize_diag(lam, b, dt[:, None], method)
    log_a = jnp.log(a_bar)
    low_steps = math.isqrt(length - 1) + 1  # R
    high_steps = -(-length // low_steps)  # ceil(L / R)
    low = jnp.exp(log_a[..., None] * jnp.arange(low_steps))  # Abar^r [H, N/2, R]
    high = (c * b_bar)[..., None] * jnp.exp(log_a[..., None] * (low_steps * jnp.arange(high_steps)))  # [H, N/2, Q]
    # Re(x y) = Re x Re y - Im x Im y, summed over n: stack (Re, -Im) against (Re, Im) along n
    x = jnp.concatenate([high.real, -high.imag], axis=1)
    y = jnp.concatenate([low.real, low.imag], axis=1)
    k = jnp.einsum("hnq,hnr->hqr", x, y, precision=jax.lax.Precision.HIGHEST)
    return 2.0 * k.reshape(k.shape[0], -1)[:, :length]


def dplr_kernel(lam: Array, p: Array, b: Array, c_tilde: Array, dt: Array, length: int) -> Array:
    """Bilinear S4 kernel of ``A = diag(lam) - P P^*`` by Cauchy sums and Woodbury, at the roots of unity.

    ``c_tilde = C (I - Abar^L)``. At ``z_k = exp(-2 pi i k / L)`` the truncated
    generating function ``sum_{l<L} K_l z^l = c_tilde (I - Abar z)^{-1} Bbar`` is::

        Khat(z) = 2 [k_CB - (1+z) k_CP k_PB / (1 + (1+z) k_PP)],
        k_uv(z) = sum_n u_n v_n / ((2/dt)(1-z) - lam_n (1+z))

    (the Woodbury identity; ``u in {c_tilde, conj(P)}``, ``v in {B, P}``), and
    ``K = ifft(Khat)``. Inputs are full (both conjugates) ``[H, N]``, ``dt [H]``.
    """
    z = jnp.exp(-2j * jnp.pi * jnp.arange(length) / length)
    q = jnp.conj(p)
    weights = jnp.stack([c_tilde * b, c_tilde * p, q * b, q * p], axis=0)  # [4, H, N]
    scale = jnp.broadcast_to((2.0 / dt)[:, None], lam.shape)

    def term(w: Array, lam_n: Array, s: Array) -> Array:  # [4, H, n], [H, n], [H, n] -> [4, H, n, L]
        return w[..., None] / (s[..., None] * (1.0 - z) - lam_n[..., None] * (1.0 + z))

    k_cb, k_cp, k_pb, k_pp = state_sum(term, weights, lam, scale)
    k_hat = 2.0 * (k_cb - (1.0 + z) * k_cp * k_pb / (1.0 + (1.0 + z) * k_pp))
    return jnp.fft.ifft(k_hat, axis=-1).real


def dplr_dense(
    lam: Array, p: Array, b: Array, c_tilde: Array, dt: Array, length: int
) -> tuple[Array, Array, Array]:
    """The bilinear recurrent form of one DPLR channel: ``(Abar [N, N], Bbar [N], C [N])``.

    ``A = diag(lam) - P P^*``, bilinear ``Abar, Bbar``, and
    ``C = c_tilde (I - Abar^L)^{-1}`` (undoing the kernel's truncation at ``L``).
    """
    n = lam.shape[-1]
    eye = jnp.eye(n, dtype=lam.dtype)
    a = jnp.diag(lam) - jnp.outer(p, jnp.conj(p))
    left = eye - dt / 2.0 * a
    a_bar = jnp.linalg.solve(left, eye + dt / 2.0 * a)
    b_bar = jnp.linalg.solve(left, dt * b)
    c = jnp.linalg.solve((eye - jnp.linalg.matrix_power(a_bar, length)).T, c_tilde)
    return a_bar, b_bar, c


def fft_conv(u: Array, kernel: Array) -> Array:
    """Causal convolution ``y_t = sum_{s<=t} K_{t-s} u_s`` by FFT: ``u [B, L, H]``, ``K [H, L]`` -> ``[B, L, H]``."""
    length = u.shape[1]
    n = 2 * length  # zero padding makes the circular convolution a linear one
    u_f = jnp.fft.rfft(u, n=n, axis=1)
    k_f = jnp.fft.rfft(kernel.T, n=n, axis=0)
    return jnp.fft.irfft(u_f * k_f, n=n, axis=1)[:, :length].astype(u.dtype)
