#!/usr/bin/env bash
# gpu-check.sh — the one prepared script for a lent GPU machine (H100/H200; nothing can be
# downloaded there). Builds with CUDA, runs every test (GPU rows run there instead of skipping),
# and prints the kernel timing table. Logs go to the folder given as argument (default: $OUT or
# ./gpu-logs). Must finish in under 6 minutes.
#
# State (issue "CUDA backend I", first pieces): kernels/ has element-wise ops, rmsnorm, rope and
# the decode GEMV (F32/F16/BF16/Q8_0/Q4_0/Q4_1/Q4_K/Q6_K), not yet wired into a backend. This script runs
# test_backend_ops (every kernel vs its CPU twin) first and on its own so its per-case lines land
# in the log, then the whole suite, then build-gpu/kernels/gpu_bench (the timing table). None of
# it has run on a GPU yet (docs/gpu-status.md).
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
logs="${1:-${OUT:-$root/gpu-logs}}"
mkdir -p "$logs"
cd "$root"

{
    echo "date: $(date -u +%FT%TZ)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
} | tee "$logs/device.txt"

cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DREASON_CUDA=ON >"$logs/configure.log" 2>&1 &&
    cmake --build build-gpu -j"$(nproc)" >"$logs/build.log" 2>&1
status=$?
if [ $status -ne 0 ]; then
    echo "gpu-check: build failed (see $logs/build.log)"
    tail -20 "$logs/build.log"
    exit 1
fi
timeout 60 build-gpu/tests/test_backend_ops >"$logs/backend_ops.log" 2>&1
ops_status=$?
echo "test_backend_ops: exit $ops_status ($(grep -c '^ok' "$logs/backend_ops.log") ok," \
    "$(grep -c '^FAIL' "$logs/backend_ops.log") FAIL)"
grep '^FAIL\|cuda:' "$logs/backend_ops.log" | head -40
tail -1 "$logs/backend_ops.log"

(cd build-gpu && timeout 240 ctest --output-on-failure -j"$(nproc)") >"$logs/ctest.log" 2>&1
status=$?
tail -5 "$logs/ctest.log"
echo
timeout 90 build-gpu/kernels/gpu_bench 2>&1 | tee "$logs/bench.md"
bench_status=${PIPESTATUS[0]}
echo "gpu_bench: exit $bench_status"
[ $ops_status -ne 0 ] && status=1
[ $bench_status -ne 0 ] && status=1
exit $status
