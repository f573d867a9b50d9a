"""Array types and the shape notation used in every docstring.

Notation: ``b`` batch, ``t`` time, ``d`` features, ``h`` hidden width, ``n`` state size; arrays are
``[b, t, d]`` at every public boundary (time is the scan axis only inside).
"""

from __future__ import annotations

from typing import Any

import jax

Array = jax.Array
Params = dict[str, Array]  # a cell's (flat) parameter dict
PyTree = Any  # a nested parameter / state pytree (Flax variables, optimizer state)
Carry = Any  # a recurrent cell's state: an array or a NamedTuple of arrays (LSTMCarry)
Batch = dict[str, Array]  # a task's batch: "inputs", "targets", "mask", ... or "src", "tgt", ...
