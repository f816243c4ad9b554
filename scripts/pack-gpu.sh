#!/usr/bin/env bash
# scripts/pack-gpu.sh [DEST]
# Builds here (no GPU needed) everything a GPU machine with a driver but no Rust needs to run
# scripts/gpu-smoke.sh and scripts/bench-gpu.sh, into one git-ignored folder (default gpu/):
#
#   gpu/docseek.xz          release binary, --features cuda (PTX for $CUDA_COMPUTE_CAP, default 90)
#   gpu/gpu_kernels.xz      the GPU kernel tests (kernels/tests/gpu_kernels.rs), release
#   gpu/libpdfium.so.xz     libpdfium (the 50-page OCR run renders PDFs)
#   gpu/fixtures/           the parity fixtures (../shared does not travel)
#   gpu/MANIFEST            what was built, from which commit, sizes and sha256
#
# Everything is xz-compressed (the binaries are mostly PTX text): the folder must stay under
# 64 MiB with the repository beside it. The device side unpacks into /tmp.
# Needs: scripts/setup.sh --cuda done (vendor/cuda), libpdfium (scripts/setup.sh), the fixtures
# at ../shared/fixtures (or $DOCSEEK_FIXTURES).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
DEST=${1:-gpu}
FIXTURES=${DOCSEEK_FIXTURES:-$here/../shared/fixtures}
TARGET_DIR=${DOCSEEK_CUDA_TARGET:-$here/target/cuda}
LIMIT_MIB=56

[ -f vendor/cuda/env.sh ] || scripts/setup-cuda.sh >/dev/null
# shellcheck disable=SC1091
source vendor/cuda/env.sh
[ -f vendor/pdfium/libpdfium.so ] || scripts/fetch-pdfium.sh
[ -f "$FIXTURES/README.md" ] || { echo "pack-gpu: no fixtures at $FIXTURES" >&2; exit 1; }

t0=$(date +%s)
cargo build --release --features cuda --target-dir "$TARGET_DIR" --bin docseek
# The kernel tests: the path of the test executable comes from cargo's JSON messages.
test_bin=$(cargo test --release --features cuda --target-dir "$TARGET_DIR" -p docseek-kernels --test gpu_kernels \
  --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "gpu_kernels":
        print(m["executable"])' | tail -1)
[ -x "$test_bin" ] || { echo "pack-gpu: gpu_kernels test binary not found" >&2; exit 1; }
t1=$(date +%s)

rm -rf "$DEST"
mkdir -p "$DEST"
strip -o "$DEST/docseek" "$TARGET_DIR/release/docseek"
strip -o "$DEST/gpu_kernels" "$test_bin"
cp vendor/pdfium/libpdfium.so "$DEST/libpdfium.so"
for f in docseek gpu_kernels libpdfium.so; do
  xz -T0 -6 -f "$DEST/$f"
done
mkdir -p "$DEST/fixtures"
cp -r "$FIXTURES"/. "$DEST/fixtures/"
rm -rf "$DEST/fixtures/.git"

{
  echo "built $(date -u +%FT%TZ) from $(git rev-parse --short HEAD)$(git diff --quiet || echo '+dirty') in $((t1 - t0)) s"
  echo "CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}; $(nvcc --version | tail -1)"
  (cd "$DEST" && find . -type f | sort | xargs sha256sum)
} >"$DEST/MANIFEST"
size=$(du -sm "$DEST" | cut -f1)
echo "packed $DEST: ${size} MiB (limit ${LIMIT_MIB} MiB beside the repository)"
du -sh "$DEST"/*
if [ "$size" -gt "$LIMIT_MIB" ]; then
  echo "pack-gpu: $DEST is ${size} MiB, over ${LIMIT_MIB} MiB" >&2
  exit 1
fi
