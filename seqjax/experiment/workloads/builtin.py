"""Importing this module registers every workload; add new families' modules here."""

from __future__ import annotations

from seqjax.experiment.workloads import (
    seq2seq,  # noqa: F401  "seq2seq": encoder-decoder on a generated seq2seq task
    supervised,  # noqa: F401  "supervised": backbone + head on a synthetic task
)


