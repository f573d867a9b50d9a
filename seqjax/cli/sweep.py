"""``seqjax sweep SWEEP.yaml [KEY=VALUE ...]``: run a grid of trials (or an Optuna search), here or as a SLURM
job array (``--launcher slurm``), then report; ``--status`` shows each trial's state."""

from __future__ import annotations

import argparse
import dataclasses
import typing

from seqjax.errors import UserError

if typing.TYPE_CHECKING:
    from seqjax.experiment.slurm import SlurmOptions

SLURM_OPTIONS = ("partition", "time", "gpus_per_task", "cpus_per_task", "array_parallelism")  # --slurm.<name>


def _sweep(args: argparse.Namespace) -> int:
    from seqjax.experiment.report import report
    from seqjax.experiment.sweep import load_sweep, run_sweep

    if args.status:
        return _status(args)
    slurm_given = [f"--slurm.{n}" for n in (*SLURM_OPTIONS, "opt") if getattr(args, f"slurm_{n}") is not None]
    if args.launcher != "slurm" and (slurm_given or not args.wait):
        raise UserError(f"{' '.join(slurm_given) or '--no-wait'} needs --launcher slurm")
    search = bool(load_sweep(args.sweep, args.out)[0].search)
    if args.jobs == 0 and args.launcher == "slurm":
        raise UserError("--jobs 0 trains in this process: not with --launcher slurm")
    if args.tiny and (search or args.launcher == "slurm"):
        raise UserError("--tiny runs a grid sweep here: not a search section, nor --launcher slurm")
    if args.launcher == "slurm" and not args.dry_run:
        return _slurm(args, search)
    if search:
        return _search(args)
    failed = run_sweep(args.sweep, jobs=args.jobs, dry_run=args.dry_run, overrides=args.overrides, out=args.out,
                       vmap=args.vmap, group_size=args.group_size, tiny=args.tiny)
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


def _status(args: argparse.Namespace) -> int:
    from seqjax.experiment.sweep_status import status_table, sweep_status

    print(status_table(sweep_status(args.sweep, args.out)), end="")
    return 0


def _slurm_options(args: argparse.Namespace) -> SlurmOptions:
    """The ``--slurm.*`` options given, over :class:`~seqjax.experiment.slurm.SlurmOptions`' defaults."""
    from seqjax.experiment.slurm import SlurmOptions

    extra = {}
    for option in args.slurm_opt or []:
        key, _, value = option.partition("=")
        if not key.strip("-") or not value:
            raise UserError(f"--slurm.opt {option!r} is not KEY=VALUE (an sbatch option), e.g. --slurm.opt qos=high")
        extra[key.strip("-")] = value
    given = {n: getattr(args, f"slurm_{n}") for n in SLURM_OPTIONS if getattr(args, f"slurm_{n}") is not None}
    return dataclasses.replace(SlurmOptions(), extra=extra, **given)


def _slurm(args: argparse.Namespace, search: bool) -> int:
    """Submit the sweep as a SLURM job array; unless ``--no-wait``, wait for it and report."""
    from seqjax.experiment.report import report
    from seqjax.experiment.slurm import submit_sweep, wait_for
    from seqjax.experiment.sweep_status import sweep_status

    root, jobs = submit_sweep(args.sweep, _slurm_options(args), overrides=args.overrides, out=args.out,
                              vmap=args.vmap, group_size=args.group_size, storage=args.storage, search=search,
                              workers=args.jobs)
    tasks = sorted(set(jobs.values()))
    print(f"submitted {len(tasks)} array tasks ({', '.join(tasks)}); logs in {root / 'slurm'}" if tasks else
          "nothing to submit: every trial is done", flush=True)
    for name, job in jobs.items():
        print(f"  {job}  {name}")
    if not args.wait:
        print(f"follow it with: seqjax sweep {args.sweep}{f' --out {args.out}' if args.out else ''} --status")
        return 0
    wait_for(jobs)
    if search:
        from seqjax.experiment.study_report import study_report

        print(study_report(root))
    print(report(root))
    unfinished = [s for s in sweep_status(args.sweep, args.out) if s.state not in ("done", "pruned")]
    for s in unfinished:
        print(f"error: trial {s.name} is {s.state}{f' ({s.detail})' if s.detail else ''}; see "
              f"{root / s.name / 'train.log'} and {root / 'slurm'}/{s.job}_0_log.err")
    return 1 if unfinished else 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    sweep = subparsers.add_parser("sweep", help="run a grid of trials from configs/sweeps/*.yaml, then report")
    sweep.add_argument("sweep", help="a sweep file, e.g. configs/sweeps/adding_lr.yaml")
    sweep.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                       help="dotted overrides for every trial, after the file's, e.g. train.steps=100")
    sweep.add_argument("--out", default=None, help="the output folder instead of the sweep file's `out`")
    sweep.add_argument("--jobs", type=_count, default=1,
                       help="trials run at once, each in its own process (a search: workers); 0: one after "
                            "another in this process, where a debugger or a profiler sees them")
    sweep.add_argument("--tiny", action="store_true",
                       help="a smoke test: every trial for 6 steps at its experiment's tiny size (one layer of "
                            "width 8, length 24); the sweep's values and the overrides given still win")
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
    sweep.add_argument("--status", action="store_true",
                       help="show each trial's state (pending, running, done, failed, pruned) and exit")
    sweep.add_argument("--launcher", choices=("local", "slurm"), default="local",
                       help="local: run here (default); slurm: submit as a SLURM job array through submitit "
                            "(one task per trial, vmapped group or --jobs search worker; pip install seqjax[slurm])")
    sweep.add_argument("--slurm.partition", dest="slurm_partition", default=None, help="the SLURM partition")
    sweep.add_argument("--slurm.time", dest="slurm_time", type=_positive, default=None,
                       help="each array task's time limit in minutes (default 60); a task that reaches it is "
                            "requeued and resumes from its checkpoint")
    sweep.add_argument("--slurm.gpus_per_task", dest="slurm_gpus_per_task", type=_count, default=None,
                       help="GPUs per array task (default 0)")
    sweep.add_argument("--slurm.cpus_per_task", dest="slurm_cpus_per_task", type=_positive, default=None,
                       help="CPUs per array task (default 1)")
    sweep.add_argument("--slurm.array_parallelism", dest="slurm_array_parallelism", type=_positive, default=None,
                       help="array tasks running at once (default 16)")
    sweep.add_argument("--slurm.opt", dest="slurm_opt", action="append", default=None, metavar="KEY=VALUE",
                       help="a further sbatch option, e.g. --slurm.opt qos=high --slurm.opt account=lab (repeat)")
    sweep.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True,
                       help="--launcher slurm: wait for the array, then report (default); --no-wait: submit, "
                            "print the job ids and return")
    sweep.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)  # a --jobs worker's index
    sweep.set_defaults(func=_sweep)
