"""Helpers for the peer tests (``tests/test_peer_*.py``): seqjax against a published package with copied weights.

Every peer test compares in the peer's own parameterisation: the peer's parameters ``p`` are the variables,
seqjax runs on ``to_seqjax(p)`` (a small mapping written in the test: transposes, slices, reparameterisations),
and the gradient of the same scalar loss with respect to ``p`` is taken on both sides (JAX differentiates
through the mapping, so no hand-written inverse is needed). The loss is ``sum(out * w)`` for a fixed random
``w``, so every output element contributes with its own weight.

Tolerances (float32): ``|ours - theirs| <= rtol * |theirs| + atol * max(1, max |theirs|)``, rtol = atol = 1e-5
unless a test says why it needs more; each comparison prints its largest absolute difference (``pytest -s``).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

RTOL = ATOL = 1e-5


def assert_close(ours: Any, theirs: Any, what: str, rtol: float = RTOL, atol: float = ATOL) -> float:
    """Assert ``ours`` equals ``theirs`` within the tolerances above; return (and print) the max abs difference."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != {theirs.shape}"
    scale = max(1.0, float(np.max(np.abs(theirs), initial=0.0)))
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol * scale, err_msg=what)
    diff = float(np.max(np.abs(ours - theirs), initial=0.0))
    print(f"{what}: max |diff| = {diff:.2e} (max |value| = {scale:.2e})")
    return diff


def assert_trees_close(ours: Mapping[str, Any], theirs: Mapping[str, Any], what: str, rtol: float = RTOL,
                       atol: float = ATOL) -> float:
    """:func:`assert_close` leaf by leaf over two flat ``{name: array}`` dicts with the same keys."""
    assert set(ours) == set(theirs), f"{what}: keys {sorted(ours)} != {sorted(theirs)}"
    return max(assert_close(ours[k], theirs[k], f"{what}[{k}]", rtol, atol) for k in sorted(theirs))


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested dict as ``{"a/b/c": leaf}``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        flat.update(flatten(value, name + "/") if isinstance(value, Mapping) else {name: value})
    return flat
