"""Task registry: ``@register_task("adding", AddingOptions)`` on a ``make(opts) -> Task``."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from seqjax.registry import Registry
from seqjax.tasks.base import Task, TaskSpec

TASKS: Registry[TaskSpec] = Registry("task", "seqjax.tasks.builtin")


def register_task(name: str, options: type) -> Callable[[Callable[[Any], Task]], Callable[[Any], Task]]:
    if not dataclasses.is_dataclass(options):
        raise TypeError(f"options for task {name!r} must be a dataclass, got {options!r}")

    def wrap(make: Callable[[Any], Task]) -> Callable[[Any], Task]:
        TASKS.register(name, TaskSpec(options=options, make=make))
        return make

    return wrap


def get_task(name: str) -> TaskSpec:
    """The spec registered under ``name``; a one-line ``UserError`` lists the known names."""
    return TASKS.get(name)


def make_task(name: str, opts: Any | None = None) -> Task:
    """The task registered under ``name``, built from ``opts`` (default: its options' defaults).

    >>> import jax
    >>> task = make_task("adding", get_task("adding").options(seq_len=20))
    >>> batch = task.sample(jax.random.key(0), 4)
    >>> batch["inputs"].shape, batch["targets"].shape, task.kind
    ((4, 20, 2), (4, 1), 'regress_last')
    """
    spec = get_task(name)
    return spec.make(spec.options() if opts is None else opts)
