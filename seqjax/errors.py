"""User-facing errors: one line that names the problem and the fix; exit code 2 at the CLI."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user (config, file, shape, option). The CLI prints ``error: <message>`` and exits 2."""


def describe(error: BaseException, limit: int = 200) -> str:
    """``"<Type>: <first line of the message>"``, cut to ``limit`` characters, for one-line reports."""
    lines = str(error).splitlines()
    return f"{type(error).__name__}: {lines[0][:limit]}" if lines else type(error).__name__


class StreamingError(ValueError):
    """Raised when a layer that cannot run left to right is asked to stream."""
