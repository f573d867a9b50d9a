"""Fuzzing the command line with bad input: every field of every options dataclass, every subcommand.

Hypothesis draws invalid values for each field from its declaration (:func:`seqjax.errors.checked`:
below or above its :class:`~seqjax.errors.Range`, outside its choices) and its type (a wrong type,
nan/inf, a malformed list), puts them on the command line or into the experiment file, and adds
unknown keys, malformed overrides and bad arguments to ``train``, ``eval``, ``sweep``, ``report`` and
``bench``.  Each input runs in process through :func:`seqjax.cli.main` and must end in exit 2, at most
three lines of stderr and no traceback.  Nothing trains: the trainer is replaced by a tripwire, so a
generated input that loads is a strategy bug, reported as such.  A few real subprocesses check the exit
code and the interpreter's shutdown.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import os
import subprocess
import sys
import typing
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqjax.cli import main
from seqjax.experiment.config import (
    ExperimentConfig,
    OptimConfig,
    TrainConfig,
    load_config,
    to_yaml,
)
from seqjax.experiment.workloads import WORKLOADS, get_workload
from seqjax.models.registry import BACKBONES
from seqjax.tasks.registry import TASKS, get_task
from test_file_datasets import _write_mnist

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs/experiments/smoke_adding.yaml"
SEQ2SEQ_TASKS = ("reverse", "sort", "addition", "translate")
TINY_TRAIN = "train: {steps: 2, batch_size: 2, log_every: 1, eval_every: 1, checkpoint_every: 1, eval_examples: 2, " \
             "test_examples: 2, eval_batch_size: 2, progress: false}\n"
FUZZ = settings(max_examples=int(os.environ.get("SEQJAX_FUZZ_EXAMPLES", "150")), deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


# ------------------------------------------------------------------ the fields and their base experiments


def _experiment(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text + TINY_TRAIN)
    return path


def _bases(folder: Path) -> dict[str, tuple[Path, type, str]]:
    """``{label: (experiment file, schema dataclass, section)}``: one experiment per backbone and task."""
    part = lambda kind, name: ROOT / "configs" / kind / f"{name}.yaml"
    supervised = f"defaults: {{task: {part('tasks', 'adding')}, optim: {part('optim', 'adam')}}}\n"
    bases = {section: (SMOKE, schema, section) for section, schema in
             (("", ExperimentConfig), ("optim", OptimConfig), ("train", TrainConfig))}
    for name in BACKBONES.names():
        path = _experiment(folder, f"model_{name}", f"{supervised}model: {{name: {name}}}\ntask: {{seq_len: 10}}\n")
        bases[f"model:{name}"] = (path, get_workload("supervised").model_schema(name), "model")
    seq2seq = (f"workload: seq2seq\ndefaults: {{{{model: {part('models', 'seq2seq')}, optim: {part('optim', 'adam')}, "
               "task: {task}}}\n")
    bases["model:seq2seq"] = (_experiment(folder, "model_seq2seq", seq2seq.format(task=part("tasks", "reverse"))),
                              get_workload("seq2seq").model_schema("seq2seq"), "model")
    _write_mnist(folder / "mnist", 5004, 7, gz=False)  # a file-backed task's base must load (`resolved`)
    for name in TASKS.names():
        where = f", path: {folder / 'mnist'}" if name == "mnist" else ""
        text = (seq2seq.format(task=part("tasks", name)) if name in SEQ2SEQ_TASKS else
                f"defaults: {{model: {part('models', 'lstm')}, optim: {part('optim', 'adam')}}}\n"
                f"model: {{hidden_size: 4}}\ntask: {{name: {name}{where}}}\n")
        bases[f"task:{name}"] = (_experiment(folder, f"task_{name}", text), get_task(name).options, "task")
    return bases


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, tuple[Path, type, str]]:
    return _bases(tmp_path_factory.mktemp("fuzz_bases"))


@pytest.fixture(scope="module")
def resolved(bases):
    """``label -> the resolved config.yaml`` of its base experiment (each base loads: a sanity check)."""
    return functools.cache(lambda label: to_yaml(load_config(bases[label][0])))


def _fields(bases) -> list[tuple[str, dataclasses.Field, typing.Any]]:
    """Every field of every schema, with its type hint (sections of the top level left to their own base)."""
    out = []
    for label, (_, schema, _) in bases.items():
        hints = typing.get_type_hints(schema)
        for field in dataclasses.fields(schema):
            if field.name not in ("model", "task", "optim", "train"):
                out.append((label, field, hints[field.name]))
    return out


# ------------------------------------------------------------------ bad values, by type and declaration

WRONG_TYPE = {
    bool: ["2", "-1", "1.5", "abc", "[true]", "{a: 1}"],
    int: ["1.5", "abc", "true", "[1]", "{a: 1}", "nan", "''"],
    float: ["abc", "true", "[1.0]", "{a: 1}", "nan", "inf", "-inf", "1e400", "-1e400"],
    str: ["[a]", "{a: 1}", "[8,", "{"],
}
RESERVED = {"null", "none", "true", "false", "yes", "no", "on", "off", "nan", "inf", "y", "n"}


def _names(label: str, field: dataclasses.Field) -> tuple[str, ...] | None:
    """The allowed values of a ``name`` / ``workload`` field (a registry), else the field's declared choices."""
    if field.name == "workload":
        return tuple(WORKLOADS.names())
    if field.name == "name" and label.startswith(("model", "task")):
        return tuple(BACKBONES.names() if label.startswith("model") else TASKS.names()) + ("seq2seq",)
    return field.metadata.get("choices")


