"""Data parallelism: the same run on 4 (forced host) devices and on 1 device gives the same loss curve
within float tolerance; the batch is sharded over the 'data' mesh axis and the parameters replicated.
A vmapped group of K trials on 4 devices shards its trial axis over gcd(4, K) of them and each trial's
batch over the rest, and gives every trial what 1 device gives it (metrics and final parameters to
rtol 1e-5, atol 1e-7: float32 reductions split differently over the devices)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

from seqjax.experiment import distributed

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import json, sys
import jax
from seqjax.experiment.config import load_config
from seqjax.experiment import distributed
from seqjax.experiment.loop import Trainer
from seqjax.experiment.writers import read_rows

cfg = load_config("configs/experiments/smoke_adding.yaml",
                  [f"run_dir={sys.argv[1]}", "train.steps=30", "train.log_every=1", "model.hidden_size=16"])
trainer = Trainer(cfg)
state = trainer.init_state()
mesh = trainer.mesh
batch = jax.jit(lambda s: distributed.constrain_batch(mesh)(trainer.workload.sample_train(s)))(state.step)
trainer.run()
print(json.dumps({
    "devices": jax.device_count(),
    "mesh": dict(mesh.shape),
    "batch_shards": len(batch["inputs"].addressable_shards),
    "batch_shard_rows": batch["inputs"].addressable_shards[0].data.shape[0],
    "params_replicated": all(x.sharding.is_fully_replicated for x in jax.tree.leaves(state.params)),
    "rows": read_rows(sys.argv[1]),
}))
"""


def _run(devices: int, *args: str, script: str = SCRIPT) -> dict:
    """``script`` run with ``args`` on ``devices`` forced host devices; the JSON of its last line."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"}
    proc = subprocess.run([sys.executable, "-c", script, *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_four_devices_match_one_device(tmp_path):
    one, four = _run(1, tmp_path / "one"), _run(4, tmp_path / "four")
    assert one["devices"] == 1 and four["devices"] == 4 and four["mesh"] == {"data": 4}
    assert four["batch_shards"] == 4 and four["batch_shard_rows"] == 8 // 4 and four["params_replicated"]

    def curve(result: dict, split: str, key: str) -> np.ndarray:
        return np.array([r[key] for r in result["rows"] if r["split"] == split])

    assert len(curve(one, "train", "loss")) == 30
    for split, key in [("train", "loss"), ("train", "grad_norm"), ("val", "loss")]:
        np.testing.assert_allclose(curve(four, split, key), curve(one, split, key), rtol=2e-4, atol=1e-6)


def test_batch_not_divisible_by_devices_is_a_clear_error(tmp_path):
    batch = 6
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4"}
    proc = subprocess.run(
        [sys.executable, "-m", "seqjax.cli", "train", "configs/experiments/smoke_adding.yaml",
         f"train.batch_size={batch}", f"run_dir={tmp_path}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: train.batch_size={batch} must be a multiple of the number of devices (4) for data parallelism"
    ]


def test_distributed_initialize_only_with_coordinator_env(monkeypatch):
    calls = []
    monkeypatch.setattr(distributed.jax.distributed, "initialize", lambda **kw: calls.append(kw))
    monkeypatch.setattr(distributed, "_initialized", False)
    for name in ("JAX_COORDINATOR_ADDRESS", "COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.maybe_initialize() is False and calls == []
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.1:1234")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    monkeypatch.setenv("JAX_PROCESS_ID", "1")
    assert distributed.maybe_initialize() is True and distributed.maybe_initialize() is True
    assert calls == [{"coordinator_address": "10.0.0.1:1234", "num_processes": 2, "process_id": 1}]


GROUPS = """
import json, sys
import jax
from seqjax.experiment.config import load_config
from seqjax.experiment.vmapped import VmappedTrainer

out, sizes = sys.argv[1], [int(k) for k in sys.argv[2:]]
placed = {}
for k in sizes:
    cfgs = [load_config("configs/experiments/smoke_adding.yaml", [
        *%r, f"seed={i}", f"optim.lr={0.01 * (i + 1)}", f"run_dir={out}/{k}/{i}"]) for i in range(k)]
    group = VmappedTrainer(cfgs)
    params = jax.tree.leaves(group.init_state().params)  # placed as the train step leaves the state
    placed[k] = {"mesh": dict(group.mesh.shape), "specs": sorted({tuple(x.sharding.spec) for x in params}),
                 "devices": min(len(x.sharding.device_set) for x in params),
                 "rows_per_device": sorted({s.data.shape[0] for x in params for s in x.addressable_shards})}
    group.run()
print(json.dumps(placed))
"""
TINY = ["model.hidden_size=8", "train.steps=2", "train.log_every=1", "train.eval_every=2", "train.checkpoint_every=2",
        "train.eval_examples=16", "train.eval_batch_size=16", "train.test_examples=16"]


def test_a_vmapped_group_is_sharded_over_trials_and_data_and_matches_one_device(tmp_path):
    from seqjax.experiment.checkpoints import Checkpoints
    from seqjax.experiment.config import load_config
    from seqjax.experiment.loop import Trainer
    from seqjax.experiment.writers import read_rows

    script = GROUPS % (TINY,)
    one = _run(1, tmp_path / "one", 4, script=script)
    four = _run(4, tmp_path / "four", 4, 2, 3, script=script)
    assert one["4"]["mesh"] == {"trials": 1, "data": 1}
    # trials over gcd(4, K) devices, each trial's batch (8 rows) over the rest; the state spans all 4
    assert {k: v["mesh"] for k, v in four.items()} == {
        "4": {"trials": 4, "data": 1}, "2": {"trials": 2, "data": 2}, "3": {"trials": 1, "data": 4}}
    assert all(v["specs"] == [["trials"]] and v["devices"] == 4 for v in four.values())
    assert {k: v["rows_per_device"] for k, v in four.items()} == {"4": [1], "2": [1], "3": [3]}
    for k in (4, 2, 3):
        for i in range(k):
            mine, want = tmp_path / "four" / str(k) / str(i), tmp_path / "one" / "4" / str(i)
            rows, expected = read_rows(mine), read_rows(want)
            assert [(r["step"], r["split"]) for r in rows] == [(r["step"], r["split"]) for r in expected]
            for row, ref in zip(rows, expected):
                numbers = [n for n in ref if n not in ("step", "split")]
                np.testing.assert_allclose([row[n] for n in numbers], [ref[n] for n in numbers], rtol=1e-5, atol=1e-7)
            trainer = Trainer(load_config(want))
            like = trainer.init_state()
            states = []
            for run_dir in (mine, want):  # each trial's checkpoint, read back alone on 1 device
                ckpt = Checkpoints(run_dir, trainer.cfg.train)
                states.append(ckpt.restore_latest(like))
                ckpt.close()
            assert int(states[0].step) == int(states[1].step) == 2
            jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7),
                         *states)
