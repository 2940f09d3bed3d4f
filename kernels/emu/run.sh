#!/usr/bin/env bash
# run.sh [BUILD_DIR] — tests/test_backend_ops against the kernels run by the CPU emulator (emu.h):
# every kernels/*.cu rewritten to C++ (rewrite.py), compiled with g++, linked with the library
# objects and the test object of a REASON_CUDA=ON build (default build-cuda, built first).
# A check of the kernels' logic and of backend_cuda.c on a machine without a GPU; slow (every
# CUDA thread is a coroutine; about 9 minutes on 2 cores for every section). REASON_OPS=gemm,
# decode,deltanet,moe,model,... picks sections of the test (tests/test_backend_ops.c, want()).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-$root/build-cuda}"
out="$build/emu"
mkdir -p "$out"
cmake --build "$build" --target reason_static test_backend_ops -j2 >/dev/null
objs=()
for cu in "$root"/kernels/*.cu; do
    name=$(basename "$cu" .cu)
    [ "$name" = device ] && continue
    python3 "$root/kernels/emu/rewrite.py" "$cu" "$out/$name.cpp"
    g++ -std=c++20 -O2 -g -w -I"$root/kernels/emu" -I"$root/kernels" -include "$root/kernels/emu/emu.h" \
        -c "$out/$name.cpp" -o "$out/$name.o" &
    objs+=("$out/$name.o")
done
g++ -std=c++20 -O2 -g -I"$root/kernels/emu" -I"$root/kernels" -c "$root/kernels/emu/emu.cpp" -o "$out/emu_rt.o"
wait
lib_objs=$(ls "$build"/CMakeFiles/reason_objects.dir/src/*.o)
g++ -o "$out/test_backend_ops_emu" "$build"/tests/CMakeFiles/test_backend_ops.dir/test_backend_ops.c.o \
    $lib_objs "${objs[@]}" "$out/emu_rt.o" \
    $(pkg-config --libs check libpcre2-8 jansson) -lutf8proc -lopenblas -lm -lpthread
cd "$root"
REASON_TEST_DATA="$root/tests/data" stdbuf -oL "$out/test_backend_ops_emu"
