"""Causal 1-D convolution, parallel and step forms (used by the TCN and by Mamba's depthwise conv).

With kernel ``W [k, c_in/groups, c_out]``, dilation ``d`` and bias ``b``::

    y_t = sum_{j=0}^{k-1} W_j x_{t - (k-1-j) d} + b        (x_s = 0 for s < 0)

so ``y_t`` sees ``x_t`` and the ``(k-1) d`` inputs before it, never the
future. ``groups = c_in = c_out`` is the depthwise convolution. The step form
keeps a buffer of the last ``(k-1) d`` inputs, ``[batch, (k-1) d, c_in]``.

:class:`CausalConv` computes in ``dtype`` (``None``: ``param_dtype``): input, kernel and bias are
cast to it, so an input of any float dtype meets parameters of any dtype
(:mod:`seqjax.models.precision`).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


def causal_conv(x: Array, kernel: Array, dilation: int = 1, groups: int = 1) -> Array:
    """``y_t = sum_j W_j x_{t-(k-1-j)d}``: ``x [batch, time, c_in] -> [batch, time, c_out]`` (no bias).

    The depthwise case (``groups = c_in = c_out``) is computed as that sum of ``k`` shifted, scaled copies
    of ``x``: XLA's grouped convolution is about 10x slower on CPU (forward + backward, measured at
    ``[32, 72, 128]``, ``k = 4``).
    """
    pad = (kernel.shape[0] - 1) * dilation
    if groups > 1 and groups == x.shape[-1] == kernel.shape[-1]:
        padded = jnp.pad(x, [(0, 0), (pad, 0), (0, 0)])
        steps = x.shape[1]
        return sum(padded[:, j * dilation : j * dilation + steps] * kernel[j, 0] for j in range(kernel.shape[0]))
    return jax.lax.conv_general_dilated(
        x, kernel, window_strides=(1,), padding=[(pad, 0)], rhs_dilation=(dilation,),
        dimension_numbers=("NWC", "WIO", "NWC"), feature_group_count=groups,
    )


def causal_conv_step(buffer: Array, x_t: Array, kernel: Array, dilation: int = 1, groups: int = 1) -> tuple[Array, Array]:
    """One token of :func:`causal_conv`: ``(buffer [batch, (k-1)d, c_in], x_t) -> (buffer', y_t)``."""
    window = jnp.concatenate([buffer, x_t[:, None, :]], axis=1)  # [batch, (k-1)d + 1, c_in]
    taps = window[:, ::dilation]  # x_{t-(k-1)d}, ..., x_t
    if groups == 1:
        y = jnp.einsum("bki,kio->bo", taps, kernel)
    else:  # depthwise: kernel [k, 1, c]
        y = jnp.einsum("bkc,kc->bc", taps, kernel[:, 0, :])
    return window[:, 1:], y


class CausalConv(nn.Module):
    """A causal (dilated) convolution layer, ``y = causal_conv(x, W) + b``.

    With ``weight_norm`` the kernel is ``W = g * V / ||V||`` (norm over
    ``[k, c_in]`` per output channel; Salimans & Kingma 2016), parameters
    ``V`` (``kernel``) and ``g`` (``scale``).
    """

    features: int
    kernel_size: int
    dilation: int = 1
    depthwise: bool = False
    weight_norm: bool = False
    use_bias: bool = True
    dtype: Any = None  # compute dtype; None: param_dtype
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, buffer: Array | None = None) -> Array | tuple[Array, Array]:
        """Parallel form ``x [batch, time, c_in] -> y``; with ``buffer``, one token ``x_t -> (buffer', y_t)``."""
        dtype = self.dtype or self.param_dtype
        groups = x.shape[-1] if self.depthwise else 1
        shape = (self.kernel_size, x.shape[-1] // groups, self.features)
        v = self.param("kernel", nn.initializers.lecun_normal(), shape, self.param_dtype)
        kernel = v
        if self.weight_norm:
            norm = lambda w: jnp.sqrt(jnp.sum(w**2, axis=(0, 1)))  # noqa: E731
            kernel = self.param("scale", lambda _: norm(v)) * v / norm(v)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype) if self.use_bias else 0.0
        x, kernel, bias = x.astype(dtype), kernel.astype(dtype), jnp.asarray(bias, dtype)
        if buffer is None:
            return causal_conv(x, kernel, self.dilation, groups) + bias
        new_buffer, y = causal_conv_step(buffer.astype(dtype), x, kernel, self.dilation, groups)
        return new_buffer.astype(buffer.dtype), y + bias

    def initial_state(self, batch_size: int, c_in: int) -> Array:
        """The empty input buffer ``[batch, (k-1) d, c_in]`` (zeros: the causal padding), in the compute dtype."""
        return jnp.zeros((batch_size, (self.kernel_size - 1) * self.dilation, c_in), self.dtype or self.param_dtype)

    def step(self, buffer: Array, x_t: Array) -> tuple[Array, Array]:
        """One token: ``(buffer, x_t [batch, c_in]) -> (buffer', y_t [batch, features])``."""
        return self(x_t, buffer)
