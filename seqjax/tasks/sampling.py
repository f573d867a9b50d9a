"""Random draws shared by the synthetic tasks."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def distinct_positions(key: jax.Array, batch_size: int, length: int, count: int, *, sort: bool = False) -> jax.Array:
    """``[batch, count]`` positions drawn uniformly without replacement from ``0..length-1``, per row.

    The ranks of ``length`` i.i.d. uniforms form a uniform random permutation; its first ``count``
    entries are a uniform draw of ``count`` distinct positions (sorted ascending when ``sort``).
    """
    u = jax.random.uniform(key, (batch_size, length), jnp.float32)  # float32 and int32: the same draw under x64
    positions = jnp.argsort(u, axis=1)[:, :count].astype(jnp.int32)
    return jnp.sort(positions, axis=1) if sort else positions


def answer_mask(batch_size: int, length: int, positions: jax.Array) -> jax.Array:
    """``[batch, length]`` float mask: 1 at ``positions[b]`` (``[batch, k]``), else 0."""
    rows = jnp.arange(batch_size)[:, None]
    return jnp.zeros((batch_size, length), jnp.float32).at[rows, positions].set(1.0)
