"""``seqjax report DIR``: tabulate (and plot) the runs under a folder."""

from __future__ import annotations

import argparse


def _report(args: argparse.Namespace) -> int:
    from seqjax.experiment.report import report
    from seqjax.experiment.study_report import study_report

    print(study_report(args.dir))  # a search folder: Optuna's plots and best.yaml
    print(report(args.dir))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    rep = subparsers.add_parser("report", help="tabulate (and plot) the runs under a folder")
    rep.add_argument("dir", help="a sweep's output folder or a folder of run directories")
    rep.set_defaults(func=_report)
