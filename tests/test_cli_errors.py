"""Every kind of bad input at the CLI: exit code 2 and one line on stderr naming the problem and the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from seqjax.cli import main
from seqjax.experiment.config import load_config, to_yaml

ROOT = Path(__file__).resolve().parents[1]
EXP = str(ROOT / "configs/experiments/smoke_adding.yaml")


def _run(capsys, argv: list[str]) -> tuple[int, list[str]]:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (["train", EXP, "model.hiden_size=3"], ["unknown key 'model.hiden_size'", "did you mean 'hidden_size'",
                                               "allowed keys in model"]),
        (["train", EXP, "train.batch_size=big"], ["train.batch_size", "'big'", "Integer"]),
        (["train", EXP, "model.name=lstn"], ["unknown model 'lstn'", "choose one of", "did you mean 'lstm'"]),
        (["train", EXP, "task.name=adder"], ["unknown task 'adder'", "choose one of", "copy"]),
        (["train", "configs/experiments/no_such.yaml"], ["no_such.yaml", "not found"]),
        (["train", EXP, "task.variant=xyz"], ["variant 'xyz'", "'tcn', 'urnn'"]),
        (["train", EXP, "task=mqar", "task.seq_len=32", "task.values_in_queries=true", "model.bidirectional=true"], ["not causal", "answers among the later inputs"]),
        (["train", EXP, "optim.schedule=linear"], ["unknown optim.schedule 'linear'", "'constant', 'warmup_cosine'"]),
        (["train", EXP, "optim.weight_decay=0.1"], ["weight_decay", "adamw"]),
        (["train", EXP, "train.best_metric=acc"], ["train.best_metric='acc'", "choose one of loss, mse, solved"]),
        (["eval", "/nonexistent/run"], ["/nonexistent/run", "not found"]),
        (["train", EXP, "model.bptt=manual"], ["unknown model.bptt 'manual'", "'fused', 'autodiff'"]),
        (["train", EXP, "model.recurrent_init=xavier"], ["unknown model.recurrent_init 'xavier'", "'orthogonal'"]),
        (["train", EXP, "model.merge=max"], ["unknown model.merge 'max'", "'concat', 'sum', 'mean'"]),
        (["train", EXP, "model.dropout=1.5"], ["dropout=1.5", "[0, 1)"]),
        (["train", str(ROOT / "configs"), "--tiny"], ["--tiny shrinks an experiment file", "run directory"]),
        (["sweep", str(ROOT / "configs/sweeps/search_adding_lr.yaml"), "--tiny", "--out", "/tmp/never"],
         ["--tiny runs a grid sweep here", "not a search section"]),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, argv, fragments, tmp_path):
    code, err = _run(capsys, [*argv, f"run_dir={tmp_path / 'run'}"] if argv[0] == "train" else argv)
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in err[0], (fragment, err[0])


def test_a_stray_argument_exits_2_with_one_line(capsys):
    """Overrides may follow the options (``seqjax train FILE --tiny k=v``), but not a misspelt option."""
    with pytest.raises(SystemExit) as exit_:
        main(["train", EXP, "--tiny", "--tiyn", "train.steps=2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and "unrecognized arguments: --tiyn" in err[0]


def test_eval_of_a_run_without_checkpoints(capsys, tmp_path):
    (tmp_path / "config.yaml").write_text(to_yaml(load_config(EXP, [f"run_dir={tmp_path}"])))
    code, err = _run(capsys, ["eval", str(tmp_path)])
    assert code == 2 and len(err) == 1 and "has no checkpoints" in err[0] and "seqjax train" in err[0]


def test_experiment_without_a_model(capsys, tmp_path):
    exp = tmp_path / "e.yaml"
    exp.write_text("task:\n  name: adding\n")
    code, err = _run(capsys, ["train", str(exp)])
    assert code == 2 and len(err) == 1 and f"{exp}: model.name is not set" in err[0]


def test_real_executable_prints_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "seqjax.cli", "train", EXP, "optim.lrr=1", f"run_dir={tmp_path}"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: command line: unknown key 'optim.lrr' (did you mean 'lr'?); allowed keys in optim: "
        "b1, b2, clip_norm, decay, eps, final_lr_fraction, lr, momentum, name, nesterov, schedule, ssm_lr, "
        "warmup_steps, weight_decay"
    ]
