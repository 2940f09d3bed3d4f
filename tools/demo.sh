#!/usr/bin/env bash
# demo.sh — on a fresh machine: install dependencies, build, fetch the default model and ask it a
# reasoning question (the argument, or a default one) with reason-run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash tools/install-deps.sh
tools/fetch-model
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DREASON_BUILD_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" --target reason-run
question="${1:-A shop sells pencils at 3 for 45 cents. How much do 12 pencils cost, in cents?}"
exec ./build/examples/reason-run --show-thinking "$question"
