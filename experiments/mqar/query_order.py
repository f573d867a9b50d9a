"""Accuracy of a trained MQAR run by query order: does it recall, or eliminate?

A model that recalls answers every query alike.  One that has only learned which values an example holds and
which of them were already given scores ``1 / (K - j)`` on the ``j``-th query (0-based): with the values
written after the queries (``task.values_in_queries=true``), the last query's answer is the one value not yet
seen.  Prints, per query order, the accuracy, elimination's score and the share of answers that are one of
the example's values, on the run's fixed validation set at its best checkpoint, as JSON.

Usage:  python experiments/mqar/query_order.py RUN_DIR [task.KEY=VALUE ...] [--examples N]
(a run trained before ``task.values_in_queries`` existed trained with it true: pass ``task.values_in_queries=true``)
"""

from __future__ import annotations

import argparse
import json

import jax.numpy as jnp
import numpy as np

from seqjax.experiment.config import load_config
from seqjax.experiment.evaluate import restore_trained


def by_query_order(run_dir: str, examples: int = 512, overrides: list[str] = ()) -> dict:
    """``{"step", "accuracy", "by_order": [{"order", "accuracy", "elimination", "among_values"}, ...]}``."""
    cfg = load_config(run_dir, list(overrides))
    trainer, step, state = restore_trained(cfg)
    workload, K = trainer.workload, cfg.task.num_pairs
    batch = workload.eval_set("val", examples)
    logits = workload.model.apply({"params": state.params}, batch["inputs"], batch.get("lengths"), deterministic=True)
    pred, x, y = (np.asarray(a) for a in (jnp.argmax(logits, -1), batch["inputs"], batch["targets"]))
    mask = np.asarray(batch["mask"]).astype(bool)
    order = np.cumsum(mask, axis=1) - 1  # the j-th query of its example, at each query position
    values = x[:, 1:2 * K:2]
    among = (pred[:, :, None] == values[:, None, :]).any(-1)
    rows = [{"order": j, "accuracy": float((pred == y)[mask & (order == j)].mean()), "elimination": 1 / (K - j),
             "among_values": float(among[mask & (order == j)].mean())} for j in range(K)]
    return {"run_dir": run_dir, "overrides": list(overrides), "step": step, "accuracy": float((pred == y)[mask].mean()), "by_order": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("overrides", nargs="*", metavar="task.KEY=VALUE")
    parser.add_argument("--examples", type=int, default=512)
    args = parser.parse_args()
    print(json.dumps(by_query_order(args.run_dir, args.examples, args.overrides), indent=2))


if __name__ == "__main__":
    main()
