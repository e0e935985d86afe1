#!/usr/bin/env bash
# The GPU check of issue 23, for a machine with a CUDA device and the
# project installed (pip install -e ".[test,sparse]" with a CUDA torch):
# the CUDA tests, the half-precision and compile tests, then the benchmark
# suite's grid and cloud rows on the device.  A few minutes on one GPU;
# the tables go to $OUT (default: the current folder).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-.}
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())"
python -m pytest -q tests/test_cuda.py tests/test_half_precision.py \
    tests/test_compile.py 2>&1 | tee "$OUT/gpu_tests.txt"
python benchmarks/cuda_rows.py "$@" | tee "$OUT/cuda_rows.md"
