"""User-facing errors: one line that names the problem and the fix; exit code 2 at the CLI."""


class UserError(ValueError):
    """Bad input from the user (config, file, shape, option). The CLI prints ``error: <message>`` and exits 2."""
