"""Importing this module registers every workload; add new families' modules here."""

from seqjax.train import supervised  # noqa: F401  "supervised": backbone + head on a synthetic task
