"""Every documented command runs: each ```bash block of README.md and experiments/*/README.md.

The blocks are parsed from the files, so a new one is covered the moment it is written.  The blocks of one
section of a README (the text under one ``#``/``##`` heading) run in order in one scratch directory
(``configs`` and ``experiments`` linked into it), so a block can use what an earlier one of its section made
(``seqjax eval runs/adding_lstm`` after ``seqjax train``); sections are independent, so the suite's workers
share them.  Each command runs at a tiny size:

* ``seqjax train FILE ...`` of an experiment file: ``--tiny`` (:mod:`seqjax.experiment.tiny`: ``train.*``, and
  the model's widths and depths and the task's lengths), under which the documented overrides still win; the
  same size as the shipped-config test, so most of their programs are loaded from the compilation cache, not
  compiled again; ``seqjax sweep FILE ...`` of a grid run here: ``--tiny`` likewise, for every trial;
* ``seqjax train RUN_DIR`` and the other sweeps (a search, ``--launcher slurm``): the tiny ``train.*``
  overrides inserted after the path, before the documented ones, which therefore still win;
* ``seqjax bench ...``: ``--quick``;
* ``python SCRIPT.py ...`` (a study's ``run.py``): ``--quick --out <scratch>/out/<study>``;
* ``bash experiments/.../SCRIPT.sh ...`` (a device script): ``--quick``, its ``$OUT`` ``<scratch>/out``;
* ``pip install ...``: skipped (CI installs), the rest of its ``&&`` chain runs; ``# comments`` are dropped.

A command fails the block on a non-zero exit or a ``Traceback`` in its output, and so does a change to a
committed result under ``experiments/``.  An annotation on the line right before a block's fence marks it:
``<!-- test: slow (why) -->`` (run with ``pytest -m slow``) or ``<!-- test: skip (why) -->``.
Subprocesses share the suite's JAX compilation cache (``tests/conftest.py``), which halves the cost of repeated
commands.
Under pytest-xdist, a worker given a later block first runs the earlier ones of its section it has not run
itself; ``--dist loadgroup`` keeps each section's blocks on one worker and avoids that.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from seqjax.errors import UserError
from seqjax.experiment.sweep import expand, load_sweep, run_sweep
from seqjax.experiment.tiny import TINY_TRAIN

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted(ROOT.glob("experiments/*/README.md"))]
LINKED = ("configs", "experiments", "scripts")  # reachable from the scratch directory
TIMEOUT_S = 900  # per command; a hung command fails instead of stalling the suite
FENCE = re.compile(r"^```bash\s*$")
HEADING = re.compile(r"^#{1,2} ")  # a README's title and its sections
ANNOTATION = re.compile(r"^<!--\s*test:\s*(slow|skip)\s*(?:\((.+)\))?\s*-->\s*$")


@dataclasses.dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # 1-based line of the opening fence
    text: str
    mark: str | None  # None | "slow" | "skip"
    reason: str
    section: int = 0  # 1-based line of the heading above the block (0: none)

    @property
    def id(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"

    @property
    def group(self) -> str:
        """The blocks that share a scratch directory and a worker: one section of one README."""
        return f"{self.doc.relative_to(ROOT)}:{self.section}"


def parse_blocks(doc: Path) -> list[Block]:
    """The ```bash blocks of ``doc`` with their annotations; a malformed ``<!-- test:`` line is an error."""
    lines = doc.read_text().splitlines()
    blocks, i, section = [], 0, 0
    while i < len(lines):
        if HEADING.match(lines[i]):
            section = i + 1
        elif lines[i].startswith("```"):  # any language's block is skipped whole: its '#' lines aren't headings
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
            if end is None:
                raise ValueError(f"{doc}:{i + 1}: unclosed {lines[i]} block")
            if not FENCE.match(lines[i]):
                i = end + 1
                continue
            before = lines[i - 1].strip() if i else ""
            mark, reason = None, ""
            if before.startswith("<!--") and "test:" in before:
                m = ANNOTATION.match(before)
                if m is None:
                    raise ValueError(f"{doc}:{i}: bad annotation {before!r}: write <!-- test: slow (why) --> "
                                     "or <!-- test: skip (why) -->")
                mark, reason = m.group(1), m.group(2) or ""
            blocks.append(Block(doc, i + 1, "\n".join(lines[i + 1:end]), mark, reason, section))
            i = end
        i += 1
    return blocks


def commands(text: str) -> list[list[str]]:
    """The block's commands as argv lists: lines joined at ``\\``, comments dropped, split at ``&&``,
    ``pip install`` left out."""
    out = []
    for line in text.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            cmd, words = words[:cut], words[cut + 1:]
            if cmd and cmd[:2] != ["pip", "install"] and cmd[:4] != ["python", "-m", "pip", "install"]:
                out.append(cmd)
    return out


