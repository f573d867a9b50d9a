"""Benchmarks of the non-recurrent backbones (``tcn``, ``s4d``, ``mamba``), built through the registry.

Each is timed (train step and forward, :mod:`.workloads`) at its shapes with
its default options and the width set to ``hidden``.  Mamba is also compared
with itself: the default selective scan (``scan_method="auto"``: on CPU the
compiled kernel, ``seqjax.ops.selective_scan_native``) against the JAX scan
(``"sequential"``: chunked, each chunk recomputed in the backward pass) and
``"associative"`` over the full state (one chunk holding every
``h_t [batch, L, d_inner, d_state]``), at ``L = 4096``; ratios are against
auto, and peak memory is XLA's estimate.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from seqjax.benchmarks.programs import Program, Shape, inputs, jax_program
from seqjax.errors import UserError

BACKBONE_MODELS = ("tcn", "s4d", "mamba")
WIDTH_FIELDS = ("d_model", "hidden_size", "channels")
# input width = model width: the backbones map d_model -> d_model
SHAPES = (Shape(32, 256, 64, 64), Shape(32, 1024, 64, 64))  # the studies' width, batch and lengths
QUICK_SHAPES = (Shape(2, 32, 8, 8),)
MAMBA_LONG = Shape(2, 4096, 32, 32)
MAMBA_QUICK = Shape(2, 64, 8, 8)


def module_program(module: Any, x: Any, *args: Any, method: str | None = None) -> Program:
    """Train step and forward of a Flax module called as ``module(x, *args)`` (or its ``method``), ``y`` its output
    or the first of a tuple (the backbone contract is ``module(x) -> y``)."""
    params = module.init(jax.random.key(0), jnp.asarray(x), *args, method=method)

    def apply(p, x):
        y = module.apply(p, x, *args, method=method)
        return y[0] if isinstance(y, tuple) else y

    return jax_program(apply, params, x)


def backbone_module(name: str, width: int, **options: Any) -> Any | None:
    """``build_backbone(name, options)`` with the width field set (and those of ``options`` its options have), or
    ``None`` if ``name`` is not registered."""
    from seqjax.models.registry import get_backbone

    try:
        spec = get_backbone(name)
    except UserError:
        return None
    fields = {f.name for f in dataclasses.fields(spec.options)}
    overrides = {f: width for f in WIDTH_FIELDS if f in fields} | {k: v for k, v in options.items() if k in fields}
    return spec.build(spec.options(**overrides))


def backbone_rows(name: str, *, quick: bool, repeats: int, compare: Callable[..., list]) -> list:
    """Rows for one backbone; a missing one gives no rows (it is listed under "not registered")."""
    rows: list = []
    for shape in QUICK_SHAPES if quick else SHAPES:
        module = backbone_module(name, shape.hidden)
        if module is None:
            return rows
        rows += compare(name, shape, {"seqjax": module_program(module, inputs(shape))}, repeats=repeats)
    if name == "mamba":
        rows += mamba_scan_rows(MAMBA_QUICK if quick else MAMBA_LONG, repeats=repeats, compare=compare)
    return rows


def mamba_scan_rows(shape: Shape, *, repeats: int, compare: Callable[..., list]) -> list:
    """Mamba block: ``auto`` vs the JAX ``sequential`` scan (chunked, recomputed) and ``associative`` over the
    full state."""
    from seqjax.models.mamba import MambaBlock

    x = inputs(shape)
    programs = {
        "mamba-auto": module_program(MambaBlock(d_model=shape.hidden), x),
        "mamba-sequential": module_program(MambaBlock(d_model=shape.hidden, scan_method="sequential"), x),
        "mamba-assoc-full": module_program(MambaBlock(d_model=shape.hidden, chunk_size=None,
                                                      scan_method="associative"), x),
    }
    return compare("mamba", shape, programs, repeats=repeats, reference="mamba-auto")
