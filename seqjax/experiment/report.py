"""Results tables and plots from run directories: ``seqjax report DIR``.

``DIR`` is a sweep's output folder (its ``sweep.yaml`` names the swept keys) or any folder holding run
directories.  Each run contributes its ``summary.json``: the best and final validation value of its
``best_metric``, the task's memoryless baseline, the parameter count and the wall time.  Runs that differ
only in ``seed`` are aggregated as ``mean ± h`` with ``n`` the number of seeds, where ``[mean - h, mean + h]``
is the 95% confidence interval of the mean under Student's t: ``h = t_{0.975, n-1} * s / sqrt(n)`` (``s``
the sample standard deviation; a single seed has no interval).  Run directories without a summary
(failed, diverged, pruned or unfinished trials) are listed under the table with the error their
``train.log`` ends on (a pruned search trial: the step its ``pruned.json`` names), never silently dropped.
Writes ``results.md``, ``results.csv`` (one row per run),
``aggregate.csv`` and ``aggregate.json`` (one row per configuration: mean, ci95, std, n) and, when a key
was swept, ``results.png`` (metric against the first swept key, with the intervals as error bars).
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from omegaconf import ListConfig, OmegaConf

from seqjax.errors import UserError, describe

SWEEP_RECORD = "sweep.yaml"


def _runs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("*/summary.json"))


def _swept_keys(root: Path) -> list[str]:
    """The swept keys (grid, zip, random), led by ``name`` when the sweep ran several experiments."""
    record = root / SWEEP_RECORD
    if not record.exists():
        return []
    sweep = OmegaConf.load(record)
    experiments = sweep.get("experiment")
    several = isinstance(experiments, ListConfig) and len(experiments) > 1
    space = [k for part in ("grid", "zip", "random") for k in sweep.get(part, {}).keys()]
    space += list(sweep.get("search", {}).get("space", {}))  # an Optuna search's axes
    return (["name"] if several else []) + space


def _read_run(run: Path) -> tuple[dict[str, Any], Any]:
    """A finished run's ``summary.json`` (with its ``best_metric``) and ``config.yaml``; one line if unreadable."""
    try:
        summary, cfg = json.loads((run / "summary.json").read_text()), OmegaConf.load(run / "config.yaml")
        summary["best_metric"]
    except Exception as e:  # json, YAML, a missing file or key: whatever is damaged, say so in one line
        raise UserError(f"{run}: its summary.json or config.yaml cannot be read ({describe(e)}): "
                        "rerun it or move it out of the folder") from None
    return summary, cfg


