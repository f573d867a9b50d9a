"""Importing this module registers every backbone family with :mod:`seqjax.models.registry`.

Each family's module calls ``register_backbone`` at import; add new families here.
"""

from seqjax.models import recurrent  # noqa: F401  rnn, lstm, gru
