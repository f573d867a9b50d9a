"""Optuna against the grid, re-seeded: each side's best point trained again over fresh seeds.

``optuna_vs_grid.py`` compares the best validation MSE of a search with the best of the grid, one seed per
point, so the grid's side is the minimum of 18 noisy draws (its best, lr 0.1 at width 32, sits beside a
diverged neighbour).  The fair form of issue 14's claim compares what each side *chose*: this script takes
the best point (learning rate, width) of the grid and of every search in the committed results
(``--results DIR ...``, each holding ``results.json`` and ``trials.json`` of ``optuna_vs_grid.py``; default
``optuna_vs_grid`` and ``optuna_box`` beside this file), trains each point again with the grid's settings
over fresh seeds (``--seeds N``: 100, 101, ...; a point's seeds vmapped in one program), and scores a point by
the mean over seeds of each run's best validation MSE.  A search passes when its committed budget ratio is at
most 1/3 and its point's mean is within 10% of the grid point's mean.

Run: ``python experiments/benchmarks/optuna_reseeded.py`` (``--quick``: two seeds, a few steps, the first
source's grid point and first search only; ``--out DIR``, default ``runs/benchmarks/optuna_reseeded``; results
in ``<out>/results.json``: every point's per-seed MSEs, every search's verdict).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from omegaconf import OmegaConf
from optuna_vs_grid import GRID, QUICK, curves

from seqjax.experiment.report import mean_ci
from seqjax.experiment.sweep import run_sweep

HERE = Path(__file__).resolve().parent
SOURCES = [HERE / "optuna_vs_grid", HERE / "optuna_box"]
AXES = ["optim.lr", "model.hidden_size"]
FIRST_SEED = 100  # fresh: the grid and the searches trained seed 0


def best_points(trials: dict[str, list[dict]]) -> dict[str, tuple]:
    """Each side's (``trials.json`` key's) best trial's point: its value on each of :data:`AXES`."""
    return {side: tuple(min((r for r in runs if r["best_val_mse"] is not None),
                            key=lambda r: r["best_val_mse"])[k] for k in AXES) for side, runs in trials.items()}


def retrain(point: tuple, seeds: list[int], out: Path, overrides: list[str]) -> list[float]:
    """The best validation MSE of each seed's run of the grid's experiment at ``point``."""
    spec = OmegaConf.load(GRID)
    sweep = {"experiment": str((GRID.parent / spec.experiment).resolve()),
             "overrides": [*spec.overrides, *(f"{k}={v}" for k, v in zip(AXES, point))], "seeds": seeds}
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(sweep)))
    assert not run_sweep(out / "sweep.yaml", quiet=True, overrides=overrides, out=out / "runs")
    runs = curves([out / "runs" / f"seed={s}" for s in seeds], AXES)
    return [r["best_val_mse"] for r in runs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two seeds, a few steps, one grid point and one search")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/optuna_reseeded"))
    parser.add_argument("--results", type=Path, nargs="+", default=SOURCES, help="optuna_vs_grid.py result folders")
    parser.add_argument("--seeds", type=int, default=5, help="fresh seeds per point (--quick: 2)")
    args = parser.parse_args()
    seeds = list(range(FIRST_SEED, FIRST_SEED + (2 if args.quick else args.seeds)))
    sides = {}
    for source in args.results[:1] if args.quick else args.results:
        budgets = {f"{Path(s['file']).stem} seed {s['random_seed']}": s["budget_ratio"]
                   for s in json.loads((source / "results.json").read_text())["searches"]}
        points = best_points(json.loads((source / "trials.json").read_text()))
        sides.update({(source.name, side): (point, budgets.get(side))
                      for side, point in list(points.items())[:2 if args.quick else None]})
    mse = {}
    for point in dict.fromkeys(point for point, _ in sides.values()):
        folder = args.out / ",".join(f"{k.split('.')[-1]}={v:.4g}" for k, v in zip(AXES, point))
        mse[point] = retrain(point, seeds, folder, QUICK if args.quick else [])
        stats = mean_ci(mse[point])
        print(f"{dict(zip(AXES, point))}: best val mse over seeds {seeds}: mean {stats['mean']:.4g} "
              f"(95% CI ± {stats['ci95']:.2g}); per seed {' / '.join(f'{v:.3g}' for v in mse[point])}", flush=True)
    rows = []
    for (source, side), (point, budget) in sides.items():
        grid_mean, mean = mean_ci(mse[sides[source, "grid"][0]])["mean"], mean_ci(mse[point])["mean"]
        row = {"source": source, "side": side, **dict(zip(AXES, point)), "budget_ratio": budget,
               "mean_best_val_mse": mean, "mse_ratio_to_grid_point": mean / grid_mean}
        if budget is not None:
            row["pass"] = budget <= 1 / 3 and row["mse_ratio_to_grid_point"] <= 1.1
        rows.append(row)
        verdict = "" if budget is None else f"budget ratio {budget:.3f}: {'PASS' if row['pass'] else 'FAIL'}"
        print(f"{source} {side}: {dict(zip(AXES, point))} mean {mean:.4g}, "
              f"{row['mse_ratio_to_grid_point']:.3f} x the grid point's; {verdict}", flush=True)
    searches = [r for r in rows if "pass" in r]
    print(f"{sum(r['pass'] for r in searches)} of {len(searches)} searches pass")
    result = {"seeds": seeds, "points": [{**dict(zip(AXES, p)), "best_val_mse": v} for p, v in mse.items()],
              "sides": rows}
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
