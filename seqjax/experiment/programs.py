"""A config's workload, optimizer and jitted programs, built once per process: :func:`programs_for`.

JAX caches a jitted function's traces and compiled executables on the function object, so a second
:class:`~seqjax.experiment.loop.Trainer` that built its own closures for the same config would trace and lower
every program again (the persistent compilation cache, :mod:`~seqjax.experiment.compilation_cache`, saves only
the XLA compile): the ``seqjax eval`` or resumed run that follows a training run in one Python process, a
notebook that trains and then evaluates.  :func:`programs_for` keeps the programs of the ``KEPT`` configs used
last, keyed by the config's YAML (everything a run depends on is in its config), and hands the same objects to
every trainer of an identical config.

>>> from seqjax.experiment.config import load_config
>>> cfg = load_config("configs/experiments/smoke_adding.yaml")
>>> programs_for(cfg) is programs_for(load_config("configs/experiments/smoke_adding.yaml"))
True
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from typing import Any, Callable

import jax
import optax
from omegaconf import DictConfig

from seqjax.experiment import distributed
from seqjax.experiment.config import to_yaml
from seqjax.experiment.optim import make_optimizer, make_schedule
from seqjax.experiment.state import TrainState
from seqjax.experiment.step import make_eval_step, make_train_step
from seqjax.experiment.workloads import Workload, build_workload

KEPT = 4  # configs whose programs (and their compiled executables) stay alive


@dataclasses.dataclass(frozen=True)
class Programs:
    """Everything a trainer of one config builds: workload, mesh, optimizer, keys and jitted programs."""

    workload: Workload
    mesh: Any
    tx: optax.GradientTransformation
    schedule: Callable[[Any], jax.Array]  # jitted: the logged learning rate is one program, not one per op
    init_key: jax.Array
    dropout_key: jax.Array
    create: Callable[[jax.Array], TrainState]  # init_key -> the initial state, replicated over the mesh
    train_step: Callable[[TrainState], tuple[TrainState, dict]]
    eval_step: Callable[[Any, Any], dict]


def build_programs(cfg: DictConfig) -> Programs:
    """:class:`Programs` built afresh for ``cfg`` (checks that the batch sizes divide over the devices)."""
    workload = build_workload(cfg)
    mesh = distributed.data_mesh()
    distributed.check_divisible("train.batch_size", cfg.train.batch_size, mesh)
    distributed.check_divisible("train.eval_batch_size", cfg.train.eval_batch_size, mesh)
    tx = make_optimizer(cfg.optim, cfg.train.steps, workload.param_labels)
    init_key, dropout_key = jax.random.split(jax.random.key(cfg.seed))
    create = lambda key: TrainState.create(workload.init(key), tx, workload.init_carry())  # noqa: E731
    return Programs(
        workload=workload, mesh=mesh, tx=tx, schedule=jax.jit(make_schedule(cfg.optim, cfg.train.steps)),
        init_key=init_key, dropout_key=dropout_key,
        create=jax.jit(create, out_shardings=distributed.replicated(mesh)),
        train_step=jax.jit(make_train_step(workload, tx, dropout_key, distributed.constrain_batch(mesh)),
                           out_shardings=(distributed.replicated(mesh), None), donate_argnums=0),
        eval_step=jax.jit(make_eval_step(workload)),
    )


_kept: collections.OrderedDict[str, Programs] = collections.OrderedDict()
_lock = threading.Lock()


def programs_for(cfg: DictConfig) -> Programs:
    """The :class:`Programs` of ``cfg``: those of an identical config used earlier in this process, if one of
    the last ``KEPT``, else :func:`build_programs`."""
    key = to_yaml(cfg)
    with _lock:
        if key in _kept:
            _kept.move_to_end(key)
            return _kept[key]
    built = build_programs(cfg)
    with _lock:
        _kept[key] = built
        while len(_kept) > KEPT:
            _kept.popitem(last=False)
    return built