def _number_text(x: float, integer: bool) -> str:
    return str(int(x)) if integer and float(x).is_integer() else repr(float(x))


def _outside(within, integer: bool) -> st.SearchStrategy[str]:
    """Numbers outside a Range: below ``lo`` (``lo`` itself when open), above ``hi``, odd where even."""
    options = []
    step = st.integers(1, 10**6) if integer else st.floats(1e-6, 1e6)
    if within.lo is not None:
        options.append(step.map(lambda d: within.lo - d))
        if within.lo_open:
            options.append(st.just(within.lo))
    if within.hi is not None:
        options.append(step.map(lambda d: within.hi + d))
        if within.hi_open:
            options.append(st.just(within.hi))
    if within.even:
        options.append(st.integers(1, 500).map(lambda k: 2 * k + 1))
    return st.one_of(options).map(lambda x: _number_text(x, integer)) if options else st.nothing()


def bad_values(label: str, field: dataclasses.Field, hint: typing.Any) -> st.SearchStrategy[str]:
    """Override texts that the field must refuse."""
    if typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    within = field.metadata.get("within")
    if typing.get_origin(hint) is list:
        element = typing.get_args(hint)[0]
        bad = ["[]", "[1.5]", "[a]", "5", "[8,", "{a: 1}"]
        if within is not None:
            bad.append(f"[{_number_text(within.lo - 1, True)}]" if within.lo is not None else "[]")
        return st.sampled_from(bad) if element is int else st.sampled_from(["5", "[8,"])
    if hint not in WRONG_TYPE:
        return st.nothing()
    strategies = [st.sampled_from(WRONG_TYPE[hint])]
    if within is not None and hint in (int, float):
        strategies.append(_outside(within, hint is int))
    allowed = _names(label, field)
    if hint is str and allowed is not None:
        words = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
        strategies.append(words.filter(lambda w: w not in allowed and w not in RESERVED and not w.startswith("_")))
    return st.one_of(strategies)


@st.composite
def bad_field(draw, fields) -> tuple[str, str, str]:
    """``(label, key, value text)`` for one field and one value it must refuse."""
    label, field, hint = draw(st.sampled_from(fields).filter(lambda f: bad_values(*f) is not st.nothing()))
    section = label.split(":")[0]
    key = f"{section}.{field.name}" if section else field.name
    return label, key, draw(bad_values(label, field, hint))


# ------------------------------------------------------------------ running the CLI in process


class Tripwire(Exception):
    """Raised instead of training: the strategy produced an input that is valid."""


def run_cli(argv: list[str]) -> tuple[int, list[str]]:
    """``main(argv)`` with stderr captured and the trainer replaced by a :class:`Tripwire`."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), \
            mock.patch("seqjax.experiment.loop.Trainer", side_effect=Tripwire(argv)):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse
            code = e.code
    return code, err.getvalue().strip().splitlines()


def assert_clean(argv: list[str], code: int, err: list[str]) -> None:
    text = "\n".join(err)
    assert code == 2, (argv, code, text)
    assert 1 <= len(err) <= 3 and "Traceback" not in text, (argv, text)
    assert err[-1].startswith("error: "), (argv, text)


def _in_run_dir(folder: Path, resolved: str, key: str, value: str) -> Path:
    """A run directory whose ``config.yaml`` is ``resolved`` with ``key`` set to the text ``value``."""
    *section, leaf = key.split(".")
    lines, inside = resolved.splitlines(), not section
    for i, line in enumerate(lines):
        if section and line == f"{section[0]}:":
            inside = True
        elif inside and line.startswith(f"{'  ' * len(section)}{leaf}:"):
            lines[i] = f"{'  ' * len(section)}{leaf}: {value}"
            break
    else:
        raise AssertionError(f"{key} not in the resolved config")
    folder.mkdir()
    (folder / "config.yaml").write_text("\n".join(lines) + "\n")
    return folder


@FUZZ
@given(data=st.data())
def test_every_field_refuses_bad_values(bases, resolved, tmp_path_factory, data):
    """A bad value for any field, on the command line or in a run directory's config.yaml, is one line, exit 2."""
    label, key, value = data.draw(bad_field(_fields(bases)))
    if key != "run_dir" and data.draw(st.booleans(), label="in a file"):  # a run directory sets its own run_dir
        run_dir = _in_run_dir(tmp_path_factory.mktemp("fuzz") / "run", resolved(label), key, value)
        argv = ["train", str(run_dir)]
    else:
        argv = ["train", str(bases[label][0]), f"{key}={value}"]
    assert_clean(argv, *run_cli(argv))


