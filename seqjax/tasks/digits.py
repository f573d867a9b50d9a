"""Sequential (and permuted) 8x8 digits: scikit-learn's bundled handwritten digits, one pixel per step.

The 1797 images of ``sklearn.datasets.load_digits`` (no download; ``pip install 'seqjax[digits]'``),
pixel values ``0..16`` scaled to ``[0, 1]``, read row by row as 64-step sequences and classified into
10 classes at the last step -- the small version of sequential MNIST that runs anywhere.  The split is
fixed: shuffled once by :data:`SPLIT_SEED`, 20% test, 15% validation, the rest (1168) training.
``permute: true`` reads the pixels in one fixed random order (:func:`seqjax.tasks.arrays.fixed_permutation`).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from seqjax.errors import UserError
from seqjax.tasks.arrays import Split, pixel_sequence_task, shuffled_splits
from seqjax.tasks.base import Task
from seqjax.tasks.registry import register_task

SPLIT_SEED = 0
VAL_FRACTION, TEST_FRACTION = 0.15, 0.2


@dataclasses.dataclass
class DigitsOptions:
    permute: bool = False


@functools.cache
def digits_splits() -> dict[str, Split]:
    """The fixed train / val / test splits of scikit-learn's digits (pixels ``[N, 64]`` uint8 in ``0..16``).

    >>> {k: v.pixels.shape for k, v in digits_splits().items()}
    {'test': (359, 64), 'val': (270, 64), 'train': (1168, 64)}
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise UserError("the digits task needs scikit-learn: pip install 'seqjax[digits]'") from None
    data = load_digits()
    return shuffled_splits(data.data.astype(np.uint8), data.target.astype(np.int32), VAL_FRACTION, TEST_FRACTION,
                           SPLIT_SEED)


@register_task("digits", DigitsOptions)
def digits(opts: DigitsOptions) -> Task:
    return pixel_sequence_task("digits", digits_splits(), 16.0, 10, opts.permute)
