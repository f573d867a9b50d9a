"""Benchmarks of the linear-recurrence families (``lru``, ``hawk``, ``mingru``, ``minlstm``, ``s5``, ``mamba2``).

Each family's backbone is built through the registry with the model section of its selective-copying study
config (``configs/experiments/selective_copy_<family>.yaml``: width 64, 2 layers, the family's config part)
and timed (train step and forward, :mod:`.programs`) at the studies' width and two lengths, ``B=32`` at
``L=256`` and ``L=1024``. None of these families has a Flax linen or PyTorch peer in this suite, so each is
compared with one switch flipped, the choice a user would otherwise wonder about:

* ``lru``, ``hawk``, ``mingru``, ``minlstm``, ``s5``: the default ``scan_method="auto"`` (``sequential`` on
  CPU) against ``"associative"``; the ratio ``t_assoc / t_auto`` says whether ``auto`` picks the faster one
  for the whole model, not only for the bare scan (``experiments/benchmarks/linear_scan.py``);
* ``mamba2``: against ``mamba`` (Mamba-1, its own study config) at the same shapes, ``t_mamba / t_mamba2``.
  Its SSD chunk sizes against the sequential scan are ``experiments/benchmarks/ssd_chunked.py``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from seqjax.benchmarks.backbones import module_program
from seqjax.benchmarks.programs import Shape, inputs

FAMILIES = ("lru", "hawk", "mingru", "minlstm", "s5", "mamba2")
SHAPES = (Shape(32, 256, 64, 64), Shape(32, 1024, 64, 64))
QUICK_SHAPES = (Shape(2, 32, 8, 8),)
STUDY = Path(__file__).resolve().parents[2] / "configs" / "experiments"
# the peer of each family: (row name, the study family it is built from, option overrides)
PEERS = {name: ("scan=associative", name, {"scan_method": "associative"}) for name in FAMILIES[:-1]}
PEERS["mamba2"] = ("mamba", "mamba", {})


def study_module(family: str, width: int, **overrides: Any) -> Any:
    """The backbone of ``selective_copy_<family>.yaml`` with its width set to ``width`` (and ``overrides``).

    >>> study_module("lru", 8).d_model
    8
    """
    from seqjax.experiment.config import load_config
    from seqjax.experiment.schema import options_of
    from seqjax.models.registry import get_backbone

    spec = get_backbone(family)
    options = options_of(load_config(STUDY / f"selective_copy_{family}.yaml").model, spec.options)
    return spec.build(dataclasses.replace(options, d_model=width, **overrides))


def family_rows(name: str, *, quick: bool, repeats: int, compare: Callable[..., list]) -> list:
    """Train-step and forward rows of family ``name`` and its peer, at every shape; ratios against ``name``."""
    peer, peer_family, overrides = PEERS[name]
    rows: list = []
    depth = {"n_layers": 1} if quick else {}  # a smoke test: compiling the second layer is most of its time
    for shape in QUICK_SHAPES if quick else SHAPES:
        x = inputs(shape)
        programs = {"seqjax": module_program(study_module(name, shape.hidden, **depth), x),
                    peer: module_program(study_module(peer_family, shape.hidden, **overrides, **depth), x)}
        rows += compare(name, shape, programs, repeats=repeats)
    return rows
