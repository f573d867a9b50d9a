"""Induction heads (Olsson et al. 2022; Gu & Dao 2023, Table 11).

Tokens ``0..V-2`` are drawn uniformly; a special token ``V-1`` is placed at a random position ``p`` and
again at the last position.  After the second occurrence the model must output the token that followed
the first, ``x_{p+1}``.  Trained at one length, it can be tested at others (``seq_len`` is an option).

Loss: cross-entropy at the last position only.  Memoryless baseline: uniform over the ``V - 1``
ordinary tokens, ``CE = ln(V - 1)``, accuracy ``1/(V - 1)``.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from seqjax.tasks.base import Task, step_classification_metrics
from seqjax.errors import Range, checked
from seqjax.tasks.options import check_seq_len
from seqjax.tasks.registry import register_task
from seqjax.tasks.sampling import answer_mask
from seqjax.typing import Batch


@dataclasses.dataclass
class InductionOptions:
    seq_len: int = checked(256, Range(3, integer=True))
    vocab_size: int = checked(16, Range(2, integer=True))  # including the special token V-1


@register_task("induction", InductionOptions)
def induction_heads(opts: InductionOptions) -> Task:
    L, V = opts.seq_len, opts.vocab_size
    check_seq_len("induction", L, 3)

    def sample(key: jax.Array, batch_size: int) -> Batch:
        k_tok, k_pos = jax.random.split(key)
        rows = jnp.arange(batch_size)
        tokens = jax.random.randint(k_tok, (batch_size, L), 0, V - 1, dtype=jnp.int32)
        first = jax.random.randint(k_pos, (batch_size,), 0, L - 2, dtype=jnp.int32)  # x_{p+1} lies before the last position
        answer = tokens[rows, first + 1]
        inputs = tokens.at[rows, first].set(V - 1).at[:, L - 1].set(V - 1)
        targets = jnp.zeros((batch_size, L), jnp.int32).at[:, L - 1].set(answer)
        mask = answer_mask(batch_size, L, jnp.full((batch_size, 1), L - 1))
        return {"inputs": inputs, "targets": targets, "mask": mask}

    ce = math.log(V - 1)
    baseline = {"loss": ce, "ce": ce, "accuracy": 1.0 / (V - 1)}
    return Task(name="induction", sample=sample, kind="classify_steps", input_vocab=V, input_dim=V, output_dim=V,
                seq_len=L, baseline=baseline, metrics=step_classification_metrics)
