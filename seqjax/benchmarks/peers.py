"""The peers seqjax is measured against, on the same workload (:mod:`~seqjax.benchmarks.programs`).

* Flax linen: ``nn.RNN`` over ``OptimizedLSTMCell``, ``GRUCell`` or ``SimpleCell``.
* PyTorch: ``nn.LSTM``, ``nn.GRU`` or ``nn.RNN`` (``batch_first``), and any module through
  :func:`torch_program`, imported lazily: torch is an optional benchmark extra (``pip install seqjax[bench]``),
  never a runtime dependency.  Its thread count is set to JAX's CPU core count.
"""

from __future__ import annotations

import os
from typing import Any, Callable

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


def torch_program(module: Any, x: np.ndarray, device: str = "cpu",
                  call: Callable[[Any, Any], Any] | None = None) -> Program:
    """Forward pass and Adam train step (loss ``mean(y^2)``) of a PyTorch ``module`` on ``x``, on the CPU or a CUDA
    device; ``call(module, x) -> y`` (default: ``module(x)``, its first element when it returns a tuple)."""
    import torch

    torch.set_num_threads(torch_threads())
    dev = torch.device("cuda" if device == "gpu" else "cpu")
    module = module.to(dev)
    optimizer = torch.optim.Adam(module.parameters(), lr=LEARNING_RATE)
    xt = torch.from_numpy(x).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def apply() -> Any:
        y = call(module, xt) if call else module(xt)
        return y[0] if isinstance(y, tuple) else y

    def forward() -> Any:
        with torch.no_grad():
            y = apply()
        sync()
        return y

    def train_step() -> Any:
        optimizer.zero_grad(set_to_none=True)
        loss = torch.mean(torch.square(apply()))
        loss.backward()
        optimizer.step()
        sync()
        return loss

    return Program(forward, train_step)


def torch_recurrent(cell_name: str, shape: Shape, x: np.ndarray, device: str = "cpu") -> Program:
    """PyTorch ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` (cuDNN on a CUDA device)."""
    import torch

    module = getattr(torch.nn, TORCH_MODULES[cell_name])(shape.input, shape.hidden, batch_first=True)
    return torch_program(module, x, device)
