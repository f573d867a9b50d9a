"""Multi-query associative recall, MQAR (Arora et al. 2023, Zoology).

Keys come from ``[1, V/2)``, values from ``[V/2, V)``; the ``K`` keys of a sequence are distinct, and so
are its ``K`` values (both drawn without replacement, as Zoology draws them).  The sequence opens
with ``K`` key-value pairs written interleaved, ``k_1 v_1 ... k_K v_K``; the rest (length ``L - 2K``,
token 0 elsewhere) holds every key once more, in random order, each at the start of a random two-token
slot, as Zoology places its queries (its ``multiquery_ar``: keys at even offsets, nothing after them).  At
each queried key the model must output its value.

``values_in_queries=True`` writes each value after its queried key as well (``k_j v_j`` slots), so that
every answer is also the next input token, as in language modelling.  The answers given so far then
leak: the last query's value is the one not yet written, which a model learns long before it learns
recall (trained here, both a Transformer and Mamba stalled at one half on (L, K) = (64, 4): 0.25 / 0.34 /
0.51 / 0.98 accuracy on the first to the fourth query, elimination's 1/4 / 1/3 / 1/2 / 1;
``experiments/mqar/README.md``); and a model that sees the future reads the answer, so only a causal
model is accepted (``Task.requires_causal_model``).

Loss: cross-entropy at the ``K`` query positions.  Memoryless baseline: uniform over the ``V/2``
values, ``CE = ln(V/2)``, accuracy ``2/V``.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from seqjax.errors import COUNT, Range, UserError, checked
from seqjax.tasks.base import Task, step_classification_metrics
from seqjax.tasks.registry import register_task
from seqjax.tasks.sampling import answer_mask, distinct_positions
from seqjax.typing import Batch


@dataclasses.dataclass
class AssociativeRecallOptions:
    seq_len: int = checked(64, COUNT)  # L
    num_pairs: int = checked(4, COUNT)  # K
    vocab_size: int = checked(64, Range(4, integer=True))  # V (8192 in the paper; smaller on CPU)
    values_in_queries: bool = False  # True: k_j v_j query slots (each answer also the next input; see above)


@register_task("mqar", AssociativeRecallOptions)
def associative_recall(opts: AssociativeRecallOptions) -> Task:
    L, K, V = opts.seq_len, opts.num_pairs, opts.vocab_size
    # V//2 - 1 keys and V - V//2 values: a V with enough distinct keys for K pairs has enough values too
    if V // 2 - 1 < K:
        raise UserError(f"mqar: vocab_size={V} gives only {V // 2 - 1} distinct keys (and {V - V // 2} values) "
                        f"for num_pairs={K}; raise vocab_size to at least {2 * K + 2}")
    if (L - 2 * K) // 2 < K:
        raise UserError(f"mqar: seq_len={L} leaves no room for {K} queries after {K} pairs; "
                        f"seq_len must be at least {4 * K}")
    slots = (L - 2 * K) // 2

    def sample(key: jax.Array, batch_size: int) -> Batch:
        k_key, k_val, k_slot = jax.random.split(key, 3)
        rows = jnp.arange(batch_size)[:, None]
        keys = distinct_positions(k_key, batch_size, V // 2 - 1, K) + 1
        values = distinct_positions(k_val, batch_size, V - V // 2, K) + V // 2
        pairs = jnp.stack([keys, values], axis=-1).reshape(batch_size, 2 * K)
        # slot j of the query region starts at 2K + 2j; pair i is queried in slot query_slot[:, i]
        query_at = 2 * K + 2 * distinct_positions(k_slot, batch_size, slots, K)
        inputs = jnp.zeros((batch_size, L), jnp.int32).at[:, : 2 * K].set(pairs)
        inputs = inputs.at[rows, query_at].set(keys)
        if opts.values_in_queries:
            inputs = inputs.at[rows, query_at + 1].set(values)
        targets = jnp.zeros((batch_size, L), jnp.int32).at[rows, query_at].set(values)
        return {"inputs": inputs, "targets": targets, "mask": answer_mask(batch_size, L, query_at)}

    ce = math.log(V // 2)
    baseline = {"loss": ce, "ce": ce, "accuracy": 1.0 / (V // 2)}
    return Task(name="mqar", sample=sample, kind="classify_steps", input_vocab=V, input_dim=V, output_dim=V,
                seq_len=L, baseline=baseline, metrics=step_classification_metrics,
                requires_causal_model=opts.values_in_queries)  # then each answer is the input after its query