KEYWORD = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10)
MALFORMED_VALUES = ("[8,", "{", "[1, [2]", "${nothere}", "${", "{a: [}", "'unclosed")


@st.composite
def bad_override(draw, bases) -> list[str]:
    """An unknown key in any section, a malformed value, or an override that is not ``KEY=VALUE``."""
    label = draw(st.sampled_from(sorted(bases)))
    experiment, schema, section = bases[label]
    known = {f.name for f in dataclasses.fields(schema)} | {"model", "task", "optim", "train", "defaults"}
    kind = draw(st.sampled_from(["unknown key", "malformed value", "not KEY=VALUE"]))
    if kind == "unknown key":
        key = draw(KEYWORD.filter(lambda k: k not in known))
        override = f"{section + '.' if section else ''}{key}={draw(st.sampled_from(['1', 'x', '[1]']))}"
    elif kind == "malformed value":
        field = draw(st.sampled_from([f.name for f in dataclasses.fields(schema)
                                      if f.name not in ("model", "task", "optim", "train")]))
        override = f"{section + '.' if section else ''}{field}={draw(st.sampled_from(MALFORMED_VALUES))}"
    else:
        override = draw(st.sampled_from(["hidden_size", "=5", "=", "model.hidden_size", ".=1"]))
    return ["train", str(experiment), override]


@FUZZ
@given(data=st.data())
def test_unknown_keys_and_malformed_overrides(bases, data):
    argv = data.draw(bad_override(bases))
    assert_clean(argv, *run_cli(argv))


BAD_SWEEP_FILES = {
    "a list": "- a\n- b\n",
    "bad YAML": "experiment: [unclosed\n",
    "grid as a list": f"experiment: {SMOKE}\ngrid: [1, 2]\n",
    "grid values not a list": f"experiment: {SMOKE}\ngrid:\n  optim.lr: 3\n",
    "empty grid values": f"experiment: {SMOKE}\ngrid:\n  optim.lr: []\n",
    "no experiment": "grid:\n  optim.lr: [1.0e-3]\n",
    "experiment a number": "experiment: 5\n",
    "experiment a mapping": "experiment: {a: 1}\n",
    "missing experiment file": "experiment: no_such.yaml\n",
    "seeds not integers": f"experiment: {SMOKE}\nseeds: [a]\n",
    "no seeds": f"experiment: {SMOKE}\nseeds: []\n",
    "unknown key": f"experiment: {SMOKE}\ngird: {{}}\n",
    "a bad trial": f"experiment: {SMOKE}\ngrid:\n  optim.lr: [1.0e-3, -1]\n",
    "an unknown grid key": f"experiment: {SMOKE}\ngrid:\n  model.hiden_size: [4]\n",
    "an empty file": "",
}


