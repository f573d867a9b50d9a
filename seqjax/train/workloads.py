"""Importing this module registers every workload; add new families' modules here."""

from seqjax.train import supervised  # noqa: F401  "supervised": backbone + head on a synthetic task
from seqjax.train import seq2seq  # noqa: F401  "seq2seq": encoder-decoder on a generated seq2seq task
