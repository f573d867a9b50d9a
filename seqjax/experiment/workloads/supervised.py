"""The ``supervised`` workload: a registry backbone with a task head, trained on a synthetic task.

``loss(params, batch, key, train) = task.metrics(model(batch.inputs), batch)["loss"]`` -- MSE on the
last step for ``regress_last``, (masked mean) cross-entropy for ``classify_*``.  With ``train.tbptt`` a
per-step task's streams are trained in windows (:mod:`seqjax.experiment.workloads.windows`).
"""

from __future__ import annotations

from typing import Any

import jax

from seqjax.errors import COUNT, UserError, checked
from seqjax.experiment.schema import options_of, with_name
from seqjax.experiment.workloads import (
    Workload,
    WorkloadSpec,
    register_workload,
    task_data,
)
from seqjax.experiment.workloads.windows import check_windows, stream_length, window_loss, window_sampler, zero_carry
from seqjax.models.registry import check_task, get_backbone, is_causal
from seqjax.models.sequence_model import build_model
from seqjax.tasks import TASK_KINDS, Task, get_task

MODEL_EXTRA = (("embed_dim", int, checked(32, COUNT)),)  # token-input embedding width


def model_schema(name: str) -> type:
    """``name`` + ``embed_dim`` + the backbone's options dataclass."""
    return with_name(get_backbone(name).options, name, MODEL_EXTRA)


def _task_and_options(cfg: Any) -> tuple[Task, Any]:
    task_spec = get_task(cfg.task.name)
    task = task_spec.make(options_of(cfg.task, task_spec.options))
    if task.kind not in TASK_KINDS:  # e.g. a seq2seq task, which has its own workload
        raise UserError(f"task {cfg.task.name!r} is a {task.kind} task: set 'workload: {task.kind}' in the "
                        f"experiment (the supervised workload takes {', '.join(TASK_KINDS)} tasks)")
    return task, options_of(cfg.model, get_backbone(cfg.model.name).options)


def validate(cfg: Any) -> None:
    """The backbone must suit the task (:func:`seqjax.models.registry.check_task`), checked once, here."""
    task, backbone_opts = _task_and_options(cfg)
    check_task(task, cfg.model.name, backbone_opts)
    if cfg.train.tbptt is not None:
        if task.kind != "classify_steps" or not is_causal(cfg.model.name, backbone_opts):
            raise UserError(f"train.tbptt trains a causal model on per-step targets: task {cfg.task.name!r} is "
                            f"{task.kind} and model {cfg.model.name!r} is {'' if is_causal(cfg.model.name, backbone_opts) else 'not '}causal")
        check_windows(cfg.train.tbptt, stream_length(task.sample), getattr(backbone_opts, "dropout", 0.0))


def build(cfg: Any) -> Workload:
    task, backbone_opts = _task_and_options(cfg)
    model = build_model(cfg.model.name, backbone_opts, task, embed_dim=cfg.model.embed_dim)

    def init(key: jax.Array) -> Any:
        example = task.sample(jax.random.key(0), 1)
        return model.init({"params": key}, example["inputs"], example.get("lengths"))["params"]

    def loss(params: Any, batch: dict, key: jax.Array, train: bool) -> tuple[jax.Array, dict]:
        outputs = model.apply(
            {"params": params}, batch["inputs"], batch.get("lengths"),
            deterministic=not train, rngs={"dropout": key},
        )
        metrics = task.metrics(outputs, batch)
        return metrics["loss"], metrics

    data, windows = task_data(task, cfg), {}
    if cfg.train.tbptt is not None:
        data["sample_train"] = window_sampler(data["sample_train"], stream_length(task.sample), cfg.train.tbptt)
        params_shape = jax.eval_shape(init, jax.random.key(0))
        windows = dict(window_loss=window_loss(model, task.metrics),
                       init_carry=lambda: zero_carry(model, params_shape, cfg.train.batch_size))
    return Workload(
        init=init,
        loss=loss,
        param_labels=get_backbone(cfg.model.name).param_labels,
        model=model,
        task=task,
        **windows,
        **data,
    )


register_workload("supervised", WorkloadSpec(model_schema=model_schema, build=build, validate=validate))
