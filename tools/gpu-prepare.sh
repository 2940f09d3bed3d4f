#!/usr/bin/env bash
# gpu-prepare.sh — build the CUDA configuration HERE (no device time spent compiling) so that
# tools/gpu-check.sh only runs it on the lent GPU machine. The device image has nvcc and cuBLAS
# but none of our apt dependencies (PCRE2, Jansson, utf8proc, Check), so the two GPU programs
# and their shared libraries are staged in build-gpu/stage (git-ignored; name it in the device
# call's `carry`). Built without OpenBLAS: its 40 MB library would not fit the 64 MiB that
# travels, and the CPU twins the GPU is checked against then use our own blocked kernels.
# Then, on the device: `tools/gpu-check.sh "$OUT"`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build-gpu"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DREASON_CUDA=ON \
    -DREASON_BUILD_TESTS=ON -DREASON_BUILD_EXAMPLES=OFF -DREASON_BLAS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
stage="$build/stage"
rm -rf "$stage" && mkdir -p "$stage/libs"
cp "$build/tests/test_backend_ops" "$build/kernels/gpu_bench" "$stage/"
# every non-system library they need (CUDA's come from the device's toolkit)
ldd "$stage/test_backend_ops" "$stage/gpu_bench" | awk '/=> \// {print $3}' | sort -u |
    grep -E 'jansson|pcre2|utf8proc|subunit|check|openblas' |
    while read -r lib; do cp -L "$lib" "$stage/libs/"; done
git -C "$root" describe --always --dirty >"$stage/commit"
echo "gpu-prepare: $(du -sh "$stage" | cut -f1) staged in build-gpu/stage for $(cat "$stage/commit");" \
    "carry build-gpu/stage"
