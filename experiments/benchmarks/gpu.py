"""The GPU benchmark (issue 19): every family at research shapes, the cells against cuDNN, the long scan.

Prepared to fit a lent accelerator's session (``gpu.sh`` runs it under an 8-minute limit); here, without one, its
``--quick`` form is a dry run of the same code on the CPU at tiny shapes.  Three tables, every program
``jax.jit``-compiled once (its peak memory is the compiled program's own estimate: arguments + outputs +
temporaries - aliased), warmed up, then timed in interleaved rounds (:func:`~seqjax.benchmarks.timing.time_interleaved`,
median):

1. ``families``: the Adam train step (loss ``mean(y^2)``) of every registered backbone built from its default
   options at width ``W`` (``hidden_size``, ``d_model`` or ``channels``), in bfloat16 compute with float32
   parameters, at ``B, L, W`` = 16, 2048, 512 and 4, 8192, 256; tokens/s.
2. ``cudnn``: the float32 train step of seqjax's LSTM and GRU (one layer, ``B=64 L=1024 H=512``) beside PyTorch's
   ``nn.LSTM`` / ``nn.GRU`` on CUDA (cuDNN) and JAX's own cuDNN LSTM (``jax.experimental.rnn.lstm``);
   ``ratio`` = t_peer / t_seqjax (> 1: seqjax is faster).  The cuDNN peers need a CUDA device and are left out
   elsewhere.
3. ``long_scan``: one Mamba block (``d_model=256``, ``d_state=16``) at ``B=1, L=65,536``, forward and train step.

A row whose turn comes after ``--budget-s`` seconds is written as skipped (``ms`` null, its reason in ``note``),
so the run ends inside the device's time; a row that fails (out of memory, a peer missing) is written with the
error in ``note`` and the run goes on.  Writes ``<out>/gpu.json`` (the rows, the device, the versions) and
``<out>/gpu.md`` (the tables).

Usage:  python experiments/benchmarks/gpu.py [--out FOLDER] [--quick] [--budget-s S] [--repeats N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import platform
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.benchmarks.backbones import backbone_module
from seqjax.benchmarks.memory import executable_memory
from seqjax.benchmarks.programs import Shape, adam_step, inputs
from seqjax.benchmarks.timing import blocking, time_interleaved
from seqjax.models.mamba import MambaBlock
from seqjax.models.registry import BACKBONES

DEPTH_FIELDS = ("n_layers", "num_layers", "levels")
HERE = pathlib.Path(__file__).resolve().parent
FAMILY_SHAPES = (Shape(16, 2048, 512, 512), Shape(4, 8192, 256, 256))
CUDNN_SHAPE = Shape(64, 1024, 512, 512)
LONG_SCAN = Shape(1, 65536, 256, 256)
QUICK = {"families": (Shape(2, 32, 16, 16),), "cudnn": Shape(2, 16, 8, 8), "long_scan": Shape(1, 256, 8, 8)}


class Timed(NamedTuple):
    """A compiled program to time: a zero-argument blocking call and its peak bytes (None: unknown)."""

    run: Callable[[], Any]
    peak_bytes: int | None


def compiled_step(apply: Callable[[Any, jax.Array], jax.Array], params: Any, x: jax.Array,
                  train: bool = True) -> Timed:
    """``apply``'s Adam train step (:func:`~seqjax.benchmarks.programs.adam_step`, the state donated) or forward
    pass, compiled once; its peak memory read from that compiled program."""
    optimizer, step = adam_step(apply)
    holder = {"state": (params, optimizer.init(params)) if train else params}
    fn = jax.jit(step, donate_argnums=0) if train else jax.jit(apply)
    compiled = fn.lower(holder["state"], x).compile()
    try:
        peak = executable_memory(compiled)["peak"]
    except RuntimeError:  # a backend without a compiled memory analysis
        peak = None

    def run():
        if not train:
            return compiled(holder["state"], x)
        holder["state"], loss = compiled(holder["state"], x)
        return loss

    return Timed(blocking(run), peak)


def backbone(name: str, width: int, length: int, dtype: str, shallow: bool = False) -> Any:
    """Backbone ``name`` from its default options at ``width`` in ``dtype`` (``max_len`` set to ``length``;
    ``shallow``: one layer, a dry run's)."""
    return backbone_module(name, width, dtype=dtype, max_len=length, **{f: 1 for f in DEPTH_FIELDS if shallow})


def module_step(module: Any, shape: Shape, train: bool = True) -> Timed:
    x = jnp.asarray(inputs(shape))
    return compiled_step(module.apply, module.init(jax.random.key(0), x), x, train)


def jax_cudnn_lstm(shape: Shape) -> Timed:
    """JAX's cuDNN LSTM (``jax.experimental.rnn.lstm``), one layer, its weights one flat vector."""
    from jax.experimental import rnn

    b, _, i, h = shape
    weights = rnn.init_lstm_weight(jax.random.key(0), i, h, 1, False)
    zeros = jnp.zeros((1, b, h), jnp.float32)
    lengths = jnp.full((b,), shape.time, jnp.int32)

    def apply(w, x):
        return rnn.lstm(x, zeros, zeros, w, lengths, i, h, 1, 0.0, False)[0]

    return compiled_step(apply, weights, jnp.asarray(inputs(shape)))


def torch_cudnn(cell: str, shape: Shape) -> Timed:
    """PyTorch ``nn.LSTM`` / ``nn.GRU`` on CUDA (cuDNN): the same loss and Adam step."""
    from seqjax.benchmarks.peers import torch_recurrent

    return Timed(torch_recurrent(cell, shape, inputs(shape), device="gpu").train_step, None)


@dataclasses.dataclass
class Row:
    table: str
    model: str
    shape: str
    program: str
    dtype: str
    ms: float | None = None
    tokens_per_s: float | None = None
    ratio: float | None = None  # t_this / t_reference within one comparison (cudnn: t_peer / t_seqjax)
    peak_mb: float | None = None
    note: str = ""


class Bench:
    """Builds, times and records rows, within a time budget."""

    def __init__(self, budget_s: float, repeats: int):
        self.start, self.budget_s, self.repeats, self.rows = time.perf_counter(), budget_s, repeats, []

    def group(self, table: str, shape: Shape, dtype: str, builders: dict[str, tuple[str, Callable[[], Timed]]],
              reference: str | None = None) -> None:
        """Build and time ``builders`` (row name -> (program, builder)) together; a ratio t_row / t_reference."""
        built: dict[str, Timed] = {}
        for name, (program, build) in builders.items():
            row = Row(table, name, str(shape), program, dtype)
            if time.perf_counter() - self.start > self.budget_s:
                row.note = f"skipped: past the {self.budget_s:.0f} s budget"
            else:
                try:
                    built[name] = build()
                    built[name].run()  # the warm-up call, where a runtime error (out of memory) shows
                except Exception as e:  # noqa: BLE001 -- a failed row is recorded and the run goes on
                    built.pop(name, None)
                    row.note = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            self.rows.append(row)
        if not built:
            return
        times = time_interleaved({name: t.run for name, t in built.items()}, repeats=self.repeats, warmup=0)
        for row in self.rows[-len(builders):]:
            if row.model in times:
                seconds, peak = times[row.model].wall, built[row.model].peak_bytes
                row.ms, row.tokens_per_s = seconds * 1e3, shape.batch * shape.time / seconds
                row.peak_mb = None if peak is None else peak / 2**20
                if reference in times:
                    row.ratio = seconds / times[reference].wall
        print(format_rows(self.rows[-len(builders):], header=False), flush=True)


def run(quick: bool, budget_s: float, repeats: int) -> list[Row]:
    bench = Bench(budget_s, repeats)
    gpu = jax.default_backend() == "gpu"
    for shape in QUICK["families"] if quick else FAMILY_SHAPES:
        for name in BACKBONES.names():
            bench.group("families", shape, "bfloat16", {name: (
                "train_step", lambda name=name, shape=shape: module_step(
                    backbone(name, shape.hidden, shape.time, "bfloat16", quick), shape))})
    shape = QUICK["cudnn"] if quick else CUDNN_SHAPE
    for cell in ("lstm", "gru"):
        builders = {f"seqjax {cell}": ("train_step", lambda cell=cell: module_step(
            backbone(cell, shape.hidden, shape.time, "float32"), shape))}
        if gpu:
            builders[f"torch {cell} (cuDNN)"] = ("train_step", lambda cell=cell: torch_cudnn(cell, shape))
            if cell == "lstm":
                builders["jax.experimental.rnn lstm (cuDNN)"] = ("train_step", lambda: jax_cudnn_lstm(shape))
        bench.group("cudnn", shape, "float32", builders, reference=f"seqjax {cell}")
    shape = QUICK["long_scan"] if quick else LONG_SCAN
    for program in ("forward", "train_step"):
        bench.group("long_scan", shape, "float32", {f"mamba block ({program})": (program, lambda program=program:
                    module_step(MambaBlock(d_model=shape.hidden), shape, train=program == "train_step"))})
    return bench.rows


def format_rows(rows: list[Row], header: bool = True) -> str:
    lines = ["| table | model | shape | program | dtype | ms | tokens/s | ratio | peak MB | note |",
             "|---|---|---|---|---|---|---|---|---|---|"] if header else []
    for r in rows:
        cells = [r.table, r.model, r.shape, r.program, r.dtype,
                 "-" if r.ms is None else f"{r.ms:.2f}", "-" if r.tokens_per_s is None else f"{r.tokens_per_s:.3g}",
                 "-" if r.ratio is None else f"{r.ratio:.2f}", "-" if r.peak_mb is None else f"{r.peak_mb:.0f}",
                 r.note]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "jax": jax.__version__, "devices": str(jax.devices())}
    for name in ("flax", "optax", "torch"):
        try:
            found[name] = __import__(name).__version__
        except ImportError:
            found[name] = "not installed"
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "gpu")
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 1 round: a dry run, not a measurement")
    parser.add_argument("--budget-s", type=float, default=400.0, help="rows not started by then are skipped")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(format_rows([]), flush=True)
    rows = run(args.quick, args.budget_s, 1 if args.quick else args.repeats)
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"command": "python experiments/benchmarks/gpu.py" + (" --quick" if args.quick else ""),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "backend": jax.default_backend(),
              "versions": versions(), "rows": [dataclasses.asdict(r) for r in rows]}
    (args.out / "gpu.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.out / "gpu.md").write_text(format_rows(rows) + "\n")
    timed = [r for r in rows if r.ms is not None]
    if args.quick and not (timed and all(np.isfinite(r.ms) for r in timed) and len(timed) == len(rows)):
        raise SystemExit(f"--quick: a row did not run: {[r.model for r in rows if r.ms is None]}")


if __name__ == "__main__":
    main()
