"""The copy-memory problem (Hochreiter & Schmidhuber 1997), uRNN and TCN-paper variants.

Alphabet 0..9: 0 = blank, 9 = delimiter, 1..8 = symbols.  Input (length ``T + 20``): 10 symbols drawn
uniformly from 1..8, then ``T - 1`` blanks, a delimiter, then 10 blanks (``variant="urnn"``, Arjovsky
et al. 2016); ``variant="tcn"`` (Bai et al. 2018) repeats the delimiter over the last 11 positions.
Target: blank for the first ``T + 10`` positions, then the 10 symbols.  Loss: cross-entropy averaged over
all ``T + 20`` positions.

The memoryless baseline predicts blank until the delimiter, then uniform over the 8 symbols:
``CE = 10 ln 8 / (T + 20)``.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from seqjax.errors import COUNT, checked
from seqjax.tasks.base import Task, step_classification_metrics
from seqjax.tasks.options import check_seq_len, check_variant
from seqjax.tasks.registry import register_task
from seqjax.typing import Batch

COPY_VARIANTS = ("urnn", "tcn")
BLANK, DELIMITER, NUM_SYMBOLS, COPY_LENGTH, VOCAB = 0, 9, 8, 10, 10


@dataclasses.dataclass
class CopyOptions:
    seq_len: int = checked(100, COUNT)  # T: the gap between the symbols and their recall
    variant: str = checked("urnn", choices=COPY_VARIANTS)


def copy_batch(key: jax.Array, batch_size: int, T: int, variant: str) -> Batch:
    symbols = jax.random.randint(key, (batch_size, COPY_LENGTH), 1, NUM_SYMBOLS + 1, dtype=jnp.int32)
    total = T + 2 * COPY_LENGTH
    inputs = jnp.zeros((batch_size, total), jnp.int32).at[:, :COPY_LENGTH].set(symbols)
    delimiter_at = T + COPY_LENGTH - 1  # after the T - 1 blanks
    delimiter_end = total if variant == "tcn" else delimiter_at + 1
    inputs = inputs.at[:, delimiter_at:delimiter_end].set(DELIMITER)
    targets = jnp.zeros((batch_size, total), jnp.int32).at[:, -COPY_LENGTH:].set(symbols)
    return {"inputs": inputs, "targets": targets, "mask": jnp.ones((batch_size, total), jnp.float32)}


def copy_metrics(logits: jax.Array, batch: Batch) -> dict[str, jax.Array]:
    """Masked CE and accuracy over all positions, plus ``copy_accuracy`` on the 10 recalled symbols."""
    out = step_classification_metrics(logits, batch)
    recalled = jnp.argmax(logits[:, -COPY_LENGTH:], -1) == batch["targets"][:, -COPY_LENGTH:]
    out["copy_accuracy"] = jnp.mean(recalled.astype(jnp.float32))
    return out


@register_task("copy", CopyOptions)
def copy_memory(opts: CopyOptions) -> Task:
    check_variant("copy", opts.variant, COPY_VARIANTS)
    check_seq_len("copy", opts.seq_len, 1)
    T = opts.seq_len
    ce = COPY_LENGTH * math.log(NUM_SYMBOLS) / (T + 2 * COPY_LENGTH)
    baseline = {"loss": ce, "ce": ce, "accuracy": (T + COPY_LENGTH + 10 / NUM_SYMBOLS) / (T + 20),
                "copy_accuracy": 1.0 / NUM_SYMBOLS}

    def sample(key: jax.Array, batch_size: int) -> Batch:
        return copy_batch(key, batch_size, T, opts.variant)

    return Task(name="copy", sample=sample, kind="classify_steps", input_vocab=VOCAB, input_dim=VOCAB,
                output_dim=VOCAB, seq_len=T + COPY_LENGTH, baseline=baseline, metrics=copy_metrics)
