"""The benchmark table: every model, shape and pass, seqjax beside its peers.

For a recurrent cell (``rnn``, ``lstm``, ``gru``) and a shape, the programs of
seqjax, Flax linen and PyTorch are timed interleaved (:mod:`.timing`) for a
training step and for a forward pass; each row holds the median seconds, the
tokens per second ``B T / t``, the throughput ratio seqjax/peer
``t_peer / t_seqjax`` and the peak memory where known.  A ``gemm`` row compares
the seqjax forward pass with the GEMM chain of :mod:`.gemm`.
Other backbones (``tcn``, ``s4d``, ``mamba``) are timed through the backbone
registry; Mamba also compares its scan modes at long length.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable

from seqjax.benchmarks import backbones, gemm, peers
from seqjax.benchmarks.timing import time_interleaved
from seqjax.benchmarks.workloads import Program, Shape, inputs, seqjax_recurrent

RECURRENT = ("rnn", "lstm", "gru")
MODELS = (*RECURRENT, *backbones.BACKBONE_MODELS)
SHAPES = (Shape(32, 256, 64, 256), Shape(8, 1024, 64, 128), Shape(128, 128, 128, 512))
QUICK_SHAPES = (Shape(4, 16, 8, 16),)
PASSES = ("train_step", "forward")


@dataclasses.dataclass
class Row:
    """One figure of the table."""

    model: str
    shape: str
    measure: str  # "train_step", "forward", "gemm" or a backbone-specific comparison
    framework: str
    seconds: float
    tokens_per_s: float
    ratio: float  # throughput of seqjax / this row's (>1: seqjax is faster); the fraction for "gemm"
    peak_mb: float | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _mb(n: int | None) -> float | None:
    return None if n is None else n / 2**20


def compare(
    model: str, shape: Shape, programs: dict[str, Program], *, repeats: int, reference: str = "seqjax"
) -> list[Row]:
    """Time ``programs`` interleaved for each pass; ratios are against ``programs[reference]``."""
    rows = []
    for measure in PASSES:
        times = time_interleaved({name: getattr(p, measure) for name, p in programs.items()}, repeats=repeats)
        for name, t in times.items():
            peak = getattr(programs[name], "train_bytes" if measure == "train_step" else "forward_bytes")
            rows.append(Row(model, str(shape), measure, name, t, shape.batch * shape.time / t,
                            t / times[reference], _mb(peak)))
    return rows


def recurrent_rows(cell_name: str, shape: Shape, *, device: str, repeats: int, torch: bool) -> list[Row]:
    """seqjax vs Flax linen (vs PyTorch) for one cell and shape, and the GEMM-limit row."""
    x = inputs(shape)
    programs = {"seqjax": seqjax_recurrent(cell_name, shape, x), "flax": peers.flax_recurrent(cell_name, shape, x)}
    if torch:
        programs["torch"] = peers.torch_recurrent(cell_name, shape, x, device=device)
    rows = compare(cell_name, shape, programs, repeats=repeats)
    times = time_interleaved(
        {"seqjax": programs["seqjax"].forward, "chain": gemm.gemm_chain(cell_name, shape)}, repeats=repeats
    )
    flops = gemm.recurrent_flops(cell_name, shape)
    rows.append(Row(cell_name, str(shape), "gemm", "seqjax", times["seqjax"], shape.batch * shape.time / times["seqjax"],
                    times["chain"] / times["seqjax"],
                    note=f"{flops / times['seqjax'] / 1e9:.1f} GFLOP/s of {flops / times['chain'] / 1e9:.1f} "
                         "GFLOP/s (GEMM chain)"))
    return rows


def run_suite(
    models: Iterable[str], *, quick: bool = False, device: str = "cpu", repeats: int = 5, torch: bool = True
) -> list[Row]:
    """Every row for ``models`` at the standard (or ``quick``) shapes."""
    rows: list[Row] = []
    for model in models:
        if model in RECURRENT:
            for shape in QUICK_SHAPES if quick else SHAPES:
                rows += recurrent_rows(model, shape, device=device, repeats=repeats, torch=torch)
        else:
            rows += backbones.backbone_rows(model, quick=quick, repeats=repeats, compare=compare)
    return rows


def format_table(rows: list[Row]) -> str:
    """A fixed-width text table of ``rows``."""
    header = f"{'model':6} {'shape':26} {'measure':16} {'framework':12} {'ms':>9} {'tokens/s':>11} {'ratio':>7} {'peak MB':>8}  note"
    lines = [header, "-" * len(header)]
    for r in rows:
        peak = "-" if r.peak_mb is None else f"{r.peak_mb:.1f}"
        lines.append(f"{r.model:6} {r.shape:26} {r.measure:16} {r.framework:12} {r.seconds * 1e3:9.2f} "
                     f"{r.tokens_per_s:11.0f} {r.ratio:7.2f} {peak:>8}  {r.note}")
    return "\n".join(lines)
