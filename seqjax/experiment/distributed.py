"""Data parallelism with ``jax.sharding``: a 1-D mesh ``("data",)`` over every device.

The batch is sharded along its leading axis, parameters and optimizer state are replicated; XLA
inserts the gradient all-reduce.  Multi-host runs call :func:`jax.distributed.initialize` when the
standard environment variables are set (``JAX_COORDINATOR_ADDRESS`` or ``COORDINATOR_ADDRESS``, with
``JAX_NUM_PROCESSES``/``NUM_PROCESSES`` and ``JAX_PROCESS_ID``/``PROCESS_ID``).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from seqjax.errors import UserError

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
    return Mesh(np.asarray(jax.devices()), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec("data"))


def check_divisible(what: str, size: int, mesh: Mesh) -> None:
    if size % mesh.size:
        raise UserError(f"{what}={size} must be a multiple of the number of devices ({mesh.size}) "
                        "for data parallelism")


def constrain_batch(mesh: Mesh):
    """Inside jit: shard every batch leaf along its leading (batch) axis."""
    sharding = batch_sharding(mesh)

    def constrain(batch: Any) -> Any:
        return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, sharding), batch)

    return constrain


def is_main_process() -> bool:
    return jax.process_index() == 0
