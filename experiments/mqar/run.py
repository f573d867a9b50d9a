"""Multi-query associative recall (Zoology, Arora et al. 2023, Fig. 2) at CPU scale: three settings, two widths.

Runs ``seqjax sweep configs/sweeps/mqar.yaml`` (Transformer, Mamba and S4D, the models of the claims, and the
six linear recurrences Mamba-2, LRU, Hawk, minGRU, minLSTM and S5, two layers each, at L=64, K=4, width 64,
seeds 0, 1, 2; each model's three seeds trained together in one vmapped program), then
``configs/sweeps/mqar_k.yaml`` (the claims' Transformer, Mamba and S4D at (L, K) = (128, 8) and (256, 16), the
same seeds; run directories under ``<out>/runs/k/``) and ``configs/sweeps/mqar_width.yaml`` (the three at width
128, (64, 4); under ``<out>/runs/width/``), scores each run's best
validation checkpoint on the fixed test split with ``seqjax eval`` and writes to ``--out`` (default: here):
``results.json`` (one row per run: model, L, K, width, batch, seed, params, steps, best step, validation and
test accuracy, the validation accuracy at each evaluation, wall time, the ``seqjax train`` command that
reproduces it), ``results.md`` (test accuracy, mean ± 95% CI over seeds, per model and width, one column per
(L, K)) and ``accuracy_vs_width.png`` (one panel per (L, K), as Zoology's Figure 2; a sweep file with a grid
over ``task.seq_len``/``task.num_pairs`` and ``model.d_model`` fills in more of it); run directories go to
``<out>/runs/``.  A rerun skips the trials already trained (the sweep's rule) and scores them again.

Usage:  python experiments/mqar/run.py [--out FOLDER] [--quick]

``--quick`` is a smoke test of the same pipeline: one seed of the claims' three models at their tiny size
(``study.quick_sweep``, ``QUICK_MODELS``; ``seqjax.experiment.tiny``: 6 steps, L=24, one layer of width 8),
trained in this process (``study.quick_jobs``); results under ``--out`` (default ``runs/quick/mqar``); it fails
unless every row holds finite accuracies.
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
SWEEP_DIR = HERE.parent.parent / "configs" / "sweeps"
SWEEPS = {"": SWEEP_DIR / "mqar.yaml",  # nine models at (L, K) = (64, 4)
          "k": SWEEP_DIR / "mqar_k.yaml",  # the claims' three models at (128, 8) and (256, 16)
          "width": SWEEP_DIR / "mqar_width.yaml"}  # the three at width 128
PLOT = "accuracy_vs_width.png"
QUICK_MODELS = 3  # the sweep's first three, the models the claims name
CELL = ("model", "seq_len", "num_pairs", "d_model")  # a table cell: the seeds of one model, (L, K) and width


def columns(cfg: DictConfig) -> dict:
    """A row's own columns: the model and the point of the search space (``d_model`` is the width)."""
    return {"model": cfg.name.removeprefix("mqar_"), "seq_len": cfg.task.seq_len, "num_pairs": cfg.task.num_pairs,
            "d_model": cfg.model.d_model, "batch_size": cfg.train.batch_size, "seed": cfg.seed}


def write(rows: list[dict], out: pathlib.Path) -> None:
    """``results.json`` (the rows), ``results.md`` (test accuracy, mean ± 95% CI, per model and width), the plot."""
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    stats = cell_stats(rows, CELL)
    settings = sorted({(L, K) for _, L, K, _ in stats})
    table = ["| model | width | params | steps | " + " | ".join(f"L={L}, K={K}" for L, K in settings) + " |",
             "|---|---|---|---|" + "---|" * len(settings)]
    for model, width in dict.fromkeys((m, w) for m, _, _, w in stats):
        runs = [r for r in rows if (r["model"], r["d_model"]) == (model, width)]
        params, steps = ("/".join(str(v) for v in dict.fromkeys(r[k] for r in runs)) for k in ("params", "steps"))
        table.append(f"| {model} | {width} | {params} | {steps} | "
                     + " | ".join(ci_text(stats[model, L, K, width]) if (model, L, K, width) in stats else "-"
                                  for L, K in settings) + " |")
    (out / "results.md").write_text("\n".join(table) + "\n")
    plot(rows, out / PLOT)


def plot(rows: list[dict], path: pathlib.Path) -> None:
    """Test accuracy against width, one panel per (L, K), one line per model (mean, 95% CI bars), chance dashed."""
    stats = cell_stats(rows, CELL)
    settings = sorted({(L, K) for _, L, K, _ in stats})
    fig, axes = plt.subplots(1, len(settings), figsize=(4 * len(settings), 3.5), sharey=True, squeeze=False)
    for ax, (L, K) in zip(axes[0], settings):
        for model in dict.fromkeys(m for m, *_ in stats):
            points = sorted((w, s) for (m, l, k, w), s in stats.items() if (m, l, k) == (model, L, K))
            ax.errorbar([w for w, _ in points], [s["mean"] for _, s in points],
                        yerr=[s["ci95"] or 0.0 for _, s in points], marker="o", capsize=3, label=model)
        chance = next(r["chance_accuracy"] for r in rows if (r["seq_len"], r["num_pairs"]) == (L, K))
        ax.axhline(chance, color="gray", ls="--", label="chance")
        ax.set_ylim(0, 1.05)  # accuracy: a 95% interval of three seeds may reach past 1
        ax.set_xscale("log", base=2)
        widths = sorted({w for _, l, k, w in stats if (l, k) == (L, K)})
        ax.set_xticks(widths, [str(w) for w in widths])
        ax.set_title(f"L={L}, K={K}")
        ax.set_xlabel("model width (d_model)")
    axes[0][0].set_ylabel("test accuracy")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sweep_study(__doc__.splitlines()[0], HERE, SWEEPS, columns, write, ("results.md", PLOT), QUICK_MODELS)
