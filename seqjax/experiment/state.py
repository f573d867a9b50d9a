"""The training state: everything a checkpoint holds and a resumed run needs.

The data and dropout keys are not stored: step ``s`` uses ``fold_in(key, s)`` of keys derived from
the config's seeds, so ``(step, params, opt_state)`` determine the rest of the run.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


class TrainState(NamedTuple):
    step: jax.Array  # int32 scalar: number of updates taken
    params: Any
    opt_state: Any
    nonfinite: jax.Array  # int32 scalar: steps whose loss or gradient was NaN/Inf (update skipped)

    @classmethod
    def create(cls, params: Any, tx: optax.GradientTransformation) -> "TrainState":
        zero = jnp.zeros((), jnp.int32)
        return cls(zero, params, tx.init(params), zero)
