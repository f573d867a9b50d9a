"""Selective copying (Gu & Dao 2023, Mamba paper §4.1 / Table 1).

Vocabulary ``V`` (default 16): token 0 is noise, token ``V-1`` the marker, data tokens are ``1..V-2``.
``L`` counts the *noise* tokens, as in the paper and the S4 repository's generator it used: the ``M``
data tokens sit at random *sorted* positions among them (an input region of ``L + M`` tokens), then come
``M`` markers, so an example is ``T = L + 2M`` tokens long.  At the ``M`` marker positions the model must
output the data tokens in order.  Unlike the copy task the gaps vary, so a time-invariant (LTI) model
cannot solve it by a fixed delay: content-dependent selection is needed.

Loss: cross-entropy on the ``M`` answer positions only.  Memoryless baseline: uniform over the
``V - 2`` data tokens, ``CE = ln(V - 2)``, accuracy ``1/(V - 2)``.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from seqjax.errors import COUNT, Range, check_range, checked
from seqjax.tasks.base import Task, step_classification_metrics
from seqjax.tasks.options import check_seq_len
from seqjax.tasks.registry import register_task
from seqjax.tasks.sampling import distinct_positions
from seqjax.typing import Batch


@dataclasses.dataclass
class SelectiveCopyOptions:
    seq_len: int = checked(256, COUNT)  # L: the noise tokens (an example is L + 2M tokens long)
    num_tokens: int = checked(16, COUNT)  # M
    vocab_size: int = checked(16, Range(4, integer=True))  # V, including noise (0) and marker (V-1)


@register_task("selective_copy", SelectiveCopyOptions)
def selective_copy(opts: SelectiveCopyOptions) -> Task:
    L, M, V = opts.seq_len, opts.num_tokens, opts.vocab_size
    check_seq_len("selective_copy", L, 1)
    check_range("vocab_size", V, 4, integer=True, where="selective_copy")

    def sample(key: jax.Array, batch_size: int) -> Batch:
        k_tok, k_pos = jax.random.split(key)
        data = jax.random.randint(k_tok, (batch_size, M), 1, V - 1, dtype=jnp.int32)
        positions = distinct_positions(k_pos, batch_size, L + M, M, sort=True)
        rows = jnp.arange(batch_size)[:, None]
        region = jnp.zeros((batch_size, L + M), jnp.int32).at[rows, positions].set(data)
        inputs = jnp.concatenate([region, jnp.full((batch_size, M), V - 1, jnp.int32)], axis=1)
        targets = jnp.concatenate([jnp.zeros((batch_size, L + M), jnp.int32), data], axis=1)
        mask = jnp.concatenate([jnp.zeros((batch_size, L + M)), jnp.ones((batch_size, M))], axis=1)
        return {"inputs": inputs, "targets": targets, "mask": mask}

    ce = math.log(V - 2)
    baseline = {"loss": ce, "ce": ce, "accuracy": 1.0 / (V - 2)}
    return Task(name="selective_copy", sample=sample, kind="classify_steps", input_vocab=V, input_dim=V,
                output_dim=V, seq_len=L + 2 * M, baseline=baseline, metrics=step_classification_metrics)

