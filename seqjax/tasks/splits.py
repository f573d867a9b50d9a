"""Keys for the training stream and the fixed validation / test sets (principle 5 of the design).

Each split draws from its own key, ``split_key(seed, split) = fold_in(key(seed), SPLIT_IDS[split])``:

* training batch of step ``s``: ``task.sample(fold_in(split_key(seed, "train"), s), batch_size)``;
* fixed sets: ``task.sample(split_key(seed, "val"|"test"), num_examples)``, the same on every call;
  a file-backed task's ``"val"`` / ``"test"`` sets are its own held-out examples, ``task.fixed_set(split, n)``.
"""

from __future__ import annotations

import jax

from seqjax.errors import check_choice
from seqjax.tasks.base import Task
from seqjax.typing import Batch

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


def split_key(seed: int, split: str) -> jax.Array:
    check_choice("split", split, SPLIT_IDS)
    return jax.random.fold_in(jax.random.key(seed), SPLIT_IDS[split])


def train_batch(task: Task, seed: int, step: int | jax.Array, batch_size: int) -> Batch:
    """The training batch of step ``step``: a pure function of ``(seed, step)``."""
    return task.sample(jax.random.fold_in(split_key(seed, "train"), step), batch_size)


def fixed_split(task: Task, seed: int, split: str, num_examples: int) -> Batch:
    """A fixed set of ``num_examples`` examples for ``split`` ("train", "val" or "test")."""
    if task.fixed_set is not None and split != "train":
        return task.fixed_set(split, num_examples)
    return jax.jit(task.sample, static_argnums=1)(split_key(seed, split), num_examples)  # one program, not one per op