@pytest.fixture(scope="module")
def cli_cases(tmp_path_factory, bases) -> list[list[str]]:
    """Bad argument lists for every subcommand (and none), with the files they need."""
    folder = tmp_path_factory.mktemp("fuzz_cli")
    sweeps = []
    for i, text in enumerate(BAD_SWEEP_FILES.values()):
        (folder / f"sweep{i}.yaml").write_text(text)
        sweeps.append(str(folder / f"sweep{i}.yaml"))
    run = folder / "run"
    run.mkdir()
    (run / "config.yaml").write_text(to_yaml(load_config(SMOKE, [f"run_dir={run}"])))
    (folder / "empty").mkdir()
    (folder / "file.txt").write_text("not a run\n")
    runs = folder / "runs"
    (runs / "r").mkdir(parents=True)
    (runs / "r" / "summary.json").write_text("{not json")
    (runs / "r" / "config.yaml").write_text("name: r\n")
    good_sweep = folder / "good.yaml"
    good_sweep.write_text(f"experiment: {SMOKE}\ngrid:\n  optim.lr: [1.0e-3]\n")
    cases = [
        *(["sweep", path] for path in sweeps),
        ["sweep", str(folder / "no_such_sweep.yaml")],
        ["sweep", str(good_sweep), "noequals"], ["sweep", str(good_sweep), "optim.lr=1"],
        ["sweep", str(good_sweep), "seed=3"], ["sweep", str(good_sweep), "optim.b1=2"],
        ["sweep", str(good_sweep), "--jobs", "x"], ["sweep"],
        ["eval", str(folder / "no_such_run")], ["eval", str(folder / "empty")], ["eval", str(folder / "file.txt")],
        ["eval", str(run), "model.hidden_size=4"], ["eval", str(run), "task.seq_len=-1"],
        ["eval", str(run), "task.seq_len=abc"], ["eval", str(run), "task.variant=x"],
        ["eval", str(run), "--split", "train"], ["eval", str(run), "--step", "abc"], ["eval"],
        ["report", str(folder / "no_such_dir")], ["report", str(folder / "file.txt")],
        ["report", str(folder / "empty")], ["report", str(runs)], ["report"],
        ["bench", "foo"], ["bench", "--device", "tpu"], ["bench", "--repeats", "0"], ["bench", "--repeats", "-3"],
        ["bench", "--repeats", "abc"], ["bench", "--bogus"],
        ["train"], ["train", str(folder / "no_such.yaml")], ["train", str(folder / "empty")],
        ["train", str(folder / "file.txt")], ["train", str(run), "model=gru"],
        ["nosuch"], ["--bogus"],
    ]
    return cases


@FUZZ
@given(data=st.data())
def test_every_subcommand_refuses_bad_arguments(cli_cases, data):
    argv = data.draw(st.sampled_from(cli_cases))
    assert_clean(argv, *run_cli(argv))


@pytest.mark.parametrize("overrides", [
    ["model.hidden_size=1000000000"], ["model.hidden_size=10000000000000"], ["model.hidden_sizes=[4,1000000000000]"],
    ["task=copy", "task.seq_len=10", "model.embed_dim=100000000000"], ["train.batch_size=2000000000"],
    ["train.eval_examples=2000000000"], ["task.seq_len=1000000000"],
])
def test_absurd_sizes_are_refused_up_front(overrides, tmp_path):
    """The memory estimate (seqjax.experiment.memory) refuses them in one line; no allocation, no abort."""
    argv = ["train", str(SMOKE), *overrides, f"run_dir={tmp_path / 'run'}"]
    code, err = run_cli(argv)
    assert_clean(argv, code, err)
    assert "GiB" in err[-1] or "too large" in err[-1], err


@pytest.mark.parametrize("argv", [
    ["train", str(SMOKE), "optim.b1=1.5"],
    ["bench", "foo"],
    ["sweep", "-"],
])
def test_real_process_exits_2_in_one_line(argv, tmp_path):
    """``python -m seqjax.cli``: the exit code and a clean interpreter shutdown (no trailing traceback)."""
    if argv == ["sweep", "-"]:
        (tmp_path / "s.yaml").write_text("- a\n")
        argv = ["sweep", str(tmp_path / "s.yaml")]
    proc = subprocess.run([sys.executable, "-m", "seqjax.cli", *argv, *(
        [f"run_dir={tmp_path / 'run'}"] if argv[0] == "train" else [])],
        check=False, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr


def test_every_bad_argument_list_once(cli_cases):
    """Each hand-made case of :func:`cli_cases` at least once (hypothesis samples them above)."""
    for argv in cli_cases:
        assert_clean(argv, *run_cli(argv))


def test_eval_error_after_opening_checkpoints_shuts_down_cleanly(tmp_path):
    """``seqjax eval RUN --step N`` with no checkpoint N: one line, exit 2, and no orbax traceback at exit."""
    run = tmp_path / "run"
    trained = subprocess.run([sys.executable, "-m", "seqjax.cli", "train", str(SMOKE), f"run_dir={run}",
                              "train.steps=2", "train.eval_every=1", "train.checkpoint_every=1", "train.log_every=1"],
                             check=False, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert trained.returncode == 0, trained.stderr
    for _ in range(3):  # the shutdown race showed up only sometimes
        proc = subprocess.run([sys.executable, "-m", "seqjax.cli", "eval", str(run), "--step", "7"],
                              check=False, capture_output=True, text=True, cwd=ROOT, timeout=300)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert "unknown checkpoint step 7: choose one of" in lines[0], proc.stderr
