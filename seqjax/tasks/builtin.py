"""Importing this module registers every built-in task; add new task modules here."""

from seqjax.tasks import adding, associative_recall, copy_memory, induction, selective_copy  # noqa: F401
from seqjax.tasks import seq2seq  # noqa: F401  reverse, sort, addition, translate
