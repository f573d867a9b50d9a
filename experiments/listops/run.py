"""ListOps (Long Range Arena, Tay et al. 2021) at CPU scale: Transformer, S4D, LSTM and Mamba, three seeds each.

Runs ``seqjax sweep configs/sweeps/listops.yaml`` (the four models of ``configs/experiments/listops_*.yaml``,
two layers of width 64 each, on ListOps generated with LRA's rules at the sweep's reduced lengths, seeds 0, 1, 2;
each model's three seeds trained together in one vmapped program), scores each run's best validation checkpoint
on the fixed test set with ``seqjax eval`` and writes to ``--out`` (default: here): ``results.json`` (one row per
run: model, lengths, width, batch, seed, params, steps, best step, validation and test accuracy, the validation
accuracy at each evaluation, wall time, the ``seqjax train`` command that reproduces it), ``results.md`` (test
accuracy, mean ± 95% CI over seeds, per model) and ``accuracy_by_step.png`` (validation accuracy against
training step, mean over seeds, per model; the label prior dashed); run directories go to ``<out>/runs/``.
A rerun skips the trials already trained (the sweep's rule) and scores them again.

Usage:  python experiments/listops/run.py [--out FOLDER] [--quick]

``--quick`` is a smoke test of the same pipeline: one seed of the claims' two models (Transformer and S4D,
``QUICK_MODELS``) at their tiny size (``seqjax.experiment.tiny``: 6 steps, one layer of width 8), trained in this
process; results under ``--out`` (default ``runs/quick/listops``); it fails unless every row holds finite
accuracies.
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
SWEEP = HERE.parent.parent / "configs" / "sweeps" / "listops.yaml"
PLOT = "accuracy_by_step.png"
QUICK_MODELS = 2  # the sweep's first two, the models the claims name


def columns(cfg: DictConfig) -> dict:
    """A row's own columns: the model, its width (``d_model``, or the LSTM's ``hidden_size``), the lengths."""
    return {"model": cfg.name.removeprefix("listops_"), "min_len": cfg.task.min_len, "max_len": cfg.task.max_len,
            "width": cfg.model.get("d_model", cfg.model.get("hidden_size")), "batch_size": cfg.train.batch_size,
            "seed": cfg.seed}


def write(rows: list[dict], out: pathlib.Path) -> None:
    """``results.json`` (the rows), ``results.md`` (test accuracy, mean ± 95% CI and per seed, per model), the plot."""
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    stats = cell_stats(rows, ("model",))
    table = ["| model | width | params | steps | lengths | seeds | test accuracy (mean ± 95% CI) | per seed | label prior |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (model,), s in stats.items():
        runs = [r for r in rows if r["model"] == model]
        first = runs[0]
        table.append(f"| {model} | {first['width']} | {first['params']} | {first['steps']} | "
                     f"{first['min_len']}-{first['max_len']} | {len(runs)} | {ci_text(s)} | "
                     + " / ".join(f"{r['test_accuracy']:.3f}" for r in runs) + f" | {first['chance_accuracy']:.3f} |")
    (out / "results.md").write_text("\n".join(table) + "\n")
    plot(rows, out / PLOT)


def plot(rows: list[dict], path: pathlib.Path) -> None:
    """Validation accuracy against step, mean over each model's seeds; the label prior dashed."""
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for model in dict.fromkeys(r["model"] for r in rows):
        curves = [r["val_accuracy_by_step"] for r in rows if r["model"] == model]
        steps = sorted(curves[0], key=int)
        ax.plot([int(s) for s in steps], [sum(c[s] for c in curves) / len(curves) for s in steps], marker="o",
                label=model)
    ax.axhline(rows[0]["chance_accuracy"], color="gray", ls="--", label="label prior")
    ax.set_xlabel("training step")
    ax.set_ylabel("validation accuracy (mean over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sweep_study(__doc__.splitlines()[0], HERE, {"": SWEEP}, columns, write, ("results.md", PLOT), QUICK_MODELS)
