#!/usr/bin/env bash
# scripts/check-cuda.sh: compile-only check of the `cuda` feature for CI (no GPU needed).
# Installs the pinned CUDA 13.0 toolchain if missing (scripts/setup-cuda.sh, ~1.2 GB of PyPI
# wheels into vendor/cuda), then type-checks the whole workspace with `--features cuda`, tests
# included, in its own target folder (so the CPU build cache is untouched). nvcc runs for
# candle's kernels and ours (their PTX is embedded), so CUDA syntax errors fail here too.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
t0=$(date +%s)
[ -f vendor/cuda/env.sh ] || scripts/setup-cuda.sh >/dev/null
# shellcheck disable=SC1091
source vendor/cuda/env.sh
cargo check --workspace --all-targets --features cuda --target-dir "${DOCSEEK_CUDA_CHECK_TARGET:-target/cuda-check}"
echo "cuda feature check passed in $(($(date +%s) - t0)) s"
