"""Vmapped sweep vs one process per trial: K small LSTM trials on the adding problem.

1. **End to end, compilation included** (what a user waits for): ``run_sweep(..., vmap=True)`` -- the
   16 trials (4 learning rates x 4 seeds) in one vmapped program in this process -- against
   ``run_sweep(..., vmap=False)``, the same 16 as sequential ``seqjax train`` processes.  Both write
   every trial's run directory; the ratio is ``t_processes / t_vmapped``, and the largest relative
   difference between the two sweeps' final validation losses is printed beside it.
   The group's step runs as ``trial_loop`` ``"auto"`` picks (on one CPU device: ``"map"``).
2. **Without compilation**: the steady time of one group step over K trials, in both forms (``vmap``: one
   batched program; ``map``: the solo step looped over the trials inside one program), against one trial's
   step alone (``Trainer``), in this process: ratio ``K * t_alone / t_group``.
3. **How it grows with K** (1, 4, 16, 64): compile time and steady trial-steps/s of each form.

Run: ``python experiments/benchmarks/vmapped_sweep.py`` (``--quick``: 4 trials, few steps; ``--out DIR``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from omegaconf import OmegaConf

from seqjax.experiment.config import load_config
from seqjax.experiment.loop import Trainer
from seqjax.experiment.report import collect
from seqjax.experiment.sweep import run_sweep
from seqjax.experiment.vmapped import VmappedTrainer

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = ROOT / "configs" / "experiments" / "adding_lstm.yaml"
MODEL = ["model.hidden_size=32", "task.seq_len=50", "train.batch_size=32", "train.progress=false"]


def end_to_end(out: Path, lrs: list[float], seeds: list[int], steps: int) -> dict:
    overrides = [*MODEL, f"train.steps={steps}", f"train.eval_every={steps // 2}", f"train.checkpoint_every={steps}",
                 "train.log_every=10", "train.eval_examples=256", "train.test_examples=256"]
    path = out / "sweep.yaml"
    path.write_text(OmegaConf.to_yaml(OmegaConf.create({
        "experiment": str(EXPERIMENT), "overrides": overrides, "grid": {"optim.lr": lrs}, "seeds": seeds})))
    times, finals = {}, {}
    for mode, vmap in (("vmapped", True), ("processes", False)):
        start = time.perf_counter()
        failed = run_sweep(path, vmap=vmap, quiet=True, out=out / mode)
        times[mode] = time.perf_counter() - start
        assert not failed, failed
        finals[mode] = {r["run"]: r["final"] for r in collect(out / mode)[1]}
    diff = max(abs(finals["vmapped"][k] - v) / abs(v) for k, v in finals["processes"].items())
    return {"trials": len(lrs) * len(seeds), "steps": steps, "vmapped_s": times["vmapped"],
            "processes_s": times["processes"], "ratio": times["processes"] / times["vmapped"],
            "max_rel_diff_final_val_loss": diff}


def _time_steps(step, state, *args, n: int) -> tuple[float, float]:
    """(seconds of the first call -- compilation --, steady seconds per call)."""
    start = time.perf_counter()
    state, _ = step(state, *args)
    jax.block_until_ready(state)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(n):
        state, _ = step(state, *args)
    jax.block_until_ready(state)
    return compile_s, (time.perf_counter() - start) / n


def steady(ks: list[int], n: int) -> dict:
    base = [*MODEL, "train.steps=1000", f"run_dir={ROOT / 'runs' / 'unused'}"]
    solo = Trainer(load_config(EXPERIMENT, base))
    solo_compile, solo_step = _time_steps(solo._train_step, solo.init_state(), n=n)
    rows = []
    for k in ks:
        cfgs = [load_config(EXPERIMENT, [*base, f"seed={i}", f"optim.lr={1e-3 * (1 + i % 4)}"]) for i in range(k)]
        for loop in ("vmap", "map"):
            group = VmappedTrainer(cfgs, loop=loop)
            compile_s, step_s = _time_steps(group._train_step, group.init_state(), group._dropout_keys,
                                            jnp.ones(k, bool), n=n)
            rows.append({"K": k, "loop": loop, "compile_s": compile_s, "step_s": step_s,
                         "trial_steps_per_s": k / step_s, "ratio_vs_alone": k * solo_step / step_s})
    return {"alone": {"compile_s": solo_compile, "step_s": solo_step, "trial_steps_per_s": 1 / solo_step},
            "vmapped": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 trials, 20 steps, K = 1, 4")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_vmapped_sweep"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.quick:
        e2e, st = end_to_end(out, [1e-3, 1e-2], [0, 1], 20), steady([1, 4], 5)
    else:
        e2e, st = end_to_end(out, [1e-3, 3e-3, 1e-2, 3e-2], [0, 1, 2, 3], 200), steady([1, 4, 16, 64], 50)
    print(f"end to end, compilation included: {e2e['trials']} LSTM trials x {e2e['steps']} steps: vmapped "
          f"{e2e['vmapped_s']:.1f} s, one process each {e2e['processes_s']:.1f} s: ratio {e2e['ratio']:.1f}x "
          f"(final val loss max rel diff {e2e['max_rel_diff_final_val_loss']:.1e})")
    alone = st["alone"]
    print(f"alone: compile {alone['compile_s']:.2f} s, step {1e3 * alone['step_s']:.2f} ms")
    print("| K | loop | compile s | step ms | trial-steps/s | ratio vs alone (no compilation) |\n"
          "|---|---|---|---|---|---|")
    for r in st["vmapped"]:
        print(f"| {r['K']} | {r['loop']} | {r['compile_s']:.2f} | {1e3 * r['step_s']:.2f} | "
              f"{r['trial_steps_per_s']:.0f} | {r['ratio_vs_alone']:.1f}x |")
    (out / "vmapped_sweep.json").write_text(json.dumps({"end_to_end": e2e, "steady": st}, indent=2) + "\n")


if __name__ == "__main__":
    main()
