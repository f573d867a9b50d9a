"""Each family beside its installable peer (issue 19): seqjax's layer and the peer's, same sizes, same workload.

Every pair runs the workload of ``seqjax bench`` (:mod:`seqjax.benchmarks.programs`: the forward pass, and the
Adam train step on ``loss = mean(y^2)``), timed interleaved in this process (median of ``--repeats`` rounds), at
the studies' width and batch, ``B=32, D=64``, ``L = 256`` and ``1024``.  ``ratio`` is ``t_peer / t_seqjax``
(> 1: seqjax is faster; ``cpu rat`` the same from CPU time, steadier on a shared machine).  The pairs, each the
layer the peer test of ``tests/test_peer_<name>.py`` proves equal with copied weights:

============ ====================================================== ===========================================
family       seqjax                                                 peer
============ ====================================================== ===========================================
mamba        ``MambaBlock(d_model, d_state=16)``                    ``mambapy`` ``MambaBlock`` (PyTorch, ``pscan``)
mamba2       ``Mamba2Block(d_model, d_state=64, head_dim=32)``      ``mamba2-jax`` ``Mamba2Mixer`` (JAX, nnx)
tcn          ``TCN`` (4 levels of ``d_model``, kernel 3)            ``pytorch-tcn`` ``TCN`` (no norm, no dropout)
hawk         ``RGLRUBlock(d_model, d_rnn=d_model)``                 ``recurrentgemma`` ``RecurrentBlock`` (JAX)
mingru       ``MinRNN(d_model, cell="gru", expansion=1.5)``         ``minGRU-pytorch`` ``minGRU``
minlstm      ``MinRNN(d_model, cell="lstm", expansion=1.5)``        ``minGRU-pytorch`` ``minLSTM``
lru          ``LRUBlock`` recurrence (``d_state=64``)               ``LRU-pytorch`` ``LRU``
s5           ``S5Block`` SSM (``state_size=64``, one block)         ``s5-pytorch`` ``S5``
transformer  the ``transformer`` backbone (2 layers, 4 heads)       ``torch.nn.TransformerEncoder`` (causal mask);
                                                                    Flax ``nn.MultiHeadDotProductAttention`` layers
============ ====================================================== ===========================================

Both sides run in one process with the allocator setting every ``seqjax`` command applies
(:func:`~seqjax.experiment.runtime.keep_freed_memory`).  Writes ``<out>/results.json`` (the rows) and
``<out>/output.txt`` (the table).  ``--quick``: tiny shapes, one
round (a smoke test of every pair, not a measurement).

Usage:  python experiments/benchmarks/peers.py [--out FOLDER] [--quick] [--repeats N] [FAMILY ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from seqjax.benchmarks.backbones import module_program
from seqjax.benchmarks.peers import torch_program
from seqjax.benchmarks.programs import Program, Shape, inputs, jax_program
from seqjax.benchmarks.suite import compare, format_table
from seqjax.experiment.runtime import keep_freed_memory

HERE = pathlib.Path(__file__).resolve().parent
SHAPES = (Shape(32, 256, 64, 64), Shape(32, 1024, 64, 64))
QUICK_SHAPES = (Shape(2, 16, 32, 32),)
HEADS = 4


def mamba(shape: Shape, x: np.ndarray) -> dict[str, Program]:
    from mambapy.mamba import MambaBlock as Peer, MambaConfig

    from seqjax.models.mamba import MambaBlock

    return {"seqjax": module_program(MambaBlock(d_model=shape.hidden, d_state=16), x),
            "mambapy (pscan)": torch_program(Peer(MambaConfig(d_model=shape.hidden, n_layers=1, d_state=16)), x)}


def mamba2(shape: Shape, x: np.ndarray) -> dict[str, Program]:
    import flax.nnx as nnx
    import mamba2_jax

    from seqjax.models.mamba2 import Mamba2Block

    config = mamba2_jax.Mamba2Config(hidden_size=shape.hidden, state_size=64, head_dim=32, chunk_size=64,
                                     expand=2, conv_kernel=4)
    graphdef, state = nnx.split(mamba2_jax.Mamba2Mixer(config, layer_idx=0, rngs=nnx.Rngs(0)))

    def peer(p, x):
        return nnx.merge(graphdef, p)(x)[0]

    return {"seqjax": module_program(Mamba2Block(d_model=shape.hidden, d_state=64, head_dim=32, n_groups=1,
                                               chunk_size=64), x),
            "mamba2-jax": jax_program(peer, state, x)}


def hawk(shape: Shape, x: np.ndarray) -> dict[str, Program]:
    from recurrentgemma.jax import RecurrentBlock

    from seqjax.models.hawk import RGLRUBlock

    positions = jnp.broadcast_to(jnp.arange(shape.time), (shape.batch, shape.time))
    peer = RecurrentBlock(width=shape.hidden, num_heads=1, lru_width=shape.hidden)
    return {"seqjax": module_program(RGLRUBlock(d_model=shape.hidden, d_rnn=shape.hidden), x),
            "recurrentgemma": module_program(peer, x, positions)}


def min_rnn(cell: str) -> Callable[[Shape, np.ndarray], dict[str, Program]]:
    def pair(shape: Shape, x: np.ndarray) -> dict[str, Program]:
        import importlib

        from seqjax.models.min_rnn import MinRNN

        name = f"min{cell.upper()}"
        peer = getattr(importlib.import_module(f"minGRU_pytorch.{name}"), name)(shape.hidden, expansion_factor=1.5)
        return {"seqjax": module_program(MinRNN(d_model=shape.hidden, cell=cell, expansion=1.5), x),
                f"minGRU-pytorch {name}": torch_program(peer, x)}

    return pair


def tcn(shape: Shape, x: np.ndarray) -> dict[str, Program]:
    import pytorch_tcn

    from seqjax.models.tcn import TCN

    widths = [shape.hidden] * 4  # seqjax bench's TCN: 4 levels, kernel 3
    return {"seqjax": module_program(TCN(channels=widths, kernel_size=3), x),
            "pytorch-tcn": torch_program(pytorch_tcn.TCN(shape.input, widths, kernel_size=3, dropout=0.0,
                                                         use_norm=None, input_shape="NLC"), x)}


def lru(shape: Shape, x: np.ndarray) -> dict[str, Program]:
    import LRU_pytorch

    from seqjax.models.lru import LRUBlock

    return {"seqjax": module_program(LRUBlock(d_model=shape.hidden, d_state=64), x, None, "auto", None,
                                   method="_recurrence"),
            "LRU-pytorch": torch_program(LRU_pytorch.LRU(in_features=shape.hidden, out_features=shape.hidden,
                                                         state_features=64), x)}


def s5(shape: Shape, x: np.ndarray) -> dict[str, Program]:
    import s5 as peer

    from seqjax.models.s5 import S5Block

    return {"seqjax": module_program(S5Block(d_model=shape.hidden, state_size=64, blocks=1), x, None, "auto", None,
                                   method="_ssm"),
            "s5-pytorch": torch_program(peer.S5(shape.hidden, state_width=32, block_count=1), x)}


class FlaxEncoder(nn.Module):
    """Pre-norm causal encoder layers from Flax's own ``nn.MultiHeadDotProductAttention`` (the Flax peer)."""

    d_model: int
    n_layers: int = 2

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        mask = nn.make_causal_mask(jnp.ones(x.shape[:2]))
        for _ in range(self.n_layers):
            x = x + nn.MultiHeadDotProductAttention(num_heads=HEADS)(nn.LayerNorm()(x), mask=mask)
            x = x + nn.Dense(self.d_model)(nn.gelu(nn.Dense(4 * self.d_model)(nn.LayerNorm()(x))))
        return x


