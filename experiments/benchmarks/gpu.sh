#!/usr/bin/env bash
# The GPU benchmark of issue 19 (experiments/benchmarks/gpu.py), as one command for a lent device's session:
# it prints the device and the versions, then runs gpu.py under an 8-minute limit, writing gpu.json and gpu.md to
# $OUT/gpu (the device tool's output folder; runs/gpu here).  Extra arguments go to gpu.py: --quick is its CPU
# dry run (tiny shapes), which the test suite runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-runs}/gpu"
if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
fi
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # PyTorch's cuDNN peers share the device with JAX
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
timeout 480 python experiments/benchmarks/gpu.py --out "$out" "$@"
