"""Linear readout ``y_t = W_o h_t + b_o`` as a pair of pure functions."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from seqjax.initializers import input_init


def readout_init(key: jax.Array, hidden_size: int, output_size: int, param_dtype: Any = jnp.float32) -> dict:
    """Parameters ``{"w_o": [hidden, out], "b_o": [out]}``; ``W_o ~ N(0, 1/hidden)``, ``b_o = 0``."""
    return {
        "w_o": input_init(key, (hidden_size, output_size), param_dtype),
        "b_o": jnp.zeros((output_size,), param_dtype),
    }


def readout(params: dict, h: jax.Array) -> jax.Array:
    """``y = h @ W_o + b_o`` over any leading shape (``y_t = W_o h_t + b_o`` per step)."""
    return h @ params["w_o"].astype(h.dtype) + params["b_o"].astype(h.dtype)
