"""The IDX files MNIST ships in (LeCun et al.): a big-endian header, then the array in C order.

Header: two zero bytes, a type code (``0x08`` uint8, ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32,
``0x0D`` float32, ``0x0E`` float64), the number of dimensions ``n``, then ``n`` sizes as big-endian uint32;
the values follow, big-endian, ``prod(sizes)`` of them.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from seqjax.errors import UserError

IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in the IDX file ``path`` (gzip-compressed when its name ends in ``.gz``), native-endian.

    A missing file or one that is not IDX raises a one-line :class:`~seqjax.errors.UserError`.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "tiny-idx2-ubyte"
    >>> _ = path.write_bytes(bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]))
    >>> read_idx(path)
    array([[1, 2, 3],
           [4, 5, 6]], dtype=uint8)
    """
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot read it ({e.strerror or e})") from None
    except gzip.BadGzipFile:
        raise UserError(f"{path}: not a gzip file") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in IDX_TYPES:
        raise UserError(f"{path}: not an IDX file (it must start with 0x00 0x00, a type code and a rank)")
    dtype, rank = np.dtype(IDX_TYPES[raw[2]]), raw[3]
    start = 4 + 4 * rank
    if len(raw) < start:
        raise UserError(f"{path}: truncated IDX header ({rank} sizes announced)")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", rank, 4))
    if len(raw) - start != dtype.itemsize * int(np.prod(shape)):
        raise UserError(f"{path}: {len(raw) - start} bytes of data where the header {shape} announces "
                        f"{dtype.itemsize * int(np.prod(shape))}")
    return np.frombuffer(raw, dtype, offset=start).reshape(shape).astype(dtype.newbyteorder("="))
