"""``seqjax train CONFIG [KEY=VALUE ...]`` and ``seqjax eval RUN_DIR``.

``CONFIG`` is an experiment file (``configs/experiments/*.yaml``) or a run directory; re-running the
same command on an existing run directory resumes from its latest checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys

from seqjax.config import load_config


def _train(args: argparse.Namespace) -> int:
    from seqjax.train.loop import Diverged, Trainer  # jax-heavy imports after argument parsing

    cfg = load_config(args.config, args.overrides)
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


def _eval(args: argparse.Namespace) -> int:
    from seqjax.train.evaluate import evaluate_run

    result = evaluate_run(args.run_dir, split=args.split, step=args.step, overrides=args.overrides)
    print(json.dumps(result, indent=2))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="train from an experiment config (or resume a run directory)")
    train.add_argument("config", help="configs/experiments/NAME.yaml, or a run directory to resume")
    train.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. optim.lr=3e-3")
    train.set_defaults(func=_train)

    ev = subparsers.add_parser("eval", help="evaluate a run's best checkpoint on the fixed test set")
    ev.add_argument("run_dir", help="a run directory written by `seqjax train`")
    ev.add_argument("--split", default="test", choices=("val", "test"))
    ev.add_argument("--step", type=int, default=None, help="a checkpoint step instead of the best one")
    ev.add_argument("overrides", nargs="*", metavar="task.KEY=VALUE",
                    help="score on a changed task, e.g. task.seq_len=1024 (length generalization)")
    ev.set_defaults(func=_eval)
