"""Diagnostics: parameter counts (gradient flow, spectral norms and receptive fields join here)."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


def count_params(params: Any) -> int:
    """Total number of scalar parameters in a pytree (a complex leaf counts its real and imaginary parts)."""
    return int(sum(np.size(x) * (2 if np.iscomplexobj(x) else 1) for x in jax.tree.leaves(params)))
