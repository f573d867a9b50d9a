"""Shared validation for task options."""

from __future__ import annotations

from seqjax.errors import UserError


def check_variant(task: str, variant: str, allowed: tuple[str, ...]) -> None:
    if variant not in allowed:
        raise UserError(f"unknown {task} variant {variant!r}: choose one of {', '.join(map(repr, allowed))}")


def check_seq_len(task: str, seq_len: int, minimum: int) -> None:
    if seq_len < minimum:
        raise UserError(f"{task}: seq_len={seq_len} is too short; it must be at least {minimum}")
