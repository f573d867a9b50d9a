"""The training state: everything a checkpoint holds and a resumed run needs.

Under truncated BPTT (``train.tbptt``) ``carry`` holds the model's state between windows, so a resumed
run continues each stream where it stopped; otherwise it is empty.  The data and dropout keys are not stored: step ``s`` uses ``fold_in(key, s)`` of keys derived from
the config's seeds, so ``(step, params, opt_state)`` determine the rest of the run.  A state is kept
finite: :func:`all_finite` guards every update (inside jit) and :func:`nonfinite_leaves` every
checkpoint (on the host); :class:`Diverged` stops a run under ``train.on_nan=stop``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax


class TrainState(NamedTuple):
    step: jax.Array  # int32 scalar: number of updates taken
    params: Any
    opt_state: Any
    nonfinite: jax.Array  # int32 scalar: steps whose update was dropped (NaN/Inf loss, gradient or new state)
    carry: Any = ()  # train.tbptt: the model's state after the last window (stop-gradient)

    @classmethod
    def create(cls, params: Any, tx: optax.GradientTransformation, carry: Any = ()) -> "TrainState":
        zero = jnp.zeros((), jnp.int32)
        return cls(zero, params, tx.init(params), zero, carry)


class Diverged(RuntimeError):
    """The loss, gradients or updated state became NaN/Inf with ``train.on_nan=stop`` (exit code 1)."""


def all_finite(tree: Any) -> jax.Array:
    """A boolean scalar: no floating-point leaf of ``tree`` holds NaN or Inf (traceable under jit)."""
    checks = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(checks)) if checks else jnp.asarray(True)


def host_copy(tree: Any) -> Any:
    """Every leaf as a NumPy array; a replicated global array is read from this process's own replica, so
    this works on every process of a multi-host run."""
    def host(x: Any) -> np.ndarray:
        replicated = isinstance(x, jax.Array) and x.is_fully_replicated
        return np.asarray(x.addressable_data(0) if replicated else x)

    return jax.tree.map(host, tree)


def nonfinite_leaves(host_tree: Any) -> list[str]:
    """The paths (``.params['head']['out']['kernel']``) of the leaves of a host tree holding NaN or Inf."""
    return [jax.tree_util.keystr(path) for path, x in jax.tree_util.tree_flatten_with_path(host_tree)[0]
            if jnp.issubdtype(x.dtype, jnp.inexact) and not np.all(np.isfinite(x))]  # jnp: bfloat16 too
