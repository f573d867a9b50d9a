"""Importing this module registers every built-in task; add new task modules here."""

from seqjax.tasks import (  # noqa: F401
    adding,
    associative_recall,
    copy_memory,
    digits,
    induction,
    listops,
    mnist,
    selective_copy,
    seq2seq,  # noqa: F401  reverse, sort, addition, translate
)
