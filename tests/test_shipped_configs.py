"""Every shipped experiment config trains with gradients, evaluates and resumes, at a tiny size; every
shipped sweep file validates every trial (a dry run).

The configs are discovered by globbing ``configs/experiments/*.yaml``, so a new config is covered the
moment it is added.  Each is shrunk by overrides derived from its own resolved config (``--tiny``: widths,
depths, lengths, steps), so each takes seconds; everything else (model family, task, optimizer, workload,
attention, bidirectionality...) is what the file ships.

A 6-step run is stopped after step 4 (as a preempted job stops), evaluated, and resumed to step 6 by
``seqjax train RUN_DIR``: the resumed run has the first one's config, so its train step is the program the
first one compiled, loaded from the suite's compilation cache (a resume with a longer ``train.steps`` would
change the learning-rate schedule baked into it and compile it again).
"""

import json
import math
from pathlib import Path

import pytest

from seqjax import cli
from seqjax.experiment.config import load_config
from seqjax.experiment.loop import Trainer
from seqjax.experiment.tiny import tiny_overrides

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs" / "experiments").glob("*.yaml"))


def _numbers(tree):
    if isinstance(tree, dict):
        for v in tree.values():
            yield from _numbers(v)
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield tree


class Preempted(Exception):
    """Raised from ``on_eval`` to stop a run after a step, its checkpoint written."""


def _stop_after(step: int):
    def on_eval(s: int, val: dict) -> None:
        if s == step:
            raise Preempted

    return on_eval


def test_every_shipped_experiment_is_collected():
    assert len(CONFIGS) >= 21  # the 21 shipped when this guard was written; more may only be added


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_config_trains_evaluates_and_resumes(path, tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    cfg = load_config(path, [*tiny_overrides(path), f"run_dir={run_dir}"])  # 6 steps
    with pytest.raises(Preempted):
        Trainer(cfg).run(on_eval=_stop_after(4))
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["split"] == "train"]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4]
    assert all(r["grad_norm"] > 0 for r in train_rows), "no gradient reached the parameters"

    capfd.readouterr()
    assert cli.main(["eval", str(run_dir)]) == 0
    printed = capfd.readouterr().out
    result = json.loads(printed[printed.index("{"):])  # the eval command prints its metrics as JSON
    assert result and all(math.isfinite(v) for v in _numbers(result))

    assert cli.main(["train", str(run_dir)]) == 0
    out = capfd.readouterr()
    assert "resuming" in out.out + out.err and "from step 4" in out.out + out.err
    assert "Traceback" not in out.out + out.err
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == [1, 2, 3, 4, 5, 6]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["param_count"] > 0


SWEEPS = sorted((ROOT / "configs" / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_shipped_sweep_validates_every_trial(path, tmp_path, capsys):
    """Every shipped sweep file composes and checks each of its trials (or its search) without training."""
    assert cli.main(["sweep", str(path), "--dry-run", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "error" not in out.lower() and out.strip()
