"""Drive a module's step form over a whole sequence, for comparison with its parallel form."""

import jax
import numpy as np


def run_steps(module, variables, x):
    """``y_t = module.step(state, x_t)`` for every ``t`` from ``module.initial_state(batch)``: ``[B, T, ...]``."""
    state = module.apply(variables, x.shape[0], method=module.initial_state)
    step = jax.jit(lambda s, x_t: module.apply(variables, s, x_t, method=module.step))
    ys = []
    for t in range(x.shape[1]):
        state, y_t = step(state, x[:, t])
        ys.append(np.asarray(y_t))
    return np.stack(ys, 1)