def collect(root: str | Path) -> tuple[list[str], list[dict[str, Any]]]:
    """One row per run: the swept values, seed, best/final metric, baseline, params, wall time."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root} is not a directory: give a sweep output folder or a folder of run directories")
    runs = _runs(root)
    if not runs:
        raise UserError(f"{root} holds no finished runs (no */summary.json): run `seqjax sweep` or `seqjax train` first")
    keys = _swept_keys(root)
    rows = []
    for run in runs:
        summary, cfg = _read_run(run)
        metric = summary["best_metric"]
        rows.append({
            **{k: OmegaConf.select(cfg, k) for k in keys},
            "seed": cfg.get("seed"),
            "metric": metric,
            "best": (summary.get("best") or {}).get(metric),
            "final": ((summary.get("final") or {}).get("val") or {}).get(metric),
            "baseline": summary["baseline"].get(metric),
            "params": summary["param_count"],
            "wall_s": summary["wall_time_s"],
            "run": run.name,
        })
    return keys, rows


def mean_ci(values: list[float | None]) -> dict[str, float | int | None]:
    """``mean``, ``ci95`` (the half-width ``t_{0.975, n-1} s / sqrt(n)``), ``std`` and ``n`` of the values given.

    >>> mean_ci([1.0, 2.0, 3.0])  # t_{0.975, 2} = 4.3027
    {'mean': 2.0, 'ci95': 2.484..., 'std': 1.0, 'n': 3}
    >>> mean_ci([0.5, None])
    {'mean': 0.5, 'ci95': None, 'std': None, 'n': 1}
    """
    from scipy.stats import t

    values = [v for v in values if v is not None]
    n = len(values)
    if n < 2:
        return {"mean": values[0] if values else None, "ci95": None, "std": None, "n": n}
    std = statistics.stdev(values)
    return {"mean": statistics.mean(values), "ci95": float(t.ppf(0.975, n - 1)) * std / math.sqrt(n), "std": std,
            "n": n}


def _text(stats: dict[str, Any]) -> str:
    if stats["mean"] is None:
        return "-"
    return f"{stats['mean']:.4g}" + (f" ± {stats['ci95']:.2g}" if stats["ci95"] is not None else "")


def _sort_key(value: Any) -> tuple:
    """Numbers before text, each in natural order."""
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


def aggregate(keys: list[str], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group runs by their swept values; per group ``n`` and :func:`mean_ci` of ``best``, ``final``, ``wall_s``."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[k] for k in keys) + (row["metric"],)].append(row)
    table = []
    for _, group in sorted(groups.items(), key=lambda item: [_sort_key(v) for v in item[0]]):
        first = group[0]
        table.append({
            **{k: first[k] for k in keys},
            "n": len(group),
            "metric": first["metric"],
            **{field: mean_ci([r[field] for r in group]) for field in ("best", "final", "wall_s")},
            "baseline": first["baseline"],
            "params": first["params"],
        })
    return table


def markdown(table: list[dict[str, Any]], keys: list[str]) -> str:
    """The aggregated table: metrics as ``mean ± ci95`` over the ``n`` seeds."""
    metric = table[0]["metric"]
    header = [*keys, "n", f"best {metric}", f"final {metric}", "baseline", "params", "wall s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table:
        baseline = f"{row['baseline']:.4g}" if row["baseline"] is not None else "-"
        cells = [*(row[k] for k in keys), row["n"], _text(row["best"]), _text(row["final"]), baseline, row["params"],
                 _text(row["wall_s"])]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _flat_row(row: dict[str, Any]) -> dict[str, Any]:
    """A table row for CSV: ``best_mean``, ``best_ci95``, ... beside the swept values."""
    out = {}
    for k, v in row.items():
        out.update({f"{k}_{s}": x for s, x in v.items() if s != "n"} if isinstance(v, dict) else {k: v})
    return out


def unfinished(root: Path) -> list[str]:
    """``"<run>: <its train.log's last error line>"`` for each run directory under ``root`` without a summary."""
    lines = []
    for run in sorted(p.parent for p in root.glob("*/config.yaml") if not (p.parent / "summary.json").exists()):
        log = run / "train.log"
        errors = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("error")] \
            if log.exists() else []
        pruned = json.loads((run / "pruned.json").read_text()) if (run / "pruned.json").exists() else None
        why = f"pruned at step {pruned['pruned_at_step']}" if pruned else errors[-1][:300] if errors else \
            "no summary (unfinished, or killed)"
        lines.append(f"{run.name}: {why}")
    return lines


def plot(keys: list[str], rows: list[dict[str, Any]], path: Path) -> None:
    """Best metric against the first swept key, one line per combination of the others (mean ± ci95)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_key, others = keys[0], keys[1:]
    lines: dict[tuple, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["best"] is not None:
            lines[tuple(r[k] for k in others)][r[x_key]].append(r["best"])
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, points in lines.items():
        xs = sorted(points, key=_sort_key)  # clip_norm=None beside numbers
        stats = [mean_ci(points[x]) for x in xs]
        name = ", ".join(f"{k}={v}" for k, v in zip(others, label)) or None
        ax.errorbar([str(x) for x in xs], [s["mean"] for s in stats], yerr=[s["ci95"] or 0.0 for s in stats],
                    marker="o", capsize=3, label=name)
    values = [r["best"] for r in rows if r["best"] is not None]
    if min(values) > 0 and max(values) / min(values) > 100:
        ax.set_yscale("log")
    baseline = rows[0]["baseline"]
    if baseline is not None:
        ax.axhline(baseline, color="gray", ls="--", label="memoryless baseline")
    ax.set_xlabel(x_key)
    ax.set_ylabel(f"best val {rows[0]['metric']}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(root: str | Path) -> str:
    """Write results.md, results.csv, aggregate.csv/json (and results.png when keys were swept) into ``root``;
    return the table, with the unfinished runs listed under it."""
    root = Path(root)
    keys, rows = collect(root)
    table = aggregate(keys, rows)
    text = markdown(table, keys)
    failed = unfinished(root)
    if failed:
        text += f"\nnot in the table ({len(failed)} runs without a summary):\n" + "".join(f"- {f}\n" for f in failed)
    (root / "results.md").write_text(text)
    (root / "aggregate.json").write_text(json.dumps({"rows": table, "unfinished": failed}, indent=2) + "\n")
    for name, records in (("results.csv", rows), ("aggregate.csv", [_flat_row(r) for r in table])):
        with open(root / name, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
    if keys:
        plot(keys, rows, root / "results.png")
    return text
