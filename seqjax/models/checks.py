"""One-line validation of backbone options (called from the options dataclasses' ``__post_init__``)."""

from __future__ import annotations

from typing import Any, Iterable

from seqjax.errors import UserError


def check_choice(model: str, key: str, value: Any, allowed: Iterable[Any]) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise UserError(f"{model}: unknown {key} {value!r}: choose one of {', '.join(map(repr, allowed))}")


def check_at_least(model: str, key: str, value: int | None, minimum: int, *, even: bool = False) -> None:
    """``value >= minimum`` (``None`` passes: unset); with ``even``, also divisible by 2."""
    if value is None:
        return
    if value < minimum or (even and value % 2):
        kind = "an even integer" if even else "an integer"
        raise UserError(f"{model}: {key}={value} is invalid; it must be {kind} >= {minimum}")
