#!/usr/bin/env bash
# CPU benchmarks on full-size random checkpoints (official names and shapes, random values),
# with the release build. Writes every figure to bench-results/cpu-<date>.txt.
#
#   scripts/bench-cpu.sh [--quick]
#
# REFBENCH=path/to/results.jsonl adds the ratios to the PyTorch reference measured in the same
# session (refbench's run_full.sh, or bench_ref.py decode/vision lines).
#
# Checkpoints (6.7 GB each, bf16) are written once to $DOCSEEK_BENCH_DIR (default
# ~/.cache/docseek/bench). --quick skips the slow large/gundam encoder modes.
set -euo pipefail
cd "$(dirname "$0")/.."
CKPT=${DOCSEEK_BENCH_DIR:-$HOME/.cache/docseek/bench}
QUICK=${1:-}
mkdir -p bench-results
OUT=bench-results/cpu-$(date -u +%Y%m%dT%H%MZ).txt

cargo build --release --bin docseek
BIN=target/release/docseek
for arch in ocr1 ocr2; do
  [ -f "$CKPT/$arch-full/model.safetensors" ] || "$BIN" dev random-checkpoint "$CKPT/$arch-full" --arch "$arch"
done

run() { echo "\$ docseek $*" | tee -a "$OUT"; /usr/bin/env time -f "  [wall %e s, max RSS %M KiB]" "$BIN" "$@" 2>&1 | tee -a "$OUT"; echo | tee -a "$OUT"; }

{ echo "# docseek CPU benchmarks $(date -u)"; echo "# $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"; git rev-parse --short HEAD; } | tee "$OUT"
run bench raster samples/en_tracemonkey_p1-3.pdf
if [ "$QUICK" = "--quick" ]; then MODES=tiny,base; else MODES=tiny,small,base,large,gundam; fi
REF=(); [ -n "${REFBENCH:-}" ] && REF=(--reference "$REFBENCH")
run bench encode --model "$CKPT/ocr1-full" --modes "$MODES" "${REF[@]}"
run bench encode --model "$CKPT/ocr1-full" --modes base,gundam --dtype bf16 "${REF[@]}"
run bench encode --model "$CKPT/ocr2-full" --modes base,gundam --dtype bf16
run bench decode --model "$CKPT/ocr1-full" --dtype f32 --prompt-tokens 903 --new-tokens 32 "${REF[@]}"
for q in none q8 q4; do
  run bench decode --model "$CKPT/ocr1-full" --dtype bf16 --quant "$q" --prompt-tokens 903 --new-tokens 32 "${REF[@]}"
done
run bench accuracy --model "$CKPT/ocr1-full"
run bench decode --model "$CKPT/ocr1-full" --dtype bf16 --prompt-tokens 903 --new-tokens 16 --batch 1,4,8,16
# The whole pipeline on one page (mode base: 273 image slots), 32 new tokens.
rm -rf bench-results/ocr-page
run ocr samples/en_tracemonkey_p1.pdf --model "$CKPT/ocr1-full" --mode base --max-new-tokens 32 \
    --format md,json --out bench-results/ocr-page
echo "figures in $OUT"
