"""Data parallelism: the same run on 4 (forced host) devices and on 1 device gives the same loss curve
within float tolerance; the batch is sharded over the 'data' mesh axis and the parameters replicated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def _run(devices: int, run_dir: Path) -> dict:
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(run_dir)], cwd=ROOT, env=env,
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
