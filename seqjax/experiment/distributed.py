"""Data parallelism with ``jax.sharding``: a 1-D mesh ``("data",)`` over every device.

The batch is sharded along its leading axis, parameters and optimizer state are replicated; XLA
inserts the gradient all-reduce.  A vmapped group of trials runs on a 2-D mesh ``("trials", "data")``
(:func:`group_mesh`): its state is sharded along the leading trial axis and each trial's batch over
``data``, so K trials on D devices use every device.  Multi-host runs call :func:`jax.distributed.initialize` when the
standard environment variables are set (``JAX_COORDINATOR_ADDRESS`` or ``COORDINATOR_ADDRESS``, with
``JAX_NUM_PROCESSES``/``NUM_PROCESSES`` and ``JAX_PROCESS_ID``/``PROCESS_ID``).
"""

from __future__ import annotations

import math
import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from seqjax.errors import UserError

DATA, TRIALS = "data", "trials"  # the mesh axes: the batch's, and a vmapped group's trial axis

_initialized = False


def _env(*names: str) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


def maybe_initialize() -> bool:
    """Call ``jax.distributed.initialize`` once when a coordinator address is in the environment."""
    global _initialized
    address = _env("JAX_COORDINATOR_ADDRESS", "COORDINATOR_ADDRESS")
    if _initialized or address is None:
        return _initialized
    count, index = _env("JAX_NUM_PROCESSES", "NUM_PROCESSES"), _env("JAX_PROCESS_ID", "PROCESS_ID")
    jax.distributed.initialize(
        coordinator_address=address,
        num_processes=int(count) if count else None,
        process_id=int(index) if index else None,
    )
    _initialized = True
    return True


def data_mesh() -> Mesh:
    return Mesh(np.asarray(jax.devices()), (DATA,))


def group_mesh(trials: int) -> Mesh:
    """The mesh ``(trials, data)`` over every device for a vmapped group of ``trials`` trials.

    The trial axis is the largest size dividing both the device count ``D`` and ``trials`` (their gcd: no
    padding trials); the data axis takes the other ``D / gcd`` devices.  Every trial's batch size is a
    multiple of ``D`` (its :class:`~seqjax.experiment.loop.Trainer` checks it, so it also runs alone), hence
    of the data axis.  A trial's data shards are neighbouring devices, where its gradient all-reduce runs.

    >>> mesh = group_mesh(3)
    >>> dict(mesh.shape) == {"trials": 1, "data": jax.device_count()}
    True
    """
    devices = np.asarray(jax.devices())
    size = math.gcd(devices.size, trials)
    return Mesh(devices.reshape(size, devices.size // size), (TRIALS, DATA))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """The leading (batch) axis split over ``data``; replicated over a group mesh's trial axis."""
    return NamedSharding(mesh, PartitionSpec(DATA))


def trial_sharding(mesh: Mesh) -> NamedSharding:
    """A vmapped group's state on a :func:`group_mesh`: the leading trial axis split over ``trials``,
    replicated over ``data``."""
    return NamedSharding(mesh, PartitionSpec(TRIALS))


def check_divisible(what: str, size: int, mesh: Mesh) -> None:
    """One line when ``size`` rows cannot be split evenly over the mesh's ``data`` axis."""
    shards = mesh.shape[DATA]
    if size % shards:
        which = "devices" if shards == mesh.size else "devices that split each trial's batch"
        raise UserError(f"{what}={size} must be a multiple of the number of {which} ({shards}) "
                        "for data parallelism")


def constrain_batch(mesh: Mesh):
    """Inside jit: shard every batch leaf along its leading (batch) axis."""
    sharding = batch_sharding(mesh)

    def constrain(batch: Any) -> Any:
        return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, sharding), batch)

    return constrain


def is_main_process() -> bool:
    return jax.process_index() == 0
