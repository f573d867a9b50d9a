"""Importing this module registers every backbone family with :mod:`seqjax.models.registry`.

Each family's module calls ``register_backbone`` at import; add new families here.
"""

from seqjax.models import recurrent  # noqa: F401  rnn, lstm, gru
from seqjax.models import tcn  # noqa: F401  tcn
from seqjax.models import ssm  # noqa: F401  s4, s4d
from seqjax.models import mamba  # noqa: F401  mamba
from seqjax.models import transformer  # noqa: F401  transformer
