"""Importing this module registers every built-in task; add new task modules here."""

from seqjax.tasks import adding, copy_memory  # noqa: F401
