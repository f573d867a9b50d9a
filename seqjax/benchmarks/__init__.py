"""Benchmark helpers (measurement only; scripts live in experiments/benchmarks/)."""
