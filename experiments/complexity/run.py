"""Cost of a sequence model against its context length L: RNN / TCN / Transformer / SSM.

Every family is built through the model registry at width 64 and two layers (the TCN gets the levels
that make its receptive field cover L), then for each L it measures, in one process:

* train step (forward + backward + Adam, jit-compiled) wall time, median of interleaved repeats;
* XLA's compiled peak memory of that train step;
* the streaming form: time of one ``step`` (one token, carried state) and the bytes of the state.

Expected scaling per layer (d = width, N = state size, k = kernel):

| family | train compute | sequential depth | streaming state |
|---|---|---|---|
| LSTM | O(L d^2) | L | O(d), constant |
| TCN | O(L k d^2 log L) | log L levels | O(receptive field x d) = O(L d) |
| Transformer | O(L^2 d + L d^2) | 1 | KV cache O(L d) |
| S4D | O(L log L d) (FFT) | 1 | O(N d), constant |
| Mamba | O(L d N) | log L (associative scan) | O(N d + k d), constant |

Usage:  python experiments/complexity/run.py [--lengths 256 1024 4096] [--batch 4] [--repeats 3] [--quick]

``--quick`` is a smoke test: the same measurements at L=16, batch 2, one repeat (it overrides those three
options); its results go under ``--out`` (default ``runs/quick/complexity``).
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from seqjax.benchmarks.programs import jax_program  # noqa: E402
from seqjax.benchmarks.timing import blocking, time_interleaved  # noqa: E402
from seqjax.cells.diagnostics import count_params  # noqa: E402
from seqjax.experiment.runtime import keep_freed_memory  # noqa: E402
from seqjax.experiment.study import study_out, study_parser  # noqa: E402
from seqjax.models.tcn import levels_for_context  # noqa: E402
from seqjax.models.registry import get_backbone  # noqa: E402

WIDTH = 64
FAMILIES = ("lstm", "tcn", "transformer", "s4d", "mamba")
QUICK = dict(lengths=[16], batch=2, repeats=1)  # --quick: compiling dominates, so the width stays


def family_options(name: str, length: int) -> dict[str, Any]:
    """Width 64, two layers; the TCN deep enough to see the whole context; the KV cache L long."""
    return {
        "lstm": dict(hidden_size=WIDTH, num_layers=2),
        "tcn": dict(channels=WIDTH, levels=levels_for_context(length, 3), kernel_size=3),
        "transformer": dict(d_model=WIDTH, n_layers=2, n_heads=4, max_len=length),
        "s4d": dict(d_model=WIDTH, n_layers=2),
        "mamba": dict(d_model=WIDTH, n_layers=2),
    }[name]


def build(name: str, length: int) -> Any:
    spec = get_backbone(name)
    return spec.build(spec.options(**family_options(name, length)))


def streaming(module: Any, variables: Any, batch: int) -> tuple[Any, int]:
    """A blocking one-token step with the carried state, and the state's size in bytes."""
    state = module.apply(variables, batch, method="initial_state")
    step = jax.jit(lambda v, s, x: module.apply(v, s, x, method="step"))
    x_t = jnp.ones((batch, WIDTH))
    nbytes = sum(leaf.nbytes for leaf in jax.tree.leaves(state))
    return blocking(lambda: step(variables, state, x_t)), nbytes


def measure(lengths: list[int], batch: int, repeats: int) -> list[dict[str, Any]]:
    rows = []
    for length in lengths:
        x = np.random.default_rng(0).standard_normal((batch, length, WIDTH), dtype=np.float32)
        train, step = {}, {}
        for name in FAMILIES:
            module = build(name, length)
            variables = module.init(jax.random.key(0), jnp.asarray(x))
            program = jax_program(module.apply, variables, x)
            step_fn, state_bytes = streaming(module, variables, batch)
            train[name], step[name] = program.train_step, step_fn
            rows.append({"family": name, "L": length, "params": count_params(variables),
                         "train_peak_MiB": program.train_bytes / 2**20, "state_KiB": state_bytes / 2**10})
            print(f"built {name} L={length}", flush=True)
        train_s = time_interleaved(train, repeats=repeats)
        step_s = time_interleaved(step, repeats=max(repeats, 10))
        for row in rows[-len(FAMILIES):]:
            row["train_ms"] = 1e3 * train_s[row["family"]].wall
            row["step_us"] = 1e6 * step_s[row["family"]].wall
    return rows


def write(rows: list[dict[str, Any]], out: pathlib.Path, batch: int) -> str:
    cols = ["family", "L", "params", "train_ms", "train_peak_MiB", "step_us", "state_KiB"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in sorted(rows, key=lambda r: (FAMILIES.index(r["family"]), r["L"])):
        lines.append("| " + " | ".join(f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    text = f"batch {batch}, width {WIDTH}, float32, {jax.devices()[0].platform}\n\n" + "\n".join(lines) + "\n"
    (out / "results.md").write_text(text)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, key, label in zip(axes, ("train_ms", "train_peak_MiB", "state_KiB"),
                              ("train step (ms)", "train step peak memory (MiB)", "streaming state (KiB)")):
        for name in FAMILIES:
            pts = sorted((r["L"], r[key]) for r in rows if r["family"] == name)
            ax.loglog(*zip(*pts), marker="o", label=name)
        lengths = sorted({r["L"] for r in rows})
        ax.set_xticks(lengths, [str(n) for n in lengths])
        ax.minorticks_off()
        ax.set_xlabel("context length L")
        ax.set_title(label)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "complexity.png", dpi=110)
    return text


def main() -> None:
    parser = study_parser(__doc__.splitlines()[0], pathlib.Path(__file__).parent,
                          f"a smoke test at a tiny size: {QUICK}")
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.quick:
        vars(args).update(QUICK)
    out = study_out(args, create=True)
    print(write(measure(args.lengths, args.batch, args.repeats), out, args.batch))


if __name__ == "__main__":
    keep_freed_memory()  # as the seqjax commands do (seqjax/experiment/runtime.py)
    main()
