"""The jit-compiled train and eval steps.

Train step ``s``: ``batch = sample_train(s)``, ``(L, m), g = value_and_grad(loss)(params, batch,
fold_in(dropout_key, s))``, ``u, opt_state = tx.update(g, opt_state, params)``, ``params += u``.
Logged beside the workload's metrics: ``grad_norm = ||g||_2`` (before clipping), ``param_norm`` and
``update_norm = ||u||_2``.  If ``L``, ``||g||`` or any leaf of the new parameters or optimizer state
is NaN/Inf (a finite gradient can still overflow the update, e.g. at ``optim.lr=1e39``) the update is
dropped (``jnp.where``: the old state is kept) and ``nonfinite`` counts it; the loop then stops or goes
on per ``train.on_nan``.

Under truncated BPTT (a workload with ``window_loss``) the batch is one window of each stream and the
loss starts from ``state.carry``, the stop-gradient state the previous window left (reset where a
stream starts); the carry it returns is kept with the update.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from seqjax.experiment.state import TrainState, all_finite
from seqjax.experiment.workloads import Workload


def make_train_step(
    workload: Workload, tx: optax.GradientTransformation, dropout_key: jax.Array,
    constrain: Callable[[Any], Any] = lambda batch: batch,
) -> Callable[[TrainState], tuple[TrainState, dict]]:
    """``state -> (state, metrics)``; ``constrain`` places the batch (e.g. shards it over devices)."""

    def train_step(state: TrainState) -> tuple[TrainState, dict]:
        batch = constrain(workload.sample_train(state.step))
        key = jax.random.fold_in(dropout_key, state.step)
        if workload.window_loss is None:
            (loss, metrics), grads = jax.value_and_grad(workload.loss, has_aux=True)(state.params, batch, key, True)
            carry = state.carry
        else:
            (loss, (metrics, carry)), grads = jax.value_and_grad(workload.window_loss, has_aux=True)(
                state.params, batch, state.carry)
        grad_norm = optax.tree.norm(grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & all_finite(params) & all_finite(opt_state)
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)  # noqa: E731
        new_state = TrainState(
            step=state.step + 1,
            params=keep(params, state.params),
            opt_state=keep(opt_state, state.opt_state),
            nonfinite=state.nonfinite + (~finite).astype(jnp.int32),
            carry=keep(carry, state.carry),
        )
        logged = {**metrics, "grad_norm": grad_norm, "param_norm": optax.tree.norm(new_state.params),
                  "update_norm": optax.tree.norm(updates)}
        return new_state, logged

    return train_step


def make_eval_step(workload: Workload) -> Callable[[Any, dict], dict]:
    """``(params, batch) -> metrics`` with dropout off."""

    def eval_step(params: Any, batch: dict) -> dict:
        return workload.loss(params, batch, jax.random.key(0), False)[1]

    return eval_step
