"""seqjax.experiment.schema."""

from __future__ import annotations

import dataclasses
from typing import Any

from omegaconf import DictConfig, OmegaConf


def with_name(options: type, name: str, extra: tuple = ()) -> type:
    """``options`` extended with a ``name`` field (default ``name``) and ``extra`` (name, type, field)."""
    fields = [("name", str, dataclasses.field(default=name)), *extra]
    return dataclasses.make_dataclass(f"{options.__name__}Config", fields, bases=(options,))


def options_of(section: Any, options: type) -> Any:
    """The ``options`` dataclass instance holding the matching keys of a config section."""
    values = OmegaConf.to_container(section, resolve=True) if isinstance(section, DictConfig) else section
    return options(**{f.name: values[f.name] for f in dataclasses.fields(options) if f.name in values})
