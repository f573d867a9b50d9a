"""Vanishing and exploding gradients in an Elman RNN vs gated cells (Pascanu, Mikolov & Bengio 2013).

For ``h_t = tanh(W_h h_{t-1} + W_x x_t + b)``, ``||dh_T/dh_t||_2 <= ||W_h||_2^{T-t}`` (gamma = 1 for tanh):
``||W_h||_2 < 1`` is sufficient for the gradient to vanish geometrically; ``> 1`` is necessary for it to
explode.  We set ``||W_h||_2`` exactly (``spectral_norm=s``) and measure the backpropagated signal
``||dL/da_t||`` (``seqjax.cells.diagnostics.gradient_flow``) at every distance ``T - t``, on random inputs, and
compare with the bound ``s^{T-t}``.  LSTM and GRU at their default initialisation are shown beside.

Usage:  python experiments/vanishing_gradients/run.py [--out experiments/vanishing_gradients] [--quick]

``--quick`` runs the same measurement at T=20, hidden 8, batch 4 (a smoke test); its results go under ``--out``
(default ``runs/quick/vanishing_gradients``).
"""

from __future__ import annotations

import argparse
import pathlib

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import seqjax  # noqa: E402
from seqjax.cells.diagnostics import gradient_flow  # noqa: E402

T, HIDDEN, INPUT, BATCH = 100, 64, 2, 32
QUICK = dict(T=20, hidden=8, batch=4)  # --quick
NORMS = (0.5, 0.9, 1.0, 1.1, 1.5, 2.0, 3.0)


def distances(T: int) -> tuple[int, ...]:
    """The columns of the table: 1, 10, 25, 50, 99 at T=100."""
    return (1, T // 10, T // 4, T // 2, T - 1)


def measure(T: int = T, hidden: int = HIDDEN, batch: int = BATCH) -> dict[str, np.ndarray]:
    xs = jax.random.normal(jax.random.key(1), (batch, T, INPUT))
    curves = {}
    for s in NORMS:
        cell = seqjax.rnn(hidden, spectral_norm=s)
        curves[f"rnn ||W_h||={s}"] = np.asarray(gradient_flow(cell, cell.init(jax.random.key(0), INPUT), xs))
    for cell in (seqjax.lstm(hidden), seqjax.gru(hidden)):
        curves[f"{cell.name} (default init)"] = np.asarray(
            gradient_flow(cell, cell.init(jax.random.key(0), INPUT), xs)
        )
    return curves


def write(curves: dict[str, np.ndarray], out: pathlib.Path, hidden: int = HIDDEN, batch: int = BATCH) -> None:
    rel = {name: g / g[-1] for name, g in curves.items()}  # normalise to the last step: distance 0
    T = len(next(iter(rel.values())))
    ds, half = distances(T), T // 2
    rows = ["| model | " + " | ".join(f"d={d}" for d in ds) + f" | bound s^d at d={half} |",
            "|---|" + "---|" * (len(ds) + 1)]
    for name, g in rel.items():
        bound = f"{float(name.split('=')[1]) ** half:.2e}" if "||W_h||" in name else "-"
        rows.append(f"| {name} | " + " | ".join(f"{g[T - 1 - d]:.2e}" for d in ds) + f" | {bound} |")
    (out / "results.md").write_text(
        f"Relative gradient norm ||dL/da_{{T-d}}|| / ||dL/da_T|| at distance d (T={T}, hidden {hidden}, "
        f"batch {batch}, x ~ N(0, 1)).\n\n" + "\n".join(rows) + "\n"
    )
    fig, ax = plt.subplots(figsize=(7, 4.5))
    dist = np.arange(T)[::-1]
    for name, g in rel.items():
        ax.semilogy(dist, g, label=name, ls="--" if "default" in name else "-")
    ax.set_xlabel("distance T - t (steps back)")
    ax.set_ylabel("||dL/da_t|| / ||dL/da_T||")
    ax.set_title("Gradient flow through time at initialisation")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "gradient_flow.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None,
                        help="results folder (default: here; with --quick runs/quick/vanishing_gradients)")
    parser.add_argument("--quick", action="store_true", help=f"a smoke test at a tiny size: {QUICK}")
    args = parser.parse_args()
    out = pathlib.Path(args.out or ("runs/quick/vanishing_gradients" if args.quick else pathlib.Path(__file__).parent))
    out.mkdir(parents=True, exist_ok=True)
    size = QUICK if args.quick else dict(T=T, hidden=HIDDEN, batch=BATCH)
    write(measure(**size), out, size["hidden"], size["batch"])
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
