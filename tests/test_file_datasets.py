"""File-backed datasets (seqjax/tasks/arrays.py, digits.py, mnist.py, idx.py) against independent references:
scikit-learn's digits loaded afresh, IDX files written here byte by byte with ``struct``, NumPy entropies."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import jax
import numpy as np
import pytest

from seqjax.cli import main
from seqjax.errors import UserError
from seqjax.tasks import fixed_split, get_task, make_task, train_batch
from seqjax.tasks.arrays import fixed_permutation
from seqjax.tasks.idx import read_idx

sklearn_datasets = pytest.importorskip("sklearn.datasets")
ROOT = Path(__file__).resolve().parents[1]
SPLIT_SIZES = {"train": 1168, "val": 270, "test": 359}  # 1797 images: 20% test, 15% val, the rest train


def _task(name, **kw):
    return make_task(name, get_task(name).options(**kw))


def _rows(pixels, labels):
    """Each example as a hashable (pixel bytes, label) pair."""
    return [(np.asarray(p).tobytes(), int(y)) for p, y in zip(pixels, labels)]


def _as_pixels(batch, scale=16):
    """The integer pixels a batch's inputs ``[B, T, 1]`` encode (inputs are ``pixels / scale``)."""
    x = np.asarray(batch["inputs"])[..., 0]
    assert ((x >= 0) & (x <= 1)).all()
    pixels = np.rint(x * scale)
    np.testing.assert_allclose(pixels / scale, x, atol=1e-6)
    return pixels.astype(np.uint8)


def test_digits_splits_are_disjoint_fixed_and_cover_the_dataset():
    from seqjax.tasks.digits import digits_splits

    data = sklearn_datasets.load_digits()
    splits = digits_splits()
    assert {k: len(v.labels) for k, v in splits.items()} == SPLIT_SIZES
    # together the three splits hold every image exactly once
    together = sum((_rows(v.pixels, v.labels) for v in splits.values()), [])
    assert sorted(together) == sorted(_rows(data.data.astype(np.uint8), data.target))
    task = _task("digits")
    for split in ("val", "test"):  # the held-out sets: the split itself, whatever the seed
        for seed in (0, 7):
            held = fixed_split(task, seed, split, 10_000)
            assert _rows(_as_pixels(held), held["targets"]) == _rows(splits[split].pixels, splits[split].labels)
    assert fixed_split(task, 0, "val", 5)["inputs"].shape == (5, 64, 1)
    train = set(_rows(splits["train"].pixels, splits["train"].labels))
    for step in range(10):  # training batches come from the training split only
        b = train_batch(task, 0, step, 64)
        assert set(_rows(_as_pixels(b), b["targets"])) <= train


def test_digits_training_batches_are_indexed_by_the_step_key():
    task = _task("digits")
    a, b = train_batch(task, 3, 5, 32), train_batch(task, 3, 5, 32)
    jitted = jax.jit(lambda step: train_batch(task, 3, step, 32))(5)
    for k in ("inputs", "targets"):
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]))
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(jitted[k]))
    assert not np.array_equal(np.asarray(a["inputs"]), np.asarray(train_batch(task, 3, 6, 32)["inputs"]))
    assert not np.array_equal(np.asarray(a["inputs"]), np.asarray(train_batch(task, 4, 5, 32)["inputs"]))
    assert a["inputs"].dtype == np.float32 and a["targets"].dtype == np.int32


def test_permuted_digits_read_the_same_images_in_one_fixed_order():
    perm = fixed_permutation(64)
    assert sorted(perm.tolist()) == list(range(64)) and (perm != np.arange(64)).any()
    plain, permuted = _task("digits"), _task("digits", permute=True)
    key = jax.random.key(11)
    for a, b in ((plain.sample(key, 16), permuted.sample(key, 16)),
                 (fixed_split(plain, 0, "test", 50), fixed_split(permuted, 0, "test", 50))):
        np.testing.assert_array_equal(np.asarray(b["inputs"]), np.asarray(a["inputs"])[:, perm])
        np.testing.assert_array_equal(np.asarray(b["targets"]), np.asarray(a["targets"]))


def test_digits_baseline_is_the_class_prior():
    from seqjax.tasks.digits import digits_splits
    labels = digits_splits()["train"].labels
    p = np.unique(labels, return_counts=True)[1] / len(labels)
    task = _task("digits")
    assert task.baseline["ce"] == pytest.approx(float(-(p * np.log(p)).sum()))
    assert task.baseline["accuracy"] == pytest.approx(p.max())
    assert (task.kind, task.input_vocab, task.input_dim, task.output_dim, task.seq_len) == \
        ("classify_last", None, 1, 10, 64)
    # the prior's own logits score exactly the baseline on the training split
    logits = np.broadcast_to(np.log(p), (len(labels), 10))
    ce = task.metrics(logits, {"targets": labels})["ce"]
    assert float(ce) == pytest.approx(task.baseline["ce"], rel=1e-5)


