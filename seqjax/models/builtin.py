"""Importing this module registers every backbone family with :mod:`seqjax.models.registry`.

Each family's module calls ``register_backbone`` when imported, and this loader imports every module
of :mod:`seqjax.models`: a new family is one new file there (plus its ``configs/models/`` part),
with no list to edit.
"""

from __future__ import annotations

import importlib
import pkgutil

import seqjax.models

for _module in pkgutil.iter_modules(seqjax.models.__path__):
    importlib.import_module(f"seqjax.models.{_module.name}")
