"""The trainer's hook for model families: a :class:`Workload` built from a config.

The loop in :mod:`seqjax.experiment.loop` knows nothing about models or tasks; it asks a workload for

* ``init(key) -> params``: a fresh parameter pytree;
* ``loss(params, batch, key, train) -> (loss, metrics)``: the scalar training loss and a dict of
  scalar metrics (``metrics["loss"]`` included); ``key`` drives dropout; ``train=False`` for eval;
  pure and jit-able;
* ``sample_train(step) -> batch``: the training batch of ``step`` (a traced int), a pure function of
  ``fold_in(data_key, step)`` -- this is what makes resuming exact;
* ``eval_set(split, num_examples) -> batch``: the fixed ``"val"`` / ``"test"`` sets, the same on every
  call; the loop cuts them into ``train.eval_batch_size`` pieces and averages ``metrics`` over them;
* ``baseline``: the memoryless predictor's metrics, reported beside the model's;
* ``param_labels`` (optional): ``params -> pytree of str labels`` for optimizer parameter groups
  (e.g. ``"ssm"`` leaves get ``optim.ssm_lr`` and no weight decay);
* ``window_loss``, ``init_carry`` (optional, truncated BPTT): ``window_loss(params, window, carry) ->
  (loss, (metrics, carry))`` on one window of each stream from the carried state, and ``init_carry()``,
  the carry before training (:mod:`seqjax.experiment.workloads.windows`);
* ``model``, ``task`` (optional): the Flax module the parameters belong to and the task it was built
  for, for streaming (:mod:`seqjax.experiment.session`; the ``supervised`` workload sets them).

A family registers a :class:`WorkloadSpec` under a name selected by the config's top-level
``workload`` key (default ``"supervised"``)::

    register_workload("seq2seq", WorkloadSpec(model_schema=seq2seq_schema, build=build_seq2seq))

``model_schema(model_name) -> dataclass`` is the typed schema the config's ``model`` section is
validated against; ``validate(cfg)`` (optional) raises a one-line ``UserError`` for combinations
the schema cannot express (e.g. a bidirectional model on a per-step task) before any work starts;
``build(cfg) -> Workload`` builds everything from the validated config.  Add the
registering module's import to :mod:`seqjax.experiment.workloads.builtin`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

from seqjax.registry import Registry
from seqjax.typing import Array, Batch, Params


@dataclasses.dataclass(frozen=True)
class Workload:
    init: Callable[[Array], Params]
    loss: Callable[[Params, Batch, Array, bool], tuple[Array, dict[str, Array]]]
    sample_train: Callable[[Array], Batch]
    eval_set: Callable[[str, int], Batch]
    baseline: dict[str, float]
    param_labels: Callable[[Params], Any] | None = None
    window_loss: Callable[[Params, Batch, Any], tuple[Array, tuple[dict[str, Array], Any]]] | None = None
    init_carry: Callable[[], Any] = lambda: ()
    model: Any = None
    task: Any = None


def task_data(task: Any, cfg: Any) -> dict[str, Any]:
    """The data fields of a workload on a synthetic ``task``: ``sample_train``, ``eval_set``, ``baseline``.

    Batches come from :func:`seqjax.tasks.train_batch` / :func:`seqjax.tasks.fixed_split` under
    ``cfg.data_seed`` with ``cfg.train.batch_size``; pass them on as ``Workload(..., **task_data(task, cfg))``.
    """
    from seqjax.tasks import fixed_split, train_batch

    seed, batch_size = cfg.data_seed, cfg.train.batch_size
    return dict(
        sample_train=lambda step: train_batch(task, seed, step, batch_size),
        eval_set=lambda split, n: fixed_split(task, seed, split, n),
        baseline=dict(task.baseline),
    )


class WorkloadSpec(NamedTuple):
    model_schema: Callable[[str], type]
    build: Callable[[Any], Workload]
    validate: Callable[[Any], None] | None = None  # cross-section checks, run when the config loads


WORKLOADS: Registry[WorkloadSpec] = Registry("workload", "seqjax.experiment.workloads.builtin")


def register_workload(name: str, spec: WorkloadSpec) -> None:
    WORKLOADS.register(name, spec)


def get_workload(name: str) -> WorkloadSpec:
    return WORKLOADS.get(name)


def build_workload(cfg: Any) -> Workload:
    return get_workload(cfg.workload).build(cfg)
