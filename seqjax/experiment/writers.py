"""Metric writers: ``metrics.jsonl`` (one JSON object per row) and TensorBoard events (tensorboardX).

A row is ``{"step": s, "split": "train"|"val"|"test", <metric>: value, ...}``.  On resume from step
``s0`` rows after ``s0`` (written by the interrupted run after its last checkpoint) are dropped and
TensorBoard purges its events after ``s0``, so a resumed run's logs equal an uninterrupted run's.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"


def summary_writer_class() -> type:
    """``tensorboardX.SummaryWriter``, imported without torch.

    tensorboardX imports torch whenever it is installed, only to accept torch tensors (seqjax logs
    floats); that import costs seconds per process.  Unless torch is already loaded, it is hidden for
    the duration of the import, and tensorboardX falls back to numpy as it does without torch.
    """
    if "torch" in sys.modules or "tensorboardX" in sys.modules:
        from tensorboardX import SummaryWriter
        return SummaryWriter
    sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` raise ImportError
    try:
        from tensorboardX import SummaryWriter
    finally:
        del sys.modules["torch"]
    return SummaryWriter


def read_rows(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill mid-write
            continue
    return rows


def _plain(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None  # JSON has no NaN: null marks a non-finite value


class MetricsWriter:
    def __init__(self, run_dir: str | Path, start_step: int):
        self.path = Path(run_dir) / METRICS_FILE
        kept = [r for r in read_rows(run_dir) if r["step"] <= start_step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        self.rows = kept
        self._file = self.path.open("a")
        self._tb = summary_writer_class()(str(Path(run_dir) / "tb"), purge_step=start_step + 1 if start_step else None)

    def write(self, step: int, split: str, metrics: dict[str, Any]) -> None:
        row = {"step": step, "split": split, **{k: _plain(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        self.rows.append(row)
        for k, v in row.items():
            if k not in ("step", "split") and v is not None:
                self._tb.add_scalar(f"{split}/{k}", v, step)

    def close(self) -> None:
        self._file.close()
        self._tb.close()
