"""Config composition, overrides and validation (seqjax.experiment.config)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from seqjax.experiment.config import load_config, to_yaml
from seqjax.errors import UserError
from seqjax.models.recurrent import RecurrentOptions

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs/experiments/adding_lstm.yaml"


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_composition_matches_the_part_files_then_the_experiment():
    cfg = load_config(QUICKSTART)
    exp, model, optim = (_yaml(QUICKSTART), _yaml(ROOT / "configs/models/lstm.yaml"),
                         _yaml(ROOT / "configs/optim/adam.yaml"))
    assert cfg.model.hidden_size == exp["model"]["hidden_size"] != model["hidden_size"]  # experiment wins
    assert cfg.model.forget_bias == model["forget_bias"]  # from the part
    assert cfg.model.num_layers == model["num_layers"]
    assert cfg.model.unroll == RecurrentOptions().unroll  # schema default
    assert cfg.optim.lr == exp["optim"]["lr"] and cfg.optim.clip_norm == optim["clip_norm"]
    assert cfg.task.name == "adding" and cfg.task.seq_len == exp["task"]["seq_len"]
    assert cfg.train.steps == exp["train"]["steps"]
    assert cfg.name == "adding_lstm" and cfg.run_dir == str(Path("runs/adding_lstm"))
    assert "defaults" not in cfg


def test_command_line_overrides_win_and_are_typed():
    cfg = load_config(QUICKSTART, ["model.hidden_size=256", "optim.lr=3e-3", "model.hidden_sizes=[4,5]"])
    assert cfg.model.hidden_size == 256 and isinstance(cfg.model.hidden_size, int)
    assert cfg.optim.lr == pytest.approx(3e-3) and isinstance(cfg.optim.lr, float)
    assert list(cfg.model.hidden_sizes) == [4, 5]


def test_resolved_config_round_trips_through_a_run_directory(tmp_path):
    cfg = load_config(QUICKSTART, ["model.hidden_size=7", f"run_dir={tmp_path}"])
    (tmp_path / "config.yaml").write_text(to_yaml(cfg))
    again = load_config(tmp_path)
    assert OmegaConf.to_container(again) == OmegaConf.to_container(cfg)
    moved = tmp_path.parent / f"{tmp_path.name}_moved"
    tmp_path.rename(moved)
    assert load_config(moved).run_dir == str(moved)  # a moved run directory still resumes in place


def test_switching_model_family_validates_against_the_new_schema():
    cfg = load_config(QUICKSTART, ["model.name=gru", "model.variant=cho"])
    assert cfg.model.name == "gru" and cfg.model.variant == "cho"


@pytest.mark.parametrize(
    "overrides, fragments",
    [
        (["model.hiden_size=3"], ["command line", "model.hiden_size", "did you mean 'hidden_size'", "forget_bias"]),
        (["optim.lrr=1"], ["optim.lrr", "did you mean 'lr'"]),
        (["trian.steps=3"], ["'trian'", "did you mean 'train'"]),
        (["model.hidden_size=abc"], ["model.hidden_size", "abc", "Integer"]),
        (["train.steps=1.5"], ["train.steps", "Integer"]),
        (["model.name=lsmt"], ["model.name", "'lsmt'", "choose one of", "gru", "did you mean 'lstm'"]),
        (["task.name=adding_problem"], ["task.name", "copy", "did you mean 'adding'"]),
        (["optim.name=adamx"], ["unknown optim.name 'adamx'", "'adam', 'adamw', 'rmsprop', 'sgd'"]),
        (["train.on_nan=ignore"], ["unknown train.on_nan 'ignore'", "'stop', 'skip'"]),
        (["train.steps=0"], ["train.steps", "positive"]),
        (["train.checkpoint_every=15"], ["checkpoint_every", "multiple", "eval_every"]),
        (["hidden_size"], ["'hidden_size'", "KEY=VALUE"]),
        (["task=mqar", "task.seq_len=32", "task.values_in_queries=true", "model.bidirectional=true"], ["not causal", "'mqar'", "model.bidirectional=false"]),
    ],
)
def test_bad_input_is_one_line_naming_the_key_and_the_fix(overrides, fragments):
    with pytest.raises(UserError) as info:
        load_config(QUICKSTART, overrides)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_errors_name_the_file_that_holds_the_bad_key(tmp_path):
    (tmp_path / "experiments").mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "models/mine.yaml").write_text("name: lstm\nhidden_szie: 3\n")
    exp = tmp_path / "experiments/e.yaml"
    exp.write_text("defaults:\n  model: mine\n  task: ../../tasks/adding.yaml\n")
    with pytest.raises(UserError, match="task.yaml|not found"):
        load_config(exp)
    exp.write_text(f"defaults:\n  model: mine\n  task: {ROOT}/configs/tasks/adding.yaml\n")
    with pytest.raises(UserError) as info:
        load_config(exp)
    assert str(tmp_path / "models/mine.yaml") in str(info.value) and "did you mean 'hidden_size'" in str(info.value)
    exp.write_text("defaults:\n  model: mien\n")
    with pytest.raises(UserError, match=r"mien.yaml not found: unknown defaults.model 'mien': choose one of 'mine' \(did you mean 'mine'\?\)"):
        load_config(exp)
    exp.write_text("defaults:\n  modle: lstm\n")
    with pytest.raises(UserError, match=r"'defaults.modle' \(did you mean 'model'\?\)"):
        load_config(exp)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(UserError, match="without config.yaml"):
        load_config(tmp_path)


def test_swapping_a_part_from_the_command_line():
    gru_part = _yaml(ROOT / "configs/models/gru.yaml")
    cfg = load_config(QUICKSTART, ["model=gru", "optim=sgd"])
    assert cfg.model.name == "gru" and cfg.model.variant == gru_part["variant"]
    assert cfg.model.hidden_size == _yaml(QUICKSTART)["model"]["hidden_size"]  # the experiment still overrides
    assert cfg.optim.name == "sgd" and cfg.optim.lr == _yaml(QUICKSTART)["optim"]["lr"]
    with pytest.raises(UserError, match=r"lstm.yaml: unknown key 'model.\w+' for model 's4d' "
                                        r"\(named in command line; .*model=s4d"):
        load_config(QUICKSTART, ["model.name=s4d"])
