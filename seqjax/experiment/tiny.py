"""The smallest instance of an experiment config: :func:`tiny_overrides`, what ``--tiny`` applies.

``seqjax train FILE --tiny`` and ``seqjax sweep FILE --tiny`` (every trial) run at this size for 6 steps: a
smoke test that a config composes, trains with gradients, evaluates and checkpoints, in seconds of CPU.  The
test suite trains every shipped config at this size and the studies' ``--quick`` runs use it, so the programs
one of them compiles are loaded from a persistent compilation cache by the others.

>>> [o for o in tiny_overrides("configs/experiments/adding_lstm.yaml") if not o.startswith("train.")]
['model.hidden_size=8', 'model.embed_dim=8', 'task.seq_len=24']
"""

from __future__ import annotations

from pathlib import Path

from seqjax.experiment.config import load_config
from seqjax.experiment.schema import options_of
from seqjax.experiment.workloads.windows import stream_length
from seqjax.tasks import get_task, make_task

# key -> the value a tiny instance uses (never larger than what the config ships). One layer and greedy
# decoding: compilation, which grows with depth and beam search, is what these runs cost (stacks and beam
# search have their own tests).
TINY_MODEL = {"hidden_size": 8, "d_model": 8, "embed_size": 8, "embed_dim": 8, "encoder_hidden_size": 8,
              "decoder_hidden_size": 8, "attention_size": 8, "channels": 8, "state_size": 4, "d_state": 4,
              "num_layers": 1, "n_layers": 1, "encoder_layers": 1, "levels": 1, "beam_width": 1,
              "blocks": 1}  # S5's HiPPO-N blocks: state_size must hold a conjugate pair per block
TINY_TASK = {"seq_len": 24, "max_len": 6, "min_len": 3, "max_digits": 2, "max_clauses": 1}
TINY_TRAIN = ["train.steps=6", "train.batch_size=4", "train.eval_every=2", "train.checkpoint_every=2",
              "train.log_every=1", "train.eval_examples=8", "train.test_examples=8", "train.eval_batch_size=8",
              "train.progress=false"]


def tiny_overrides(path: str | Path) -> list[str]:
    """Dotted overrides that shrink the experiment at ``path`` to a few seconds of CPU."""
    cfg = load_config(path)
    out = list(TINY_TRAIN)
    for section, tiny in (("model", TINY_MODEL), ("task", TINY_TASK)):
        for key, small in tiny.items():
            value = cfg[section].get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > small:
                out.append(f"{section}.{key}={small}")
    if cfg.train.get("tbptt"):  # windows must tile the shrunk streams: two windows of half a stream each
        length = stream_length(make_task(cfg.task.name, options_of(load_config(path, [*out, "train.tbptt=null"]).task,
                                                                     get_task(cfg.task.name).options)).sample)
        out.append(f"train.tbptt={length // 2 if length % 2 == 0 else length}")
    return out
