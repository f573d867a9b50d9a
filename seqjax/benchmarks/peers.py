"""The peers seqjax is measured against, on the same workload (:mod:`~seqjax.benchmarks.programs`).

* Flax linen: ``nn.RNN`` over ``OptimizedLSTMCell``, ``GRUCell`` or ``SimpleCell``.
* PyTorch: ``nn.LSTM``, ``nn.GRU`` or ``nn.RNN`` (``batch_first``), imported
  lazily: torch is an optional benchmark extra (``pip install seqjax[bench]``),
  never a runtime dependency.  Its thread count is set to JAX's CPU core count.
"""

from __future__ import annotations

import os
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from seqjax.benchmarks.programs import LEARNING_RATE, Program, Shape, jax_program

FLAX_CELLS = {"lstm": nn.OptimizedLSTMCell, "gru": nn.GRUCell, "rnn": nn.SimpleCell}
TORCH_MODULES = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}


def flax_recurrent(cell_name: str, shape: Shape, x: np.ndarray) -> Program:
    """Flax linen ``nn.RNN(cell(hidden))``."""
    module = nn.RNN(FLAX_CELLS[cell_name](features=shape.hidden))
    params = module.init(jax.random.key(0), x)
    return jax_program(module.apply, params, x)


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def torch_threads() -> int:
    """Threads given to PyTorch: the cores JAX's CPU backend uses (all of them)."""
    return os.cpu_count() or 1


def torch_recurrent(cell_name: str, shape: Shape, x: np.ndarray, device: str = "cpu") -> Program:
    """PyTorch ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` (cuDNN on a CUDA device)."""
    import torch

    torch.set_num_threads(torch_threads())
    dev = torch.device("cuda" if device == "gpu" else "cpu")
    module = getattr(torch.nn, TORCH_MODULES[cell_name])(shape.input, shape.hidden, batch_first=True).to(dev)
    optimizer = torch.optim.Adam(module.parameters(), lr=LEARNING_RATE)
    xt = torch.from_numpy(x).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def forward() -> Any:
        with torch.no_grad():
            y, _ = module(xt)
        sync()
        return y

    def train_step() -> Any:
        optimizer.zero_grad(set_to_none=True)
        y, _ = module(xt)
        loss = torch.mean(torch.square(y))
        loss.backward()
        optimizer.step()
        sync()
        return loss

    return Program(forward, train_step)
