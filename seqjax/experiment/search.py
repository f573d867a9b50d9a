"""Search spaces of a sweep: ``grid`` axes crossed, ``zip`` axes varied together, ``random`` axes sampled.

In a sweep file (:mod:`~seqjax.experiment.sweep`)::

    grid:   {model.hidden_size: [32, 64]}                  # the Cartesian product
    zip:    {optim.lr: [1.0e-3, 1.0e-2], optim.b2: [0.999, 0.99]}   # equal-length lists, one point per index
    random:                                                # `samples` draws of every axis, from random_seed
      optim.lr: {loguniform: [1.0e-4, 1.0e-2]}             # exp(U(log lo, log hi))
      optim.clip_norm: {uniform: [0.1, 10.0]}              # U(lo, hi)
      train.batch_size: {int: [8, 32]}                     # a whole number in [lo, hi]
      optim.name: {choice: [adam, adamw]}                  # one of the values
    samples: 8
    random_seed: 0

The points are grid x zip x samples, in that order.  Draws come from ``numpy.random.default_rng(random_seed)``,
sample by sample and axis by axis in the file's order, so the same file always gives the same trials.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from seqjax.errors import UserError, check_choice

DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")

Point = list[tuple[str, Any]]  # (dotted key, value) pairs


def check_random(where: str, random: dict[str, Any], samples: int) -> None:
    """One line for an axis that is not ``{distribution: arguments}`` with valid arguments, or no ``samples``."""
    if random and samples < 1:
        raise UserError(f"{where}: random axes need samples >= 1, got samples={samples}")
    for key, dist in random.items():
        if not isinstance(dist, dict) or len(dist) != 1:
            raise UserError(f"{where}: random.{key} must be one distribution, e.g. "
                            f"'{key}: {{loguniform: [1.0e-4, 1.0e-2]}}', got {dist!r}")
        (name, args), = dist.items()
        check_choice(f"random.{key} distribution", name, DISTRIBUTIONS, where=where)
        if not isinstance(args, list) or not args:
            raise UserError(f"{where}: random.{key}.{name} takes a list, e.g. [lo, hi], got {args!r}")
        if name == "choice":
            continue
        numeric = all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)
        if len(args) != 2 or not numeric or not args[0] < args[1]:
            raise UserError(f"{where}: random.{key}.{name} takes [lo, hi] with lo < hi, got {args!r}")
        if name == "loguniform" and args[0] <= 0:
            raise UserError(f"{where}: random.{key}.loguniform needs lo > 0, got {args!r}")
        if name == "int" and not all(isinstance(a, int) for a in args):
            raise UserError(f"{where}: random.{key}.int takes whole numbers [lo, hi], got {args!r}")


def check_zip(where: str, zipped: dict[str, list[Any]]) -> None:
    lengths = {key: len(values) for key, values in zipped.items()}
    if len(set(lengths.values())) > 1 or 0 in lengths.values():
        raise UserError(f"{where}: zip axes must be non-empty lists of one length, got lengths {lengths}")


def _draw(rng: np.random.Generator, name: str, args: list[Any]) -> Any:
    if name == "uniform":
        return float(rng.uniform(args[0], args[1]))
    if name == "loguniform":
        return float(math.exp(rng.uniform(math.log(args[0]), math.log(args[1]))))
    if name == "int":
        return int(rng.integers(args[0], args[1], endpoint=True))
    return args[int(rng.integers(len(args)))]


def sample_random(random: dict[str, dict[str, list[Any]]], samples: int, seed: int) -> list[Point]:
    """``samples`` points, each a draw of every random axis.

    >>> sample_random({"optim.lr": {"loguniform": [1e-4, 1e-2]}, "optim.name": {"choice": ["adam", "sgd"]}},
    ...               2, seed=0) == sample_random({"optim.lr": {"loguniform": [1e-4, 1e-2]},
    ...                                            "optim.name": {"choice": ["adam", "sgd"]}}, 2, seed=0)
    True
    >>> [round(p[0][1], 6) for p in sample_random({"optim.lr": {"loguniform": [1e-4, 1e-2]}}, 2, seed=0)]
    [0.001879, 0.000346]
    """
    rng = np.random.default_rng(seed)
    return [[(key, _draw(rng, *next(iter(dist.items())))) for key, dist in random.items()] for _ in range(samples)]


def points(grid: dict[str, list[Any]], zipped: dict[str, list[Any]], random: dict[str, Any], samples: int,
           seed: int) -> list[Point]:
    """grid x zip x random samples, each point the (key, value) pairs it sets.

    >>> points({"a": [1, 2]}, {"b": [3, 4], "c": [5, 6]}, {}, 0, 0)
    [[('a', 1), ('b', 3), ('c', 5)], [('a', 1), ('b', 4), ('c', 6)], [('a', 2), ('b', 3), ('c', 5)], [('a', 2), ('b', 4), ('c', 6)]]
    """
    grid_points = [list(zip(grid, values)) for values in itertools.product(*grid.values())]
    zip_points = [list(zip(zipped, values)) for values in zip(*zipped.values())] or [[]]
    random_points = sample_random(random, samples, seed) or [[]]
    return [g + z + r for g, z, r in itertools.product(grid_points, zip_points, random_points)]
