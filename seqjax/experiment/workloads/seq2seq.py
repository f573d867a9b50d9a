"""The ``seq2seq`` workload: an encoder–decoder trained on a generated seq2seq task.

Select it with ``workload: seq2seq`` and ``model.name: seq2seq`` (``configs/models/seq2seq*.yaml``);
the task is one of ``reverse``, ``sort``, ``addition``, ``translate`` (:mod:`seqjax.tasks.seq2seq`).

* training loss: masked token cross-entropy under teacher forcing (scheduled sampling when
  ``model.scheduled_sampling > 0``; the step's dropout key draws the coins);
* evaluation adds the decoded metrics of greedy decoding (or beam search with
  ``model.beam_width > 1`` and GNMT ``model.length_penalty``), up to the task's longest target:
  ``exact_match``, ``token_accuracy`` and, for ``translate``, corpus ``bleu`` (sacrebleu via a host
  callback; the trainer averages it over evaluation pieces of ``train.eval_batch_size``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from seqjax.errors import UserError
from seqjax.experiment.schema import options_of, with_name
from seqjax.experiment.workloads import (
    Workload,
    WorkloadSpec,
    register_workload,
    task_data,
)
from seqjax.models.seq2seq import Seq2Seq, Seq2SeqOptions, generate, masked_loss
from seqjax.tasks import get_task
from seqjax.tasks.seq2seq import Seq2SeqTask, bleu_in_jit, decoded_metrics

MODEL_EXTRA = (  # decoding settings used at evaluation
    ("beam_width", int, dataclasses.field(default=1)),
    ("length_penalty", float, dataclasses.field(default=0.0)),
)


def model_schema(name: str) -> type:
    if name != "seq2seq":
        raise UserError(f"workload 'seq2seq' builds the model 'seq2seq', got {name!r}: choose one of seq2seq")
    return with_name(Seq2SeqOptions, name, MODEL_EXTRA)


def _task(cfg: Any) -> Seq2SeqTask:
    spec = get_task(cfg.task.name)
    task = spec.make(options_of(cfg.task, spec.options))
    if not isinstance(task, Seq2SeqTask):
        raise UserError(f"task {cfg.task.name!r} is not a seq2seq task: with workload 'seq2seq' choose one of "
                        "reverse, sort, addition, translate")
    return task


def validate(cfg: Any) -> None:
    """Model options (e.g. a bidirectional decoder) and the task kind, before any work starts."""
    options_of(cfg.model, Seq2SeqOptions)  # Seq2SeqOptions.__post_init__ raises a one-line UserError
    _task(cfg)
    if cfg.model.beam_width < 1:
        raise UserError(f"model.beam_width={cfg.model.beam_width} must be at least 1 (1 = greedy decoding)")


def build(cfg: Any) -> Workload:
    task = _task(cfg)
    model = Seq2Seq(options_of(cfg.model, Seq2SeqOptions), task.src_vocab, task.tgt_vocab)
    beam_width, alpha = int(cfg.model.beam_width), float(cfg.model.length_penalty)

    def init(key: jax.Array) -> Any:
        ex = task.sample(jax.random.key(0), 1)
        return model.init({"params": key}, ex["src"], ex["src_len"], ex["tgt"])["params"]

    def loss(params: Any, batch: dict, key: jax.Array, train: bool) -> tuple[jax.Array, dict]:
        variables = {"params": params}
        src, src_len, tgt, tgt_len = batch["src"], batch["src_len"], batch["tgt"], batch["tgt_len"]
        logits, _ = model.apply(variables, src, src_len, tgt, key=key if train else None)
        value = masked_loss(logits, tgt, tgt_len)
        forced = decoded_metrics(jnp.argmax(logits, -1), tgt, tgt_len)["token_accuracy"]
        metrics = {"loss": value, "teacher_forced_accuracy": forced}
        if not train:
            out = generate(model, variables, src, src_len, max_len=task.max_tgt_len, beam_width=beam_width,
                           alpha=alpha)
            metrics.update(decoded_metrics(out.tokens, tgt, tgt_len))
            if task.bleu:
                metrics["bleu"] = bleu_in_jit(out.tokens, tgt)
        return value, metrics

    return Workload(init=init, loss=loss, **task_data(task, cfg))


register_workload("seq2seq", WorkloadSpec(model_schema=model_schema, build=build, validate=validate))
