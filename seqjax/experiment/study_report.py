"""What ``seqjax report`` adds for a search folder (an Optuna study, :mod:`~seqjax.experiment.optuna_search`).

Beside the results table: ``optimization_history.png``, ``param_importances.png`` and
``parallel_coordinate.png`` (``optuna.visualization.matplotlib``), and ``best.yaml``, the best trial's
config as an experiment file: ``seqjax train <out>/best.yaml`` trains it again in ``<out>/best``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from omegaconf import OmegaConf

from seqjax.experiment.config import RUN_CONFIG
from seqjax.experiment.report import SWEEP_RECORD
from seqjax.experiment.study_storage import open_storage, storage_url

BEST = "best.yaml"
PLOTS = ("optimization_history", "param_importances", "parallel_coordinate")


def study_report(root: str | Path) -> str:
    """Write the study's plots and ``best.yaml`` into ``root``; return its summary ("" for a grid sweep)."""
    root = Path(root)
    record = OmegaConf.load(root / SWEEP_RECORD) if (root / SWEEP_RECORD).exists() else None
    if record is None or not record.get("search"):
        return ""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(record.search.get("storage") or storage_url(None, root))
    study = optuna.load_study(study_name=record.search.study_name, storage=storage)
    counts = {state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,)))
              for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)}
    lines = [f"study {study.study_name}: {len(study.trials)} trials ("
             + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + ")"]
    if not counts["complete"]:
        return lines[0] + "; no complete trial yet\n"
    best = study.best_trial
    objective = record.search.get("objective", "val.loss")
    lines.append(f"best: trial {best.number} {objective}={best.value:.4g} "
                 + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.params.items()))
    cfg = OmegaConf.load(Path(best.user_attrs["run_dir"]) / RUN_CONFIG)
    cfg.run_dir = str(root / "best")
    (root / BEST).write_text(f"# The best trial ({best.number}) of the search {study.study_name}: "
                             f"{objective}={best.value:.4g}.\n# Run: seqjax train {root / BEST}\n"
                             + OmegaConf.to_yaml(cfg))
    lines.append(f"wrote {root / BEST} (seqjax train {root / BEST})")
    lines += [_plot(study, plot, root) for plot in PLOTS]
    return "\n".join(lines) + "\n"


def _plot(study: object, plot: str, root: Path) -> str:
    """One of Optuna's matplotlib plots as ``<plot>.png``, or why it cannot be drawn yet."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vis

    path = root / f"{plot}.png"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the matplotlib backend is "experimental"
        try:
            ax = getattr(vis, f"plot_{plot}")(study)
        except (ValueError, RuntimeError) as e:  # e.g. importances need two complete trials
            return f"{plot}: not drawn ({str(e).splitlines()[0][:120]})"
    fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return f"wrote {path}"
