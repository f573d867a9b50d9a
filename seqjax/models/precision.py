"""The two precision keys every model takes: ``dtype`` (compute) and ``param_dtype`` (storage).

* ``param_dtype`` (default ``"float32"``): the dtype of every parameter;
* ``dtype`` (default unset): the dtype the model computes in; unset means ``param_dtype``.

Inputs of any floating dtype are cast to the compute dtype, so a model's output dtype is set by
its config, never by its input (bfloat16 data into a float32 model runs in float32; float64 data
under ``jax_enable_x64`` into a float32 model runs in float32 too).  ``dtype=bfloat16`` with
float32 parameters is mixed precision: matmuls and activations in bfloat16, parameters (and so
gradients and optimizer state) in float32.  Parts that need more range than bfloat16 keep at least
float32: normalization statistics, attention softmax, the S4/S4D kernels (complex) and FFT
convolutions, and the Mamba selective-scan state.  ``float64`` needs ``JAX_ENABLE_X64=1``.

The Flax modules of :mod:`seqjax.models` take the same pair as ``dtype`` (``None``: ``param_dtype``)
and ``param_dtype`` (default ``jnp.float32``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from seqjax.errors import UserError, check_choice

DTYPES = ("float32", "bfloat16", "float16", "float64")


class BlockDtypes:
    """For a Flax block with the fields ``dtype`` (``None``: ``param_dtype``) and ``param_dtype``:
    ``_dtype()`` the compute dtype, ``_real()`` at least float32 (recurrence states, norms)."""

    dtype: Any
    param_dtype: Any

    def _dtype(self) -> Any:
        return self.dtype or self.param_dtype

    def _real(self) -> Any:
        return jnp.promote_types(self._dtype(), jnp.float32)


def check_precision(model: str, opts: Any) -> None:
    """One-line ``UserError`` for an unknown dtype, or float64 without 64-bit JAX."""
    for key, allowed in (("dtype", (None, *DTYPES)), ("param_dtype", DTYPES)):
        value = getattr(opts, key)
        check_choice(key, value, allowed, where=model)
        if value == "float64" and not jax.config.jax_enable_x64:
            raise UserError(f"{model}: {key}=float64 needs 64-bit JAX: set JAX_ENABLE_X64=1 (or use float32)")


def param_dtype(opts: Any) -> jnp.dtype:
    return jnp.dtype(opts.param_dtype)


def compute_dtype(opts: Any) -> jnp.dtype:
    """``opts.dtype``, or ``opts.param_dtype`` when unset."""
    return jnp.dtype(opts.dtype or opts.param_dtype)


def dtypes(opts: Any) -> dict[str, jnp.dtype]:
    """``{"dtype": ..., "param_dtype": ...}``: keyword arguments for a :mod:`seqjax.models` module."""
    return {"dtype": compute_dtype(opts), "param_dtype": param_dtype(opts)}
