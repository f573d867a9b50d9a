"""The adding problem (Hochreiter & Schmidhuber 1997), in the TCN-paper and uRNN variants.

Inputs ``[T, 2]``: channel 0 holds values ``u_t ~ U[0, 1)``, channel 1 is zero except two 1s at
positions ``p_1 != p_2``.  Target ``y = u_{p_1} + u_{p_2}``; loss = MSE on the last output.

* ``variant="tcn"`` (Bai et al. 2018): both positions uniform over the whole sequence;
* ``variant="urnn"`` (Arjovsky et al. 2016): ``p_1`` uniform in the first half, ``p_2`` in the second.

Predicting the constant 1 gives ``MSE = Var(U_1 + U_2) = 2/12 = 1/6``, the memoryless baseline.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from seqjax.errors import Range, checked
from seqjax.tasks.base import Task, regression_metrics
from seqjax.tasks.options import check_seq_len, check_variant
from seqjax.tasks.registry import register_task
from seqjax.tasks.sampling import distinct_positions
from seqjax.typing import Batch

ADDING_VARIANTS = ("tcn", "urnn")


@dataclasses.dataclass
class AddingOptions:
    seq_len: int = checked(50, Range(2, integer=True))
    variant: str = checked("tcn", choices=ADDING_VARIANTS)


def _marker_positions(key: jax.Array, batch_size: int, seq_len: int, variant: str) -> jax.Array:
    """``[B, 2]`` marker positions, distinct within each row."""
    if variant == "tcn":
        return distinct_positions(key, batch_size, seq_len, 2)
    half = seq_len // 2
    k1, k2 = jax.random.split(key)
    first = jax.random.randint(k1, (batch_size,), 0, half, dtype=jnp.int32)
    second = jax.random.randint(k2, (batch_size,), half, seq_len, dtype=jnp.int32)
    return jnp.stack([first, second], axis=1)


@register_task("adding", AddingOptions)
def adding(opts: AddingOptions) -> Task:
    check_variant("adding", opts.variant, ADDING_VARIANTS)
    check_seq_len("adding", opts.seq_len, 2)
    T = opts.seq_len

    def sample(key: jax.Array, batch_size: int) -> Batch:
        k_val, k_pos = jax.random.split(key)
        values = jax.random.uniform(k_val, (batch_size, T), jnp.float32)
        positions = _marker_positions(k_pos, batch_size, T, opts.variant)
        markers = jnp.zeros((batch_size, T), jnp.float32).at[jnp.arange(batch_size)[:, None], positions].set(1.0)
        target = jnp.sum(values * markers, axis=1, keepdims=True)
        return {"inputs": jnp.stack([values, markers], axis=-1), "targets": target}

    baseline = {"loss": 1.0 / 6.0, "mse": 1.0 / 6.0, "solved": 0.0}
    return Task(name="adding", sample=sample, kind="regress_last", input_vocab=None, input_dim=2, output_dim=1,
                seq_len=T, baseline=baseline, metrics=regression_metrics)
