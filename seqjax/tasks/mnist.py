"""Sequential and permuted MNIST (Le et al. 2015), from the four IDX files the user has locally.

``task.path`` is a folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each may be gzipped, ``.gz``); nothing is
downloaded.  Each 28x28 image is read row by row as a 784-step sequence of pixels ``0..255`` scaled to
``[0, 1]`` and classified at the last step; ``permute: true`` reads the pixels in one fixed random order
(:func:`seqjax.tasks.arrays.fixed_permutation`).  Splits: the last 5000 training images validate, the
other 55000 train, the 10000 ``t10k`` images test.  A missing folder or file is a one-line error.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

from seqjax.errors import UserError
from seqjax.tasks.arrays import Split, pixel_sequence_task
from seqjax.tasks.base import Task
from seqjax.tasks.idx import read_idx
from seqjax.tasks.registry import register_task

MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
VAL_EXAMPLES = 5000


@dataclasses.dataclass
class MnistOptions:
    path: str = "data/mnist"
    permute: bool = False


def _idx_file(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise UserError(f"task.path={folder}: no {name} (or {name}.gz) there; the mnist task reads MNIST's four IDX "
                    f"files from that folder: {', '.join(n for pair in MNIST_FILES.values() for n in pair)}")


@functools.lru_cache(maxsize=2)
def mnist_splits(path: str) -> dict[str, Split]:
    """The train / val / test splits of the MNIST IDX files in folder ``path`` (pixels ``[N, 784]`` uint8).

    >>> mnist_splits("/no/such/folder")
    Traceback (most recent call last):
    seqjax.errors.UserError: task.path=/no/such/folder: no such folder (the mnist task reads MNIST's four IDX files from it)
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise UserError(f"task.path={path}: no such folder (the mnist task reads MNIST's four IDX files from it)")
    arrays = {}
    for split, (images, labels) in MNIST_FILES.items():
        x, y = read_idx(_idx_file(folder, images)), read_idx(_idx_file(folder, labels))
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise UserError(f"{folder}: {images} holds {x.shape} and {labels} {y.shape}; expected [N, rows, cols] "
                            f"images and [N] labels")
        arrays[split] = Split(x.reshape(len(x), -1), y.astype("int32"))
    train = arrays["train"]
    if len(train.labels) <= VAL_EXAMPLES:
        raise UserError(f"{folder}: {len(train.labels)} training images; more than {VAL_EXAMPLES} are needed "
                        f"(the last {VAL_EXAMPLES} are the validation split)")
    return {"train": Split(train.pixels[:-VAL_EXAMPLES], train.labels[:-VAL_EXAMPLES]),
            "val": Split(train.pixels[-VAL_EXAMPLES:], train.labels[-VAL_EXAMPLES:]), "test": arrays["test"]}


@register_task("mnist", MnistOptions)
def mnist(opts: MnistOptions) -> Task:
    return pixel_sequence_task("mnist", mnist_splits(opts.path), 255.0, 10, opts.permute)
