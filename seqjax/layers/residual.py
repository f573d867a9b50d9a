"""A pre-norm residual stack of sequence blocks (used by the S4/S4D and Mamba backbones).

::

    x_0     = W_in x + b_in                      (only when d_in != d_model)
    x_{l+1} = x_l + dropout(block_l(norm_l(x_l)))
    y       = norm(x_L)

Each block maps ``[batch, time, d_model] -> same`` and has the step pair
``initial_state(batch_size)`` / ``step(state, x_t)``; the stack threads one
state per block.  The stack's own layers compute in ``dtype`` (``None``: ``param_dtype``); the input
is cast to it (:mod:`seqjax.models.precision`); the blocks carry their own ``dtype``.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

NORMS = {"layer": nn.LayerNorm, "rms": nn.RMSNorm}


def make_norm(kind: str, **dtypes: Any) -> nn.Module:
    """``NORMS[kind](**dtypes)`` (``dtype``/``param_dtype``; Flax norms take their statistics in >= float32)."""
    if kind not in NORMS:
        raise ValueError(f"unknown norm {kind!r}: choose one of {', '.join(NORMS)}")
    return NORMS[kind](**dtypes)


class ResidualStack(nn.Module):
    """``blocks`` in pre-norm residual form with an input projection and a final norm."""

    blocks: Sequence[nn.Module]
    d_model: int
    norm: str = "layer"
    dropout: float = 0.0
    dtype: Any = None  # compute dtype; None: param_dtype
    param_dtype: Any = jnp.float32

    def setup(self) -> None:
        dtypes = dict(dtype=self.dtype or self.param_dtype, param_dtype=self.param_dtype)
        self.in_proj = nn.Dense(self.d_model, **dtypes)
        self.norms = [make_norm(self.norm, **dtypes) for _ in self.blocks]
        self.final_norm = make_norm(self.norm, **dtypes)
        self.drop = nn.Dropout(self.dropout)

    def _embed(self, x: Array) -> Array:
        return x.astype(self.dtype or self.param_dtype) if x.shape[-1] == self.d_model else self.in_proj(x)

    def __call__(self, x: Array, lengths: Array | None = None, *, deterministic: bool = True) -> Array:
        """Causal: padding after ``lengths`` never reaches a valid step, so ``lengths`` is accepted and unused."""
        x = self._embed(x)
        for norm, block in zip(self.norms, self.blocks):
            x = x + self.drop(block(norm(x)), deterministic=deterministic)
        return self.final_norm(x)

    def initial_state(self, batch_size: int) -> list[Any]:
        return [block.initial_state(batch_size) for block in self.blocks]

    def step(self, state: list[Any], x_t: Array) -> tuple[list[Any], Array]:
        """One token (dropout off): ``x_t [batch, d_in] -> y_t [batch, d_model]``."""
        x_t = self._embed(x_t)
        new_state = []
        for norm, block, s in zip(self.norms, self.blocks, state):
            s, y = block.step(s, norm(x_t))
            x_t = x_t + y
            new_state.append(s)
        return new_state, self.final_norm(x_t)
