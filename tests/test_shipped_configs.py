"""Every shipped experiment config trains with gradients, evaluates and resumes, at a tiny size; every
shipped sweep file validates every trial (a dry run).

The configs are discovered by globbing ``configs/experiments/*.yaml``, so a new config is covered the
moment it is added.  Each is shrunk by overrides derived from its own resolved config (widths, depths,
lengths, steps), so each takes seconds; everything else (model family, task, optimizer, workload,
attention, bidirectionality...) is what the file ships.
"""

import json
import math
from pathlib import Path

import pytest

from seqjax import cli
from seqjax.experiment.config import load_config
from seqjax.experiment.schema import options_of
from seqjax.experiment.workloads.windows import stream_length
from seqjax.tasks import get_task, make_task

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs" / "experiments").glob("*.yaml"))

# key -> the value a tiny instance uses (never larger than what the config ships). One layer and greedy
# decoding: compilation, which grows with depth and beam search, is what these runs cost (stacks and beam
# search have their own tests).
TINY_MODEL = {"hidden_size": 8, "d_model": 8, "embed_size": 8, "embed_dim": 8, "encoder_hidden_size": 8,
              "decoder_hidden_size": 8, "attention_size": 8, "channels": 8, "state_size": 4, "d_state": 4,
              "num_layers": 1, "n_layers": 1, "encoder_layers": 1, "levels": 1, "beam_width": 1,
              "blocks": 1}  # S5's HiPPO-N blocks: state_size must hold a conjugate pair per block
TINY_TASK = {"seq_len": 24, "max_len": 6, "min_len": 3, "max_digits": 2, "max_clauses": 1}
TINY_TRAIN = ["train.steps=4", "train.batch_size=4", "train.eval_every=2", "train.checkpoint_every=2",
              "train.log_every=1", "train.eval_examples=8", "train.test_examples=8", "train.eval_batch_size=8",
              "train.progress=false"]


def tiny_overrides(path: Path) -> list[str]:
    """Dotted overrides that shrink the experiment at ``path`` to a few seconds of CPU."""
    cfg = load_config(path)
    out = list(TINY_TRAIN)
    for section, tiny in (("model", TINY_MODEL), ("task", TINY_TASK)):
        for key, small in tiny.items():
            value = cfg[section].get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > small:
                out.append(f"{section}.{key}={small}")
    if cfg.train.get("tbptt"):  # windows must tile the shrunk streams: two windows of half a stream each
        length = stream_length(make_task(cfg.task.name, options_of(load_config(path, [*out, "train.tbptt=null"]).task,
                                                                     get_task(cfg.task.name).options)).sample)
        out.append(f"train.tbptt={length // 2 if length % 2 == 0 else length}")
    return out


def _numbers(tree):
    if isinstance(tree, dict):
        for v in tree.values():
            yield from _numbers(v)
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield tree


def test_every_shipped_experiment_is_collected():
    assert len(CONFIGS) >= 21  # the 21 shipped when this guard was written; more may only be added


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_config_trains_evaluates_and_resumes(path, tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    overrides = [*tiny_overrides(path), f"run_dir={run_dir}"]
    assert cli.main(["train", str(path), *overrides]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 4
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["split"] == "train"]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4]
    assert all(r["grad_norm"] > 0 for r in train_rows), "no gradient reached the parameters"
    assert summary["param_count"] > 0

    capfd.readouterr()
    assert cli.main(["eval", str(run_dir)]) == 0
    printed = capfd.readouterr().out
    result = json.loads(printed[printed.index("{"):])  # the eval command prints its metrics as JSON
    assert result and all(math.isfinite(v) for v in _numbers(result))

    assert cli.main(["train", str(run_dir), "train.steps=6"]) == 0
    out = capfd.readouterr()
    assert "resuming" in out.out + out.err and "from step 4" in out.out + out.err
    assert "Traceback" not in out.out + out.err
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 6


SWEEPS = sorted((ROOT / "configs" / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_shipped_sweep_validates_every_trial(path, tmp_path, capsys):
    """Every shipped sweep file composes and checks each of its trials (or its search) without training."""
    assert cli.main(["sweep", str(path), "--dry-run", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "error" not in out.lower() and out.strip()