ENV_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def small(cmd: list[str], scratch: Path) -> tuple[dict[str, str], list[str]]:
    """``cmd`` at a tiny size (see the module docstring), as (leading ``NAME=value`` settings, argv)."""
    n_env = next((i for i, w in enumerate(cmd) if not ENV_WORD.match(w)), len(cmd))
    env, cmd = dict(w.split("=", 1) for w in cmd[:n_env]), cmd[n_env:]
    if cmd[:1] == ["seqjax"] and len(cmd) >= 3 and cmd[1] in ("train", "sweep"):
        path = scratch / cmd[2]
        grid_here = cmd[1] == "sweep" and "--launcher" not in cmd and not load_sweep(path)[0].search
        tiny = ["--tiny"] if (cmd[1] == "train" and path.is_file()) or grid_here else TINY_TRAIN
        cmd = [*cmd[:3], *tiny, *cmd[3:]]
    elif cmd[:2] == ["seqjax", "bench"]:
        cmd = [*cmd, "--quick"]
    elif cmd[:1] == ["python"] and len(cmd) >= 2 and cmd[1].endswith(".py"):
        cmd = [*cmd, "--quick", "--out", str(scratch / "out" / Path(cmd[1]).parent.name)]
    elif cmd[:1] == ["bash"] and len(cmd) >= 2 and cmd[1].startswith("experiments/") and cmd[1].endswith(".sh"):
        env, cmd = {**env, "OUT": str(scratch / "out")}, [*cmd, "--quick"]
    return env, cmd


def _committed_results() -> dict[Path, int]:
    files = [p for p in (ROOT / "experiments").rglob("*")  # not under runs/ (git-ignored: a study running here)
             if p.suffix in (".md", ".json", ".csv", ".png") and p.name != "README.md" and "runs" not in p.parts]
    return {p: p.stat().st_mtime_ns for p in files}


def run_command(env: dict[str, str], argv: list[str], scratch: Path) -> str | None:
    """Run one command in ``scratch``; None if it passed, else why it failed (with its output's tail)."""
    shown = shlex.join([*(f"{k}={v}" for k, v in env.items()), *argv])
    env = {**os.environ, **env,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # this venv's seqjax
    if argv[:1] == ["python"]:
        argv = [sys.executable, *argv[1:]]
    before = _committed_results()
    try:
        proc = subprocess.run(argv, cwd=scratch, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        output = e.output.decode(errors="replace") if isinstance(e.output, bytes) else e.output or ""
        return f"`{shown}` ran past {TIMEOUT_S} s:\n{output[-4000:]}"
    except FileNotFoundError as e:
        return f"`{shown}`: {e}"
    changed = [str(p.relative_to(ROOT)) for p, t in _committed_results().items() if before.get(p) != t]
    problem = (f"exit code {proc.returncode}" if proc.returncode else
               "a Traceback in its output" if "Traceback" in proc.stdout else
               f"it rewrote committed results {changed}" if changed else None)
    return None if problem is None else f"`{shown}` failed ({problem}):\n{proc.stdout[-6000:]}"


BLOCKS = [b for doc in DOCS for b in parse_blocks(doc)]
_results: dict[str, str | None] = {}  # block id -> None (passed) or its failure, this process
_scratch: dict[str, Path] = {}  # section (Block.group) -> its scratch directory, this process


def _run_block(block: Block, tmp_path_factory) -> str | None:
    if block.id in _results:
        return _results[block.id]
    if block.group not in _scratch:
        scratch = tmp_path_factory.mktemp(re.sub(r"\W+", "_", block.group))
        for name in LINKED:
            (scratch / name).symlink_to(ROOT / name, target_is_directory=True)
        _scratch[block.group] = scratch
    scratch = _scratch[block.group]
    failure = None
    for cmd in commands(block.text):
        failure = run_command(*small(cmd, scratch), scratch)
        if failure:
            break
    _results[block.id] = failure
    return failure


def _marks(block: Block) -> list:
    marks = [pytest.mark.xdist_group(block.group)]  # one worker per section (loadgroup)
    if block.mark == "slow":
        marks.append(pytest.mark.slow)
    elif block.mark == "skip":
        marks.append(pytest.mark.skip(reason=block.reason or "annotated skip"))
    return marks


@pytest.mark.parametrize("block", [pytest.param(b, id=b.id, marks=_marks(b)) for b in BLOCKS])
def test_documented_block_runs(block: Block, tmp_path_factory):
    for earlier in BLOCKS:  # the section's earlier blocks first, in its scratch directory (once per process)
        if earlier is block:
            break
        if earlier.group == block.group and earlier.mark is None and _run_block(earlier, tmp_path_factory):
            pytest.fail(f"an earlier block of the same section, {earlier.id}, failed:\n{_results[earlier.id]}")
    failure = _run_block(block, tmp_path_factory)
    if failure:
        pytest.fail(f"{block.id}:\n{failure}")


def test_blocks_are_found_and_parsed(tmp_path):
    """The parser itself: annotations, comments, ``&&`` chains, ``pip install``, the tiny-size rewrites."""
    assert any(b.doc.name == "README.md" and b.doc.parent == ROOT for b in BLOCKS)
    assert {b.doc for b in BLOCKS} >= {ROOT / "experiments/complexity/README.md"}
    doc = tmp_path / "README.md"
    doc.write_text("# Title\n<!-- test: slow (two hours) -->\n```bash\npip install -e . && seqjax train a.yaml k=1"
                   "   # trains\n```\n## Section\n```bash\nX=1 python experiments/s/run.py --n 2 \\\n  --m 3\n```\n"
                   "```python\n# not a heading\n```\n```bash\nls\n```\n")
    slow, plain, after_python = parse_blocks(doc)
    assert (slow.line, slow.mark, slow.reason, plain.mark) == (3, "slow", "two hours", None)
    assert (slow.section, plain.section, after_python.section) == (1, 6, 6)
    assert commands(slow.text) == [["seqjax", "train", "a.yaml", "k=1"]]
    assert small(commands(slow.text)[0], tmp_path) == ({}, ["seqjax", "train", "a.yaml", *TINY_TRAIN, "k=1"])
    assert small(commands(plain.text)[0], tmp_path) == (
        {"X": "1"}, ["python", "experiments/s/run.py", "--n", "2", "--m", "3", "--quick", "--out", str(tmp_path / "out/s")])
    assert small(["bash", "experiments/b/gpu.sh"], tmp_path) == ({"OUT": str(tmp_path / "out")},
                                                                  ["bash", "experiments/b/gpu.sh", "--quick"])
    assert small(["bash", "scripts/slurm-local.sh", "start"], tmp_path) == ({}, ["bash", "scripts/slurm-local.sh", "start"])
    doc.write_text("<!-- test: slwo -->\n```bash\nls\n```\n")
    with pytest.raises(ValueError, match="bad annotation"):
        parse_blocks(doc)


def test_every_study_script_is_documented_in_a_bash_block():
    """A study's run.py that no README block runs would escape this file (and its --quick with it)."""
    documented = {c[1] for b in BLOCKS for c in commands(b.text) if c[:1] == ["python"] and len(c) > 1}
    scripts = {str(p.relative_to(ROOT)) for p in ROOT.glob("experiments/*/run.py")}
    assert scripts <= documented, f"not run by any README block: {sorted(scripts - documented)}"


# `seqjax sweep FILE KEY=VALUE ...`: the overrides that shrink a documented sweep's trials above.

EXPERIMENT = ROOT / "configs" / "experiments" / "adding_lstm.yaml"


def _sweep_file(tmp_path, **fields) -> Path:
    spec = {"experiment": str(EXPERIMENT), "out": str(tmp_path / "out"), "overrides": ["train.steps=5"],
            "grid": {"optim.lr": [0.1, 0.2]}, **fields}
    path = tmp_path / "sweep.yaml"
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(spec)))
    return path


