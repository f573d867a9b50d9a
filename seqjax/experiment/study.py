"""What every study under ``experiments/`` shares: its command line and its claim check.

A study is two scripts beside its README: ``run.py`` trains and writes raw results to a folder, ``check.py``
reads them and prints, claim by claim, the published value, ours and PASS/FAIL.  Both take ``--out FOLDER``
(default: the study's own folder, where the committed results live) and ``--quick`` (a smoke test at a tiny
size; its default folder is ``runs/quick/<study>``, so a quick run never overwrites committed results, and
``check.py --quick`` reports without failing, since tiny models are not expected to hold the claims).

>>> import pathlib
>>> parser = study_parser("A study.", pathlib.Path("experiments/adding"))
>>> args = parser.parse_args(["--quick"])
>>> str(study_out(args))
'runs/quick/adding'
>>> str(study_out(parser.parse_args([])))
'experiments/adding'
>>> report_claims([("LSTM beats the RNN", "87 vs 21", "0.91 vs 0.40", True)], quick=False)
claim              published ours         verdict
LSTM beats the RNN 87 vs 21  0.91 vs 0.40 PASS
every claim holds
0
"""

from __future__ import annotations

import argparse
import json
import pathlib
from typing import Callable, NamedTuple


class Claim(NamedTuple):
    """One published claim checked against our results."""

    claim: str
    published: str
    ours: str
    holds: bool | None  # None: reported, not checked


def study_parser(description: str, folder: pathlib.Path, quick_help: str = "a smoke test at a tiny size"
                 ) -> argparse.ArgumentParser:
    """A parser with the study's ``--out`` and ``--quick`` (``folder``: the study's folder); add the rest."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=pathlib.Path, default=None,
                        help=f"results folder (default: {folder}; with --quick runs/quick/{folder.name})")
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.set_defaults(study_folder=folder)
    return parser


def study_out(args: argparse.Namespace, create: bool = False) -> pathlib.Path:
    """The results folder ``args`` name (see the module docstring), made if ``create``."""
    folder: pathlib.Path = args.study_folder
    out = args.out or (pathlib.Path("runs/quick") / folder.name if args.quick else folder)
    if create:
        out.mkdir(parents=True, exist_ok=True)
    return out


def report_claims(claims: list[Claim] | list[tuple[str, str, str, bool | None]], quick: bool) -> int:
    """Print the claims as a table (verdict ``-`` for one only reported); the exit code: 1 if one fails, unless
    ``quick``."""
    rows = [Claim(*c) for c in claims]
    header = Claim("claim", "published", "ours", True)
    widths = [max(len(getattr(r, f)) for r in (header, *rows)) for f in ("claim", "published", "ours")]
    for r in (header, *rows):
        verdict = "verdict" if r is header else "-" if r.holds is None else "PASS" if r.holds else "FAIL"
        print(" ".join(f"{getattr(r, f):{w}}" for f, w in zip(("claim", "published", "ours"), widths)), verdict)
    failed = sum(r.holds is False for r in rows)
    print(f"{failed} claim(s) failed" if failed else "every claim holds")
    return 1 if failed and not quick else 0


def check_main(description: str, folder: pathlib.Path, claims: Callable[[list[dict]], list[Claim]]) -> int:
    """A study's ``check.py``: ``claims`` of the rows in ``<out>/results.json``, printed; the exit code."""
    args = study_parser(description, folder, "read run.py --quick's results; never fail").parse_args()
    return report_claims(claims(json.loads((study_out(args) / "results.json").read_text())), args.quick)
