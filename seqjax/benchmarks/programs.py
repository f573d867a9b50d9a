"""The timed programs: a forward pass and a full training step, per framework.

Every framework runs the same workload on ``x [batch, time, input]``:

* forward: ``y = layer(x)``, ``[batch, time, hidden]``;
* train step: ``L = mean(y^2)``, ``g = dL/dθ``, one Adam update
  (``lr = 1e-3``; optax for JAX, ``torch.optim.Adam`` for PyTorch).

JAX programs are ``jax.jit``-compiled (the training state is donated), and their
peak memory is XLA's compiled estimate ``arguments + outputs + temporaries -
aliased`` of the same program without donation (:func:`compiled_peak_bytes`); their work (flops and
compulsory bytes) is :func:`~seqjax.benchmarks.roofline.program_cost`'s.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from seqjax.benchmarks.memory import compiled_memory
from seqjax.benchmarks.roofline import Cost, program_cost
from seqjax.benchmarks.timing import blocking
from seqjax.cells import make_cell, scan

LEARNING_RATE = 1e-3


class Shape(NamedTuple):
    batch: int
    time: int
    input: int
    hidden: int

    def __str__(self) -> str:
        return f"B={self.batch} T={self.time} I={self.input} H={self.hidden}"


class Program(NamedTuple):
    """Zero-argument callables that run to completion, their peak memory (bytes) and work (or None)."""

    forward: Callable[[], Any]
    train_step: Callable[[], Any]
    forward_bytes: int | None = None
    train_bytes: int | None = None
    forward_cost: Cost | None = None
    train_cost: Cost | None = None


def inputs(shape: Shape, seed: int = 0) -> np.ndarray:
    """The benchmark input ``x ~ N(0, 1)``, ``[batch, time, input]`` float32."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((shape.batch, shape.time, shape.input), dtype=np.float32)


def compiled_peak_bytes(f: Callable[..., Any], *args: Any) -> int | None:
    """XLA's peak-memory estimate of ``jax.jit(f)(*args)`` (:func:`~seqjax.benchmarks.memory.compiled_memory`), or None."""
    try:
        return compiled_memory(f, *args)["peak"]
    except RuntimeError:  # a backend without a compiled memory analysis
        return None


def adam_step(apply: Callable[[Any, jax.Array], jax.Array]) -> tuple[optax.GradientTransformation, Callable]:
    """``(optimizer, step)``: ``step((params, opt_state), x) -> (state', loss)``, one Adam update of
    ``loss = mean(y^2)``, ``y = apply(params, x)`` (the loss in float32 whatever ``y``'s dtype)."""
    optimizer = optax.adam(LEARNING_RATE)

    def loss_fn(p, x):
        return jnp.mean(jnp.square(apply(p, x).astype(jnp.float32)))

    def step(state, x):
        p, opt_state = state
        loss, grads = jax.value_and_grad(loss_fn)(p, x)
        updates, opt_state = optimizer.update(grads, opt_state, p)
        return (optax.apply_updates(p, updates), opt_state), loss

    return optimizer, step


def jax_program(apply: Callable[[Any, jax.Array], jax.Array], params: Any, x: np.ndarray) -> Program:
    """Forward and Adam train step (:func:`adam_step`) of ``apply(params, x)``."""
    x = jnp.asarray(x)
    optimizer, step = adam_step(apply)
    forward = jax.jit(apply)
    train = jax.jit(step, donate_argnums=0)
    params = jax.tree.map(jnp.array, params)  # a private copy: the train step donates it
    holder = {"state": (params, optimizer.init(params))}
    forward_bytes = compiled_peak_bytes(apply, params, x)
    train_bytes = compiled_peak_bytes(step, holder["state"], x)

    def train_step():
        holder["state"], loss = train(holder["state"], x)
        return loss

    def forward_pass():
        return forward(holder["state"][0], x)

    return Program(blocking(forward_pass), blocking(train_step), forward_bytes, train_bytes,
                   program_cost(apply, params, x), program_cost(step, holder["state"], x))


def seqjax_recurrent(cell_name: str, shape: Shape, x: np.ndarray, **scan_options: Any) -> Program:
    """seqjax: ``scan.run`` of the named cell (``rnn``, ``lstm``, ``gru``)."""
    cell = make_cell(cell_name, shape.hidden)
    params = cell.init(jax.random.key(0), shape.input)

    def apply(p, x):
        return scan.run(cell, p, x, **scan_options)[1]

    return jax_program(apply, params, x)
