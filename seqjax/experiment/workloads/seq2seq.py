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

from typing import Any

import jax
import jax.numpy as jnp

from seqjax.errors import COUNT, NON_NEGATIVE, check_choice, checked
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

SEQ2SEQ_TASKS = ("reverse", "sort", "addition", "translate")

MODEL_EXTRA = (  # decoding settings used at evaluation
    ("beam_width", int, checked(1, COUNT)),  # 1 = greedy decoding
    ("length_penalty", float, checked(0.0, NON_NEGATIVE)),
)


def model_schema(name: str) -> type:
    check_choice("model for workload 'seq2seq'", name, ("seq2seq",))
    return with_name(Seq2SeqOptions, name, MODEL_EXTRA)


def _task(cfg: Any) -> Seq2SeqTask:
    spec = get_task(cfg.task.name)
    task = spec.make(options_of(cfg.task, spec.options))
    if not isinstance(task, Seq2SeqTask):
        check_choice("task for workload 'seq2seq'", cfg.task.name, SEQ2SEQ_TASKS)
    return task


def validate(cfg: Any) -> None:
    """Model options (e.g. a bidirectional decoder) and the task kind, before any work starts."""
    options_of(cfg.model, Seq2SeqOptions)  # Seq2SeqOptions.__post_init__ raises a one-line UserError
    _task(cfg)


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