def _idx_bytes(array: np.ndarray, code: int, fmt: str) -> bytes:
    """An IDX file written out from its definition: 0, 0, type code, rank, big-endian sizes, big-endian data."""
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    return header + b"".join(struct.pack(">" + fmt, v) for v in array.ravel().tolist())


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype, code, fmt", [(np.uint8, 0x08, "B"), (np.int32, 0x0C, "i"),
                                              (np.float32, 0x0D, "f"), (np.int16, 0x0B, "h")])
def test_idx_round_trip(tmp_path, gz, dtype, code, fmt):
    array = (np.arange(2 * 3 * 4).reshape(2, 3, 4) * (3 if dtype != np.uint8 else 1)).astype(dtype)
    if dtype != np.uint8:
        array[0, 0, 0] = -7
    raw = _idx_bytes(array, code, fmt)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    got = read_idx(path)
    assert got.dtype == dtype and got.shape == array.shape
    np.testing.assert_array_equal(got, array)


@pytest.mark.parametrize("raw, fragment", [(b"\x01\x00\x08\x01", "not an IDX file"),
                                           (bytes([0, 0, 8, 2, 0, 0, 0, 2]), "truncated IDX header"),
                                           (bytes([0, 0, 8, 1, 0, 0, 0, 3, 1, 2]), "2 bytes of data")])
def test_idx_rejects_malformed_files(tmp_path, raw, fragment):
    path = tmp_path / "bad"
    path.write_bytes(raw)
    with pytest.raises(UserError, match=fragment):
        read_idx(path)


def _write_mnist(folder: Path, n_train: int, n_test: int, gz: bool) -> dict[str, np.ndarray]:
    """Tiny MNIST-shaped IDX files (2x3 images) in ``folder``; the test labels file is gzipped when ``gz``."""
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 2, 3), dtype=np.uint8),
              "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 2, 3), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8)}
    folder.mkdir()
    for name, a in arrays.items():
        raw = _idx_bytes(a, 0x08, "B")
        if gz and name.startswith("t10k-labels"):
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reads_the_idx_files(tmp_path, gz):
    arrays = _write_mnist(tmp_path / "mnist", 5004, 7, gz)
    task = _task("mnist", path=str(tmp_path / "mnist"))
    assert (task.seq_len, task.input_dim, task.output_dim) == (6, 1, 10)
    test = fixed_split(task, 0, "test", 100)
    np.testing.assert_array_equal(_as_pixels(test, 255), arrays["t10k-images-idx3-ubyte"].reshape(7, 6))
    np.testing.assert_array_equal(np.asarray(test["targets"]), arrays["t10k-labels-idx1-ubyte"])
    val = fixed_split(task, 0, "val", 10_000)  # the last 5000 training images
    np.testing.assert_array_equal(_as_pixels(val, 255), arrays["train-images-idx3-ubyte"][4:].reshape(5000, 6))
    batch = train_batch(task, 0, 0, 64)  # drawn from the first 4 training images only
    first = set(_rows(arrays["train-images-idx3-ubyte"][:4].reshape(4, 6), arrays["train-labels-idx1-ubyte"][:4]))
    assert set(_rows(_as_pixels(batch, 255), batch["targets"])) <= first
    permuted = _task("mnist", path=str(tmp_path / "mnist"), permute=True)
    np.testing.assert_array_equal(np.asarray(fixed_split(permuted, 0, "test", 7)["inputs"]),
                                  np.asarray(test["inputs"])[:, fixed_permutation(6)])


def _train(capsys, *overrides):
    code = main(["train", str(ROOT / "configs/experiments/digits_lstm.yaml"), "task=mnist", *overrides])
    return code, capsys.readouterr().err.strip().splitlines()


def test_mnist_bad_path_is_one_line_exit_2(capsys, tmp_path):
    code, err = _train(capsys, f"task.path={tmp_path / 'nope'}", f"run_dir={tmp_path / 'run'}")
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and "no such folder" in err[0]
    _write_mnist(tmp_path / "mnist", 5004, 7, False)
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte").unlink()
    code, err = _train(capsys, f"task.path={tmp_path / 'mnist'}", f"run_dir={tmp_path / 'run'}")
    assert code == 2 and len(err) == 1 and "no t10k-images-idx3-ubyte (or t10k-images-idx3-ubyte.gz)" in err[0]
