#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one bounded script (each step has its own time limit):
#   1. the tests marked `cuda` (strategies, meta-learners, cost accounting on the device);
#   2. the quickstart through the CLI on the GPU with `cost: full` (NVML energy, per-task CUDA peak);
#   3. bench_meta's speed, evaluation and memory parts on the GPU (engine vs a bare per-task loop);
#   4. the whole suite with `device: auto` picking the GPU (unit + integration, Avalanche excluded),
#      one line per test as it finishes, failures' tracebacks at the end.
# Outputs go to $OUT (default gpu_out/). Usage: bash benchmarks/gpu_checks.sh; STEPS="3 4" for some.
set -u -o pipefail
OUT=${OUT:-gpu_out}
STEPS=${STEPS:-1 2 3 4}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=${PY:-python3}
step() { echo "== $1 ($(date +%T))"; [[ " $STEPS " == *" ${1%%.*} "* ]]; }

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  $PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(), 'cuda', torch.version.cuda)"
  nproc; } 2>&1 | tee "$OUT/device.txt"

if step "1. cuda tests"; then
  timeout 120 $PY -m pytest -q -p no:cacheprovider -m cuda -rs tests/unit 2>&1 | tee "$OUT/cuda_tests.log"
fi
if step "2. quickstart on the GPU, cost: full"; then
  timeout 120 $PY -m lifelong.cli run configs/quickstart.yaml cost=full --device cuda --out "$OUT/quickstart" 2>&1 \
    | tail -25
  tar czf "$OUT/quickstart.tgz" -C "$OUT" quickstart && rm -rf "$OUT/quickstart"
fi
if step "3. bench_meta on the GPU"; then
  timeout 100 $PY benchmarks/bench_meta.py --device cuda --parts speed evaluation memory --speed-iterations 40 \
    --json "$OUT/bench_meta.json" 2>&1 | grep -v "^USDT" | tee "$OUT/bench_meta.log"
fi
if step "4. the whole suite, device auto = GPU"; then
  timeout 230 $PY -m pytest -v -p no:cacheprovider -p no:benchmark -n 14 --timeout 60 --tb=short \
    -m "not avalanche" tests/unit tests/integration > "$OUT/suite.log" 2>&1
  grep -E "FAILED|ERROR|passed|failed" "$OUT/suite.log" | grep -v "^\[gw" | tail -40
fi
echo "== done ($(date +%T))"
