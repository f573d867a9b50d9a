"""User-facing errors: one line that names the problem and the fix; exit code 2 at the CLI.

The checks below are the one way seqjax says "bad option", in one wording:

* :func:`check_choice` -- ``unknown bptt 'manual': choose one of 'fused', 'autodiff'``;
* :func:`check_range` / :func:`check_positive` -- ``dropout=1.5 is out of range: must be in [0, 1)``;
* :func:`checked` declares a dataclass field's :class:`Range` or choices next to the field, and
  :func:`field_problem` / :func:`check_fields` check a value (or a whole dataclass) against its
  declaration and its type annotation: ``int`` is an integer and not a bool, ``float`` a finite
  number, ``str`` a string, ``bool`` a bool, ``Optional[T]`` also ``None``, ``list[T]`` a non-empty
  list whose elements are each checked as ``T``.

>>> check_range("optim.b1", 1.5, 0, 1, hi_open=True, where="command line")
Traceback (most recent call last):
...
seqjax.errors.UserError: command line: optim.b1=1.5 is out of range: must be in [0, 1)
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import typing
from typing import Any, Iterable


class UserError(ValueError):
    """Bad input from the user (config, file, shape, option). The CLI prints ``error: <message>`` and exits 2."""


def describe(error: BaseException, limit: int = 200) -> str:
    """``"<Type>: <first line of the message>"``, cut to ``limit`` characters, for one-line reports."""
    lines = str(error).splitlines()
    return f"{type(error).__name__}: {lines[0][:limit]}" if lines else type(error).__name__


class StreamingError(ValueError):
    """Raised when a layer that cannot run left to right is asked to stream."""


def _prefixed(where: str, message: str) -> str:
    return f"{where}: {message}" if where else message


def did_you_mean(value: Any, allowed: Iterable[Any]) -> str:
    """`` (did you mean 'x'?)`` for the allowed value closest to ``value``, or ``""``."""
    close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def choice_problem(key: str, value: Any, allowed: Iterable[Any]) -> str | None:
    """The one-line complaint when ``value`` is not among ``allowed`` (``None`` when it is)."""
    allowed = tuple(allowed)
    if value in allowed:
        return None
    listed = ", ".join(map(repr, allowed)) or "(none)"
    hint = did_you_mean(value, allowed) if isinstance(value, str) else ""
    return f"unknown {key} {value!r}: choose one of {listed}{hint}"


def check_choice(key: str, value: Any, allowed: Iterable[Any], *, where: str = "") -> None:
    """Raise ``UserError("<where>: unknown <key> <value>: choose one of ...")`` unless ``value in allowed``.

    >>> check_choice("bptt", "manual", ("fused", "autodiff"), where="lstm")
    Traceback (most recent call last):
    ...
    seqjax.errors.UserError: lstm: unknown bptt 'manual': choose one of 'fused', 'autodiff'
    """
    problem = choice_problem(key, value, allowed)
    if problem:
        raise UserError(_prefixed(where, problem))


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 2**63 else f"{x:g}"


@dataclasses.dataclass(frozen=True)
class Range:
    """The numbers ``lo <= x <= hi`` (either bound may be absent or open); ``integer``: whole numbers only;
    ``even``: divisible by 2 as well.

    >>> str(Range(0, 1, hi_open=True)), str(Range(1, integer=True)), str(POSITIVE)
    ('in [0, 1)', 'a positive integer', 'positive (> 0)')
    """

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False
    even: bool = False

    def __str__(self) -> str:
        kind = "an even integer " if self.even else "an integer " if self.integer else ""
        if self.lo == 1 and not self.lo_open and self.integer and not self.even:
            return "a positive integer" + ("" if self.hi is None else f" <= {_number(self.hi)}")
        if self.lo is not None and self.hi is not None:
            left, right = "([" [not self.lo_open], ")]"[not self.hi_open]
            return f"{kind}in {left}{_number(self.lo)}, {_number(self.hi)}{right}"
        if self.lo is not None:
            if self.lo == 0 and self.lo_open and not kind:
                return "positive (> 0)"
            return f"{kind}{'>' if self.lo_open else '>='} {_number(self.lo)}"
        if self.hi is not None:
            return f"{kind}{'<' if self.hi_open else '<='} {_number(self.hi)}"
        return kind.strip() or "a finite number"

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not in this range (``None`` when it is)."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return "is not a number"
        if not math.isfinite(value):
            return "is not a finite number"
        if (self.integer or self.even) and value != int(value):
            return "is not an integer"
        below = self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo)
        above = self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi)
        if below or above:
            return f"is out of range: must be {self}"
        if self.even and int(value) % 2:
            return f"is invalid; it must be {self}"
        return None


POSITIVE = Range(0, lo_open=True)  # rates, scales, norms
COUNT = Range(1, integer=True)  # sizes, layers, steps
NON_NEGATIVE = Range(0)
UNIT = Range(0, 1)  # probabilities, fractions
DROPOUT = Range(0, 1, hi_open=True)


def check_range(key: str, value: Any, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                hi_open: bool = False, integer: bool = False, even: bool = False, where: str = "") -> None:
    """Raise ``UserError("<where>: <key>=<value> is out of range: must be ...")`` unless ``value`` is in range."""
    check_within(key, value, Range(lo, hi, lo_open, hi_open, integer, even), where=where)


def check_within(key: str, value: Any, allowed: Range, *, where: str = "") -> None:
    """:func:`check_range` with a :class:`Range` already built (``None`` passes: unset)."""
    problem = None if value is None else allowed.problem(value)
    if problem:
        raise UserError(_prefixed(where, f"{key}={value!r} {problem}"))


def check_positive(key: str, value: Any, *, integer: bool = False, where: str = "") -> None:
    """``value > 0`` (``integer``: ``value >= 1``, whole)."""
    check_within(key, value, COUNT if integer else POSITIVE, where=where)


def checked(default: Any = dataclasses.MISSING, within: Range | None = None, *, choices: Iterable[Any] | None = None,
            factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field whose allowed values are declared beside it (``factory``: a default factory).

    >>> @dataclasses.dataclass
    ... class Opts:
    ...     lr: float = checked(1e-3, POSITIVE)
    >>> field_problem("lr", dataclasses.fields(Opts)[0], float, -1.0)
    'lr=-1.0 is out of range: must be positive (> 0)'
    """
    metadata = {"within": within, "choices": None if choices is None else tuple(choices)}
    return dataclasses.field(default=default, default_factory=factory, metadata=metadata)


