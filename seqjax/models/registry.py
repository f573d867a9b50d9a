"""Name -> backbone registry, the bridge from config files to Flax modules.

A *backbone* maps features to features over time and is built from a typed
options dataclass::

    @register_backbone("lstm", RecurrentOptions)
    def build_lstm(opts: RecurrentOptions) -> nn.Module: ...

Every backbone module follows one contract:

* ``module(x, lengths=None, *, deterministic=True, resets=None) -> y``:
  ``x [batch, time, d_in] -> y [batch, time, d_out]`` (the parallel form); ``resets [batch, time]``
  (bool) marks the first token of each packed sequence, and each sequence's outputs then equal those of
  the sequence run alone (every family; ``tests/test_resets.py``);
* ``module.initial_state(batch_size)`` and
  ``module.step(state, x_t [batch, d_in]) -> (state, y_t [batch, d_out])``
  (the step form) and ``module.chunk(state, x [batch, T, d_in]) -> (state, y)`` (with ``resets=`` too, but
  for the Transformer)
  (the chunk form: a chunk of any length in the parallel form from the carried state, what
  :mod:`seqjax.experiment.session` streams and truncated BPTT trains); a non-causal backbone raises
  :class:`seqjax.errors.StreamingError` from all three;
* ``registry.is_causal(name, opts)`` says which, so configs can reject a
  bidirectional model where generation is left to right.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import flax.linen as nn

from seqjax.errors import UserError
from seqjax.registry import Registry
from seqjax.tasks.base import Task


class BackboneSpec(NamedTuple):
    """A backbone family: its options, its builder, and the hooks the experiment layer asks it."""

    options: type  # a dataclass: the typed schema of this backbone's config keys
    build: Callable[[Any], nn.Module]
    causal: Callable[[Any], bool]
    param_labels: Callable[[Any], Any] | None = None  # params -> "ssm" | "default" per leaf (optim.ssm_lr)
    check_task: Callable[[Any, Task], None] | None = None  # (opts, task): raise or warn on a task it can't do


BACKBONES: Registry[BackboneSpec] = Registry("model", "seqjax.models.builtin")


def register_backbone(
    name: str, options: type, *, causal: Callable[[Any], bool] = lambda opts: True,
    param_labels: Callable[[Any], Any] | None = None, check_task: Callable[[Any, Task], None] | None = None,
) -> Callable[[Callable[[Any], nn.Module]], Callable[[Any], nn.Module]]:
    """Decorator: register ``build(opts) -> nn.Module`` under ``name`` with its options dataclass and hooks."""
    if not dataclasses.is_dataclass(options):
        raise TypeError(f"options for backbone {name!r} must be a dataclass, got {options!r}")

    def wrap(build: Callable[[Any], nn.Module]) -> Callable[[Any], nn.Module]:
        BACKBONES.register(name, BackboneSpec(options=options, build=build, causal=causal,
                                               param_labels=param_labels, check_task=check_task))
        return build

    return wrap


def get_backbone(name: str) -> BackboneSpec:
    """The spec registered under ``name``; a one-line ``UserError`` lists the known names."""
    return BACKBONES.get(name)


def build_backbone(name: str, opts: Any) -> nn.Module:
    """The Flax module of backbone ``name`` built from its options dataclass.

    >>> import jax, jax.numpy as jnp
    >>> opts = get_backbone("lstm").options(hidden_size=8)
    >>> module = build_backbone("lstm", opts)
    >>> x = jnp.ones((2, 5, 3))
    >>> variables = module.init(jax.random.key(0), x)
    >>> module.apply(variables, x).shape
    (2, 5, 8)
    >>> state = module.apply(variables, 2, method=module.initial_state)
    >>> state, y_0 = module.apply(variables, state, x[:, 0], method=module.step)
    >>> bool(jnp.allclose(y_0, module.apply(variables, x)[:, 0], atol=1e-6))
    True
    """
    return get_backbone(name).build(opts)


def is_causal(name: str, opts: Any) -> bool:
    return get_backbone(name).causal(opts)


def check_task(task: Task, model_name: str, opts: Any) -> None:
    """Reject a non-causal (e.g. bidirectional) backbone on a task whose targets appear in later inputs,
    then run the family's own ``check_task`` hook (the TCN warns when its receptive field is too short).

    On such a task (``task.requires_causal_model``: MQAR with ``values_in_queries``, where each answer is the token
    after its query) a backward pass would read the answer.  Elsewhere (copy, selective copying, induction,
    Zoology's MQAR: the answers lie in the past) a bidirectional model is a fair, if different, contender.
    """
    if task.requires_causal_model and not is_causal(model_name, opts):
        raise UserError(
            f"model {model_name!r} is not causal (bidirectional) but task {task.name!r} has its answers among the "
            "later inputs, which a backward pass would read: use a causal model (model.bidirectional=false; "
            "model.causal=true for the transformer)"
        )
    spec = get_backbone(model_name)
    if spec.check_task is not None:
        spec.check_task(opts, task)
