"""``seqjax eval RUN_DIR [--split val|test] [--step N] [task.KEY=VALUE ...]``."""

from __future__ import annotations

import argparse
import json


def _eval(args: argparse.Namespace) -> int:
    from seqjax.experiment.evaluate import evaluate_run

    result = evaluate_run(args.run_dir, split=args.split, step=args.step, overrides=args.overrides)
    print(json.dumps(result, indent=2))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    ev = subparsers.add_parser("eval", help="evaluate a run's best checkpoint on the fixed test set")
    ev.add_argument("run_dir", help="a run directory written by `seqjax train`")
    ev.add_argument("--split", default="test", choices=("val", "test"))
    ev.add_argument("--step", type=int, default=None, help="a checkpoint step instead of the best one")
    ev.add_argument("overrides", nargs="*", metavar="task.KEY=VALUE",
                    help="score on a changed task, e.g. task.seq_len=1024 (length generalization)")
    ev.set_defaults(func=_eval)