def transformer(shape: Shape, x: np.ndarray) -> dict[str, Program]:
    import torch

    from seqjax.models.registry import build_backbone, get_backbone

    options = get_backbone("transformer").options(d_model=shape.hidden, n_heads=HEADS, n_layers=2,
                                                  max_len=shape.time)
    layer = torch.nn.TransformerEncoderLayer(shape.hidden, HEADS, 4 * shape.hidden, dropout=0.0,
                                             activation="gelu", batch_first=True, norm_first=True)
    encoder = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(shape.time)
    return {"seqjax": module_program(build_backbone("transformer", options), x),
            "torch TransformerEncoder": torch_program(encoder, x, call=lambda m, x: m(x, mask=mask, is_causal=True)),
            "flax MultiHeadDotProductAttention": module_program(FlaxEncoder(shape.hidden), x)}


PAIRS: dict[str, Callable[[Shape, np.ndarray], dict[str, Program]]] = {
    "mamba": mamba, "mamba2": mamba2, "tcn": tcn, "hawk": hawk, "mingru": min_rnn("gru"),
    "minlstm": min_rnn("lstm"), "lru": lru, "s5": s5, "transformer": transformer}


def main() -> None:
    keep_freed_memory()  # as `seqjax train` and `seqjax bench` run
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("families", nargs="*", choices=[*PAIRS, []], help="default: all")
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "peers")
    parser.add_argument("--quick", action="store_true", help="tiny shapes, one round: a smoke test")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rows = []
    for family in args.families or PAIRS:
        for shape in QUICK_SHAPES if args.quick else SHAPES:
            x = inputs(shape)
            group = compare(family, shape, PAIRS[family](shape, x), repeats=1 if args.quick else args.repeats)
            rows += group
            print(format_table(group), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps([dataclasses.asdict(r) for r in rows], indent=2) + "\n")
    (args.out / "output.txt").write_text(format_table(rows) + "\n")
    print(format_table(rows))


if __name__ == "__main__":
    main()
