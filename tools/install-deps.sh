#!/usr/bin/env bash
# install-deps.sh — everything a fresh Debian 12 machine needs to build, run and test libreason.
# Idempotent: packages already present are not fetched again.
set -euo pipefail

apt_packages=(build-essential cmake pkg-config libopenblas-dev check libsubunit-dev libpcre2-dev
              libutf8proc-dev libjansson-dev python3 python3-pip)
missing=()
for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: apt packages: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Python: the tests' independent references need only light packages (no torch here).
py_packages=(numpy pytest tokenizers)
need=()
for p in "${py_packages[@]}"; do
    python3 -c "import $p" 2>/dev/null || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "install-deps: pip packages: ${need[*]}"
    python3 -m pip install --quiet "${need[@]}"
fi
