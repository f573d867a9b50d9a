"""Shared validation for task options (the wording is :mod:`seqjax.errors`')."""

from __future__ import annotations

from seqjax.errors import check_choice, check_range


def check_variant(task: str, variant: str, allowed: tuple[str, ...]) -> None:
    check_choice(f"{task} variant", variant, allowed)


def check_seq_len(task: str, seq_len: int, minimum: int) -> None:
    check_range("seq_len", seq_len, minimum, integer=True, where=task)
