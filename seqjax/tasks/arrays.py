"""File-backed datasets: labelled pixel arrays read from disk, as a sequence-classification task.

A dataset is three fixed splits (:class:`Split`: integer pixels ``[N, T]`` in ``0..scale`` and labels
``[N]``).  The task reads an image one pixel per step, ``x_t = pixels[order[t]] / scale`` (input
``[B, T, 1]``; ``order`` the identity, or :func:`fixed_permutation` for the permuted variant), and
classifies it at the last step (``classify_last``).  Randomness stays indexed (principle 5):

* the training batch for a key is ``B`` rows drawn uniformly, with replacement, from the train split by
  that key -- so the batch of step ``s`` is a pure function of ``fold_in(key, s)``;
* validation and test are the first ``n`` rows of their splits (all of them when ``n`` exceeds the
  split), the same for every seed (``Task.fixed_set``).

The memoryless baseline predicts the training split's class frequencies
(:func:`seqjax.tasks.base.prior_baseline`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.errors import check_choice
from seqjax.tasks.base import Task, classification_metrics, prior_baseline
from seqjax.typing import Batch

PERMUTATION_SEED = 0  # the permuted variants' one fixed permutation (numpy's default_rng)
HELD_OUT = ("val", "test")


class Split(NamedTuple):
    pixels: np.ndarray  # [N, T] unsigned integers in 0..scale
    labels: np.ndarray  # [N] class indices


def shuffled_splits(pixels: np.ndarray, labels: np.ndarray, val_fraction: float, test_fraction: float,
                    seed: int) -> dict[str, Split]:
    """``pixels``/``labels`` shuffled once by ``seed`` and cut into disjoint train / val / test splits.

    >>> s = shuffled_splits(np.arange(20).reshape(10, 2), np.arange(10), 0.2, 0.3, seed=0)
    >>> [len(s[k].labels) for k in ("train", "val", "test")]
    [5, 2, 3]
    >>> sorted(np.concatenate([s[k].labels for k in s]).tolist()) == list(range(10))
    True
    """
    order = np.random.default_rng(seed).permutation(len(labels))
    n_val, n_test = round(val_fraction * len(labels)), round(test_fraction * len(labels))
    cuts = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
    return {name: Split(pixels[rows], labels[rows]) for name, rows in cuts.items()}


def fixed_permutation(length: int) -> np.ndarray:
    """The permuted variants' permutation of ``0..length-1``, drawn from :data:`PERMUTATION_SEED`.

    >>> p = fixed_permutation(64)
    >>> sorted(p.tolist()) == list(range(64)), bool((p == fixed_permutation(64)).all())
    (True, True)
    """
    return np.random.default_rng(PERMUTATION_SEED).permutation(length)


def pixel_sequence_task(name: str, splits: dict[str, Split], scale: float, num_classes: int,
                        permute: bool) -> Task:
    """The ``classify_last`` task reading ``splits``' images pixel by pixel (see the module docstring).

    >>> rng = np.random.default_rng(0)
    >>> split = Split(rng.integers(0, 256, (6, 4), dtype=np.uint8), np.array([0, 1, 2, 0, 1, 2]))
    >>> task = pixel_sequence_task("toy", {"train": split, "val": split, "test": split}, 255.0, 3, False)
    >>> batch = task.sample(jax.random.key(0), 5)
    >>> batch["inputs"].shape, batch["targets"].shape, task.kind, task.seq_len
    ((5, 4, 1), (5,), 'classify_last', 4)
    >>> task.fixed_set("test", 4)["targets"].tolist()
    [0, 1, 2, 0]
    """
    length = splits["train"].pixels.shape[1]
    order = fixed_permutation(length) if permute else np.arange(length)

    def as_batch(pixels: jax.Array, labels: jax.Array) -> Batch:
        inputs = pixels.astype(jnp.float32) / jnp.float32(scale)
        return {"inputs": inputs[..., None], "targets": labels.astype(jnp.int32)}

    train_pixels = jnp.asarray(splits["train"].pixels[:, order])
    train_labels = jnp.asarray(splits["train"].labels)

    def sample(key: jax.Array, batch_size: int) -> Batch:
        rows = jax.random.randint(key, (batch_size,), 0, train_labels.shape[0], dtype=jnp.int32)
        return as_batch(train_pixels[rows], train_labels[rows])

    def fixed_set(split: str, num_examples: int) -> Batch:
        check_choice(f"{name} held-out split", split, HELD_OUT)
        held = splits[split]
        return as_batch(jnp.asarray(held.pixels[:num_examples, order]), jnp.asarray(held.labels[:num_examples]))

    baseline = prior_baseline(splits["train"].labels, num_classes)
    return Task(name=name, sample=sample, kind="classify_last", input_vocab=None, input_dim=1,
                output_dim=num_classes, seq_len=length, baseline=baseline, metrics=classification_metrics,
                fixed_set=fixed_set)
