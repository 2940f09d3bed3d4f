#!/usr/bin/env bash
# gpu-check.sh — the one prepared script for a lent GPU machine (H100/H200; nothing can be
# downloaded there). Builds with CUDA, runs every test (GPU rows run there instead of skipping),
# and prints the kernel timing table. Logs go to the folder given as argument (default: $OUT or
# ./gpu-logs). Must finish in under 6 minutes.
#
# State: the CUDA backend is not written yet (issue "CUDA backend I"): kernels/ holds device
# discovery only, so this script proves the CUDA build and the device, runs the CPU suites, and
# has no kernel table to print yet.
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
(cd build-gpu && timeout 300 ctest --output-on-failure -j"$(nproc)") >"$logs/ctest.log" 2>&1
status=$?
tail -5 "$logs/ctest.log"
echo
echo "| op | shape | time | GB/s or TFLOP/s | % of copy bandwidth | % of cuBLAS |"
echo "|----|-------|------|-----------------|---------------------|-------------|"
echo "| (no CUDA kernels yet) | | | | | |"
exit $status