def _type_problem(hint: Any, value: Any) -> str | None:
    """Why ``value`` does not have the (scalar) type ``hint`` (``None`` when it does, or ``hint`` is not scalar)."""
    if hint is bool:
        return None if isinstance(value, bool) else "is not a boolean (true or false)"
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "is not an integer"
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return "is not a number"
        return None if math.isfinite(value) else "is not a finite number"
    if hint is str:
        return None if isinstance(value, str) else "is not a string"
    return None


def field_problem(key: str, field: dataclasses.Field, hint: Any, value: Any) -> str | None:
    """The one-line complaint (naming ``key``) when ``value`` breaks ``field``'s type ``hint`` or its
    :func:`checked` declaration; ``None`` when it is allowed.  A list's bad element is named by index
    (``model.hidden_sizes[1]=0 is out of range: ...``).
    """
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Union:
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
    within, choices = field.metadata.get("within"), field.metadata.get("choices")
    if typing.get_origin(hint) is list:
        if not isinstance(value, (list, tuple)):
            return f"{key}={value!r} is not a list"
        if not value:
            return f"{key}=[] is an empty list: give at least one value"
        for i, element in enumerate(value):
            problem = _type_problem(typing.get_args(hint)[0], element) or (within and within.problem(element))
            if problem:
                return f"{key}[{i}]={element!r} {problem}"
        return None
    problem = _type_problem(hint, value)
    if problem is None and choices is not None:
        return choice_problem(key, value, choices)
    if problem is None and within is not None:
        problem = within.problem(value)
    return f"{key}={value!r} {problem}" if problem else None


def check_fields(instance: Any, where: str = "") -> None:
    """Check every field of a dataclass instance against its type and :func:`checked` declaration."""
    hints = typing.get_type_hints(type(instance))
    for field in dataclasses.fields(instance):
        value = getattr(instance, field.name)
        problem = field_problem(field.name, field, hints[field.name], value)
        if problem:
            raise UserError(_prefixed(where, problem))
