"""``seqjax bench [MODEL ...|all] [--device cpu|gpu] [--json] [--quick]``.

MODEL: ``rnn``, ``lstm``, ``gru``, ``tcn``, ``s4d``, ``mamba``, ``lru``, ``hawk``, ``mingru``, ``minlstm``, ``s5``,
``mamba2``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os

import jax

from seqjax.errors import UserError, check_positive
from seqjax.experiment import runtime


def register(subparsers: argparse._SubParsersAction) -> None:
    from seqjax.benchmarks.suite import MODELS

    p = subparsers.add_parser(
        "bench",
        help="time training steps and forward passes against Flax linen, PyTorch and the GEMM limit",
        description="Time a full training step (forward, backward, Adam) and a forward pass of each model, "
        "seqjax beside Flax linen and PyTorch, interleaved in one process; print tokens/s, the ratio "
        "seqjax/peer and peak memory.",
    )
    p.add_argument("model", nargs="*", default="all", choices=(*MODELS, "all"),
                   help="the models to time, in one process (default: all)")
    p.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    p.add_argument("--quick", action="store_true", help="tiny shapes, 2 repeats (a smoke test, not a measurement)")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds per figure (default 5; 2 with --quick)")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out (also when it is not installed)")
    p.set_defaults(func=run)


def _device(kind: str) -> jax.Device:
    try:
        return jax.devices(kind)[0]
    except RuntimeError:
        raise UserError(f"no {kind.upper()} visible to JAX; run with --device cpu or install a {kind} jaxlib") from None


def describe_machine(device: jax.Device) -> str:
    """``date UTC, JAX device, CPU model x cores, load average`` (the machine may be shared)."""
    cpu = "unknown CPU"
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"{now}; JAX {jax.__version__} on {device.platform} ({device.device_kind}); {cpu} x {os.cpu_count()} cores; " \
           f"load average {load}"


def run(args: argparse.Namespace) -> int:
    from seqjax.benchmarks import peers, roofline, suite

    repeats = args.repeats if args.repeats is not None else (2 if args.quick else 5)
    check_positive("--repeats", repeats, integer=True)
    names = [args.model] if isinstance(args.model, str) else args.model  # argparse gives the default unlisted
    models = suite.MODELS if "all" in names else tuple(dict.fromkeys(names))
    use_torch = not args.no_torch and peers.torch_available()
    device = _device(args.device)
    before = describe_machine(device)
    with jax.default_device(device):
        peak = roofline.measure_peak(256, 1 << 20, repeats) if args.quick else roofline.measure_peak()
        rows = suite.run_suite(models, quick=args.quick, device=args.device, repeats=repeats, torch=use_torch,
                               peak=peak)
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=1))
        return 0
    flags = " --quick" * args.quick + " --no-torch" * args.no_torch
    print(f"command: seqjax bench {' '.join(names)} --device {args.device} --repeats {repeats}{flags}")
    print(f"start: {before}\nend:   {describe_machine(device)}")
    print(f"torch threads: {peers.torch_threads()} (= the CPU cores JAX uses)" if use_torch else "torch: not run")
    print(f"allocator: {runtime.allocator()}")
    print(f"roofline: {peak} (measured now; roof % = max(GFLOP / GEMM rate, compulsory bytes / bandwidth) "
          "/ wall time)")
    print("ratio: time of the row / time of seqjax (or of the reference row), wall clock and CPU time")
    print(suite.format_table(rows))
    return 0
