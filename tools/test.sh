#!/usr/bin/env bash
# test.sh — on a fresh machine: install dependencies, fetch the default model, build (with CUDA
# when nvcc is present, so the kernels always compile), and run every test: the Check suites
# through ctest, the same suites under ASan/UBSan, and the Python package's tests.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
jobs="$(nproc)"

bash tools/install-deps.sh
tools/fetch-model

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")

# Sanitizers: every suite again with AddressSanitizer and UndefinedBehaviorSanitizer. Allocations
# may fail with NULL (as malloc does) so that the out-of-memory tests see what the library sees.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DREASON_SANITIZE=address,undefined \
      -DREASON_CUDA=OFF -DREASON_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 ctest --output-on-failure -j"$jobs")

# Python package, against the library just built.
export REASON_LIBRARY="$root/build/libreason.so"
python3 -m pytest -q python/tests
