"""How far back can each recurrent cell add? The adding problem against T, in the TCN-paper and uRNN variants.

Runs two sweeps, RNN (tanh), GRU and LSTM, one layer of width 64, Adam 3e-3, clipping at global norm 1, batch
64, seeds 0, 1, 2 (each cell's seeds at one T trained together in one vmapped program):
``configs/sweeps/adding_length.yaml`` (TCN-paper variant: both markers anywhere, T = 10, 25, 50, 100, 200,
1500 steps) and ``configs/sweeps/adding_length_urnn.yaml`` (uRNN variant: one marker in each half, T = 100, 200,
400, 750, 1000 steps).  Scores each run's best validation checkpoint on the fixed test split with ``seqjax
eval`` and writes to ``--out`` (default: here): ``results.json`` (one row per run: variant, T, model, seed,
params, steps, best step, best validation MSE, test MSE, the baseline 1/6, the validation MSE at each
evaluation, wall time, the ``seqjax train`` command that reproduces it), ``results.md`` (test MSE, mean ± 95% CI
over seeds, per variant, model and T) and ``results.png`` (test MSE against T, one panel per variant); run
directories go to ``<out>/runs/<variant>/``.  A rerun skips the trials already trained and scores them again.

Usage:  python experiments/adding_length/run.py [--out FOLDER] [--quick]

``--quick`` is a smoke test of the same pipeline: one seed of each sweep's first point (``study.quick_sweep``)
at its tiny size (``seqjax.experiment.tiny``), trained in this process; results under ``--out`` (default
``runs/quick/adding_length``); it fails unless every row holds finite losses.
"""

from __future__ import annotations

import json
import pathlib

import matplotlib
from omegaconf import DictConfig

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from seqjax.experiment.study import cell_stats, ci_text, sweep_study  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
SWEEPS = {variant: HERE.parent.parent / "configs" / "sweeps" / name
          for variant, name in (("tcn", "adding_length.yaml"), ("urnn", "adding_length_urnn.yaml"))}
PLOT = "results.png"
CELL = ("variant", "model", "T")


def columns(cfg: DictConfig) -> dict:
    """A row's own columns: the task's variant and length, the cell, its width and the seed."""
    return {"variant": cfg.task.variant, "T": cfg.task.seq_len, "model": cfg.model.name,
            "hidden_size": cfg.model.hidden_size, "seed": cfg.seed}


def write(rows: list[dict], out: pathlib.Path) -> None:
    """``results.json`` (the rows), ``results.md`` (per variant, test MSE, mean ± 95% CI, per model and T), the plot."""
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    stats = cell_stats(rows, CELL, "test_mse")
    lines = []
    for variant in dict.fromkeys(r["variant"] for r in rows):
        lengths = sorted({T for v, _, T in stats if v == variant})
        runs = [r for r in rows if r["variant"] == variant]
        lines += [f"{variant} variant: test MSE, mean ± 95% CI over {len({r['seed'] for r in runs})} seeds, "
                  f"{runs[0]['steps']} steps (baseline {runs[0]['chance_mse']:.3g})", "",
                  "| model | params | " + " | ".join(f"T={T}" for T in lengths) + " |",
                  "|---|---|" + "---|" * len(lengths)]
        for model in dict.fromkeys(r["model"] for r in runs):
            params = next(r["params"] for r in runs if r["model"] == model)
            lines.append(f"| {model} | {params} | "
                         + " | ".join(ci_text(stats[variant, model, T], significant=True) for T in lengths) + " |")
        lines.append("")
    (out / "results.md").write_text("\n".join(lines))
    plot(rows, out / PLOT)


def plot(rows: list[dict], path: pathlib.Path) -> None:
    """Test MSE against T (log-log), one panel per variant, one line per model (mean, 95% CI bars), baseline dashed."""
    stats = cell_stats(rows, CELL, "test_mse")
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    fig, axes = plt.subplots(1, len(variants), figsize=(4.5 * len(variants), 3.5), sharey=True, squeeze=False)
    for ax, variant in zip(axes[0], variants):
        for model in dict.fromkeys(r["model"] for r in rows):
            points = sorted((T, s) for (v, m, T), s in stats.items() if (v, m) == (variant, model))
            ax.errorbar([T for T, _ in points], [s["mean"] for _, s in points],
                        yerr=[min(s["ci95"] or 0.0, 0.9 * s["mean"]) for _, s in points],  # a log axis ends at 0
                        marker="o", capsize=3, label=model)
        ax.axhline(rows[0]["chance_mse"], color="gray", ls="--", label="baseline (predict 1)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{variant} variant")
        ax.set_xlabel("T")
    axes[0][0].set_ylabel("test MSE")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sweep_study(__doc__.splitlines()[0], HERE, SWEEPS, columns, write, ("results.md", PLOT), metric="mse")
