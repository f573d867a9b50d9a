"""``seqjax sweep SWEEP.yaml [KEY=VALUE ...]``: run a grid of trials (or an Optuna search), then report."""

from __future__ import annotations

import argparse


def _sweep(args: argparse.Namespace) -> int:
    from seqjax.experiment.report import report
    from seqjax.experiment.sweep import load_sweep, run_sweep

    if load_sweep(args.sweep, args.out)[0].search:
        return _search(args)
    failed = run_sweep(args.sweep, jobs=args.jobs, dry_run=args.dry_run, overrides=args.overrides, out=args.out,
                       vmap=args.vmap, group_size=args.group_size)
    if args.dry_run:
        return 0
    print(report(load_sweep(args.sweep, args.out)[0].out))
    for trial in failed:
        print(f"error: trial {trial.name} failed; see {trial.run_dir / 'train.log'}")
    return 1 if failed else 0


def _search(args: argparse.Namespace) -> int:
    from seqjax.experiment.optuna_search import load_search, optimize, run_search
    from seqjax.experiment.report import report
    from seqjax.experiment.study_report import study_report

    if args.dry_run:
        search = load_search(args.sweep, args.overrides, args.out, args.storage)
        print(f"search {search.study_name}: {search.spec.n_trials} trials of {search.experiment} "
              f"({search.spec.sampler} sampler, {search.spec.pruner} pruner) in {search.storage}")
        return 0
    if args.worker is not None:  # one of the --jobs workers that `seqjax sweep` starts
        optimize(load_search(args.sweep, args.overrides, args.out, args.storage), worker=args.worker)
        return 0
    search = run_search(args.sweep, jobs=args.jobs, overrides=args.overrides, out=args.out, storage=args.storage)
    print(study_report(search.out))
    print(report(search.out))
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    sweep = subparsers.add_parser("sweep", help="run a grid of trials from configs/sweeps/*.yaml, then report")
    sweep.add_argument("sweep", help="a sweep file, e.g. configs/sweeps/adding_lr.yaml")
    sweep.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                       help="dotted overrides for every trial, after the file's, e.g. train.steps=100")
    sweep.add_argument("--out", default=None, help="the output folder instead of the sweep file's `out`")
    sweep.add_argument("--jobs", type=int, default=1, help="trials run at once, each in its own process (a search: workers)")
    sweep.add_argument("--dry-run", action="store_true",
                       help="validate every trial and print its command (and which trials share a vmapped group)")
    sweep.add_argument("--vmap", action=argparse.BooleanOptionalAction, default=None,
                       help="train trials that differ only in seed and optimizer values in one vmapped program "
                            "(default: whenever two or more can; --vmap: all, or fail naming the key that prevents "
                            "it; --no-vmap: one process per trial)")
    sweep.add_argument("--group-size", type=_positive, default=None,
                       help="at most this many trials per vmapped group (default: what half the memory holds)")
    sweep.add_argument("--storage", default=None,
                       help="a search's Optuna storage: a database URL, or journal:PATH for a journal file on a "
                            "shared filesystem (default: sqlite:///<out>/optuna.db)")
    sweep.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)  # a --jobs worker's index
    sweep.set_defaults(func=_sweep)
