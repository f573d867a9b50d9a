"""Benchmarks: seqjax against Flax linen, PyTorch and the GEMM limit (``seqjax bench``).

* :mod:`~seqjax.benchmarks.timing` — interleaved, repeated timing; medians.
* :mod:`~seqjax.benchmarks.programs` — the timed programs (train step, forward) for every framework.
* :mod:`~seqjax.benchmarks.peers` — Flax linen and PyTorch (lazy, optional) peers.
* :mod:`~seqjax.benchmarks.gemm` — recurrent-matmul throughput against a GEMM chain of the same shape.
* :mod:`~seqjax.benchmarks.backbones` — ``tcn``, ``s4d``, ``mamba`` through the registry; Mamba's scan modes.
* :mod:`~seqjax.benchmarks.linear_recurrences` — ``lru``, ``hawk``, ``mingru``, ``minlstm``, ``s5``, ``mamba2`` at
  their study configs, each beside one alternative (associative scan; Mamba-1).
* :mod:`~seqjax.benchmarks.suite` — the shapes, the rows of the table, and its printing.
* :mod:`~seqjax.cli.bench` — the ``seqjax bench`` subcommand.
* :mod:`~seqjax.benchmarks.tuning` — the measurements behind the recurrent defaults.
* :mod:`~seqjax.benchmarks.memory` — compiled peak-memory helpers.
* :mod:`~seqjax.benchmarks.memory` — peak memory from XLA's compiled memory analysis.
"""
