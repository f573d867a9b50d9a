"""Name -> backbone registry, the bridge from config files to Flax modules.

A *backbone* maps features to features over time and is built from a typed
options dataclass::

    @register_backbone("lstm", RecurrentOptions)
    def build_lstm(opts: RecurrentOptions) -> nn.Module: ...

Every backbone module follows one contract:

* ``module(x, lengths=None, *, deterministic=True) -> y``:
  ``x [batch, time, d_in] -> y [batch, time, d_out]`` (the parallel form);
* ``module.initial_state(batch_size)`` and
  ``module.step(state, x_t [batch, d_in]) -> (state, y_t [batch, d_out])``
  (the step form); a non-causal backbone raises
  :class:`seqjax.layers.StreamingError` from both;
* ``registry.is_causal(name, opts)`` says which, so configs can reject a
  bidirectional model where generation is left to right.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import flax.linen as nn

from seqjax.registry import Registry


class BackboneSpec(NamedTuple):
    options: type  # a dataclass: the typed schema of this backbone's config keys
    build: Callable[[Any], nn.Module]
    causal: Callable[[Any], bool]


BACKBONES: Registry[BackboneSpec] = Registry("model", "seqjax.models.backbones")


def register_backbone(
    name: str, options: type, causal: Callable[[Any], bool] = lambda opts: True
) -> Callable[[Callable[[Any], nn.Module]], Callable[[Any], nn.Module]]:
    """Decorator: register ``build(opts) -> nn.Module`` under ``name`` with its options dataclass."""
    if not dataclasses.is_dataclass(options):
        raise TypeError(f"options for backbone {name!r} must be a dataclass, got {options!r}")

    def wrap(build: Callable[[Any], nn.Module]) -> Callable[[Any], nn.Module]:
        BACKBONES.register(name, BackboneSpec(options, build, causal))
        return build

    return wrap


def get_backbone(name: str) -> BackboneSpec:
    """The spec registered under ``name``; a one-line ``UserError`` lists the known names."""
    return BACKBONES.get(name)


def build_backbone(name: str, opts: Any) -> nn.Module:
    return get_backbone(name).build(opts)


def is_causal(name: str, opts: Any) -> bool:
    return get_backbone(name).causal(opts)
