"""The benchmark table: every model, shape and pass, seqjax beside its peers.

For a recurrent cell (``rnn``, ``lstm``, ``gru``) and a shape, the programs of
seqjax, Flax linen and PyTorch are timed interleaved (:mod:`.timing`) for a
training step and for a forward pass; each row holds the median wall-clock and
CPU seconds, the tokens per second ``B T / t``, the throughput ratio
seqjax/peer ``t_peer / t_seqjax`` (wall and CPU), the peak memory where known, and for every JAX program its
counted GFLOP and the fraction of this machine's roofline it reaches (:mod:`.roofline`).  A ``gemm`` row
compares the seqjax forward pass with the GEMM chain of :mod:`.gemm`.
Other backbones (``tcn``, ``s4d``, ``mamba``) are timed through the backbone
registry; Mamba also compares its scan modes at long length.  The linear-recurrence
families (``lru``, ``hawk``, ``mingru``, ``minlstm``, ``s5``, ``mamba2``) are timed at
their selective-copying study configs, each beside one alternative (:mod:`.linear_recurrences`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Iterable

from seqjax.benchmarks import backbones, gemm, linear_recurrences, peers
from seqjax.benchmarks.programs import Program, Shape, inputs, seqjax_recurrent
from seqjax.benchmarks.roofline import Peak, fraction
from seqjax.benchmarks.timing import time_interleaved

RECURRENT = ("rnn", "lstm", "gru")
MODELS = (*RECURRENT, *backbones.BACKBONE_MODELS, *linear_recurrences.FAMILIES)
SHAPES = (Shape(32, 256, 64, 256), Shape(8, 1024, 64, 128), Shape(128, 128, 128, 512))
QUICK_SHAPES = (Shape(4, 16, 8, 16),)
PASSES = ("train_step", "forward")


@dataclasses.dataclass
class Row:
    """One figure of the table."""

    model: str
    shape: str
    measure: str  # "train_step", "forward" or "gemm"
    framework: str
    seconds: float  # median wall-clock seconds per call
    cpu_seconds: float  # median CPU seconds of this process per call (all threads)
    tokens_per_s: float  # B T / seconds
    ratio: float  # wall-clock throughput of the reference / this row's (>1: the reference is faster)
    cpu_ratio: float  # the same from CPU time: steadier when other jobs share the cores
    peak_mb: float | None = None
    gflop: float | None = None  # the program's counted work (JAX programs)
    roofline: float | None = None  # the roofline time of that work on this machine / seconds
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _mb(n: int | None) -> float | None:
    return None if n is None else n / 2**20


def compare(
    model: str, shape: Shape, programs: dict[str, Program], *, repeats: int, reference: str = "seqjax",
    peak: Peak | None = None,
) -> list[Row]:
    """Time ``programs`` interleaved for each pass; ratios are against ``programs[reference]``; roofline
    fractions against ``peak``."""
    rows = []
    for measure in PASSES:
        times = time_interleaved({name: getattr(p, measure) for name, p in programs.items()}, repeats=repeats)
        ref = times[reference]
        which = "train" if measure == "train_step" else "forward"
        for name, t in times.items():
            memory, cost = getattr(programs[name], f"{which}_bytes"), getattr(programs[name], f"{which}_cost")
            rows.append(Row(model, str(shape), measure, name, t.wall, t.cpu, shape.batch * shape.time / t.wall,
                            t.wall / ref.wall, t.cpu / ref.cpu, _mb(memory), cost and cost.flops / 1e9,
                            cost and peak and fraction(cost, t.wall, peak)))
    return rows


def recurrent_rows(cell_name: str, shape: Shape, *, device: str, repeats: int, torch: bool,
                   peak: Peak | None = None) -> list[Row]:
    """seqjax vs Flax linen (vs PyTorch) for one cell and shape, and the GEMM-limit row."""
    x = inputs(shape)
    programs = {"seqjax": seqjax_recurrent(cell_name, shape, x), "flax": peers.flax_recurrent(cell_name, shape, x)}
    if torch:
        programs["torch"] = peers.torch_recurrent(cell_name, shape, x, device=device)
    rows = compare(cell_name, shape, programs, repeats=repeats, peak=peak)
    times = time_interleaved(
        {"seqjax": programs["seqjax"].forward, "chain": gemm.gemm_chain(cell_name, shape)}, repeats=repeats
    )
    layer, chain = times["seqjax"], times["chain"]
    flops = gemm.recurrent_flops(cell_name, shape)
    rows.append(Row(cell_name, str(shape), "gemm", "seqjax", layer.wall, layer.cpu, shape.batch * shape.time / layer.wall,
                    chain.wall / layer.wall, chain.cpu / layer.cpu,
                    note=f"recurrent matmuls {flops / layer.wall / 1e9:.1f} GFLOP/s, GEMM chain "
                         f"{flops / chain.wall / 1e9:.1f} GFLOP/s (ratio = fraction of the chain)"))
    return rows


def run_suite(
    models: Iterable[str], *, quick: bool = False, device: str = "cpu", repeats: int = 5, torch: bool = True,
    peak: Peak | None = None,
) -> list[Row]:
    """Every row for ``models`` at the standard (or ``quick``) shapes; roofline fractions against ``peak``."""
    rows: list[Row] = []
    timed = functools.partial(compare, peak=peak)
    for model in models:
        if model in RECURRENT:
            for shape in QUICK_SHAPES if quick else SHAPES:
                rows += recurrent_rows(model, shape, device=device, repeats=repeats, torch=torch, peak=peak)
        elif model in linear_recurrences.FAMILIES:
            rows += linear_recurrences.family_rows(model, quick=quick, repeats=repeats, compare=timed)
        else:
            rows += backbones.backbone_rows(model, quick=quick, repeats=repeats, compare=timed)
    return rows


def format_table(rows: list[Row]) -> str:
    """A fixed-width text table of ``rows``."""
    header = (f"{'model':7} {'shape':26} {'measure':10} {'framework':16} {'wall ms':>9} {'cpu ms':>9} "
              f"{'tokens/s':>10} {'ratio':>6} {'cpu rat':>7} {'peak MB':>8} {'GFLOP':>8} {'roof %':>6}  note")
    lines = [header, "-" * len(header)]
    for r in rows:
        peak = "-" if r.peak_mb is None else f"{r.peak_mb:.1f}"
        gflop = "-" if r.gflop is None else f"{r.gflop:.3g}"
        roof = "-" if r.roofline is None else f"{100 * r.roofline:.2g}"
        lines.append(f"{r.model:7} {r.shape:26} {r.measure:10} {r.framework:16} {r.seconds * 1e3:9.2f} "
                     f"{r.cpu_seconds * 1e3:9.2f} {r.tokens_per_s:10.0f} {r.ratio:6.2f} {r.cpu_ratio:7.2f} "
                     f"{peak:>8} {gflop:>8} {roof:>6}  {r.note}")
    return "\n".join(lines)
