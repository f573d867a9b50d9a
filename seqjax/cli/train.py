"""``seqjax train CONFIG [KEY=VALUE ...]``.

``CONFIG`` is an experiment file (``configs/experiments/*.yaml``) or a run directory; re-running the
same command on an existing run directory resumes from its latest checkpoint.  ``--tiny`` trains an experiment
file at its tiny size (:mod:`seqjax.experiment.tiny`) for 6 steps: a smoke test of the file, in seconds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seqjax.errors import UserError
from seqjax.experiment.config import load_config


def _train(args: argparse.Namespace) -> int:
    from seqjax.experiment.loop import (  # jax-heavy imports after argument parsing
        Diverged,
        Trainer,
    )
    from seqjax.experiment.memory import check_fits

    overrides = args.overrides
    if args.tiny:
        from seqjax.experiment.tiny import tiny_overrides

        if Path(args.config).is_dir():
            raise UserError(f"--tiny shrinks an experiment file, and {args.config} is a run directory")
        overrides = [*tiny_overrides(args.config), *overrides]
    cfg = load_config(args.config, overrides)
    check_fits(cfg)  # before anything large is allocated
    try:
        summary = Trainer(cfg).run()
    except Diverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    best, final = summary["best"] or {}, (summary["final"] or {}).get("val") or {}
    metric = summary["best_metric"]
    print(f"{cfg.name}: {summary['steps']} steps, {summary['param_count']} params, "
          f"final val {metric}={final.get(metric)}, best val {metric}={best.get(metric)} at step {best.get('step')}, "
          f"baseline {metric}={summary['baseline'].get(metric)}; run dir {cfg.run_dir}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="train from an experiment config (or resume a run directory)")
    train.add_argument("config", help="configs/experiments/NAME.yaml, or a run directory to resume")
    train.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. optim.lr=3e-3")
    train.add_argument("--tiny", action="store_true",
                       help="a smoke test: 6 steps at a tiny size (one layer of width 8, length 24); the overrides "
                            "given still win")
    train.set_defaults(func=_train)