def test_sweep_overrides_apply_to_every_trial_after_the_files(tmp_path):
    spec, experiments = load_sweep(_sweep_file(tmp_path), out=tmp_path / "elsewhere")
    assert spec.out == str(tmp_path / "elsewhere")
    trials = expand(spec, experiments, ["train.steps=2", "model.hidden_size=4"])
    assert [t.overrides[:4] for t in trials] == [
        ("train.steps=5", "train.steps=2", "model.hidden_size=4", f"optim.lr={lr}") for lr in (0.1, 0.2)]
    assert all(t.run_dir.parent == tmp_path / "elsewhere" for t in trials)


@pytest.mark.parametrize("override, match", [
    ("optim.lr=0.5", "optim.lr is swept by the grid"),
    ("seed=3", "seed is set per trial"),
    ("run_dir=x", "run_dir is set per trial"),
    ("train.steps", "is not KEY=VALUE"),
    ("model.hiden_size=4", "trial .*unknown key 'model.hiden_size'.*did you mean 'hidden_size'"),
], ids=["grid key", "seed", "run_dir", "not KEY=VALUE", "unknown key"])
def test_bad_sweep_overrides_fail_before_any_work(tmp_path, override, match):
    with pytest.raises(UserError, match=match):
        run_sweep(_sweep_file(tmp_path), overrides=[override], quiet=True)
    assert not list((tmp_path / "out").glob("*/config.yaml"))


def test_sweep_command_line_overrides_and_out(tmp_path, capsys):
    from seqjax.cli import build_parser

    args = build_parser().parse_args(["sweep", str(_sweep_file(tmp_path)), "train.steps=2", "--dry-run",
                                      "--out", str(tmp_path / "o")])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert printed.count("train.steps=5 train.steps=2 optim.lr=") == 2 and str(tmp_path / "o") in printed
    record = OmegaConf.load(tmp_path / "o" / "sweep.yaml")  # what `seqjax report` reads
    assert list(record.overrides) == ["train.steps=5", "train.steps=2"]
