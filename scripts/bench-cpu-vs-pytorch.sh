#!/usr/bin/env bash
# The CPU figures of issue #18 in one session: the official PyTorch reference (refbench, bf16,
# oneDNN) and docseek (release build) timed back to back on the same machine, same prompt
# length and same page, so the ratios docseek prints (--reference) compare like with like.
#
#   REFBENCH_DIR=/path/to/refbench DOCSEEK_BIN=target/release/docseek CKPT=/path/to/ocr1-full \
#     scripts/bench-cpu-vs-pytorch.sh
#
# REFBENCH_DIR: a copy of ../shared/refbench with its venv set up (see its README);
# CKPT: a full-size random OCR-1 checkpoint (`docseek dev random-checkpoint DIR --arch ocr1`).
# Writes bench-results/cpu-vs-pytorch-<stamp>.txt and the reference's JSON lines beside it.
# Takes about 15 minutes on 2 cores; run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${REFBENCH_DIR:?set REFBENCH_DIR to a refbench folder with its venv}"
: "${CKPT:?set CKPT to a full-size random OCR-1 checkpoint folder}"
BIN=${DOCSEEK_BIN:-target/release/docseek}
THREADS=${THREADS:-$(nproc)}
[ -x "$BIN" ] || cargo build --release --bin docseek
mkdir -p bench-results
STAMP=$(date -u +%Y%m%dT%H%MZ)
OUT=$PWD/bench-results/cpu-vs-pytorch-$STAMP.txt
REF=$PWD/bench-results/pytorch-$STAMP.jsonl
PAGE=$REFBENCH_DIR/page_a4_synthetic.png
PY=$REFBENCH_DIR/venv/bin/python
say() { echo "$*" | tee -a "$OUT"; }
run() { say "\$ docseek $*"; /usr/bin/env time -f "  [wall %e s, max RSS %M KiB]" "$BIN" "$@" 2>&1 | tee -a "$OUT"; say ""; }

say "# docseek vs PyTorch on the CPU, $(date -u), $(nproc) CPUs,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
say "# docseek $("$BIN" --version) at $(git rev-parse --short HEAD); load: $(cut -d' ' -f1-3 /proc/loadavg)"
(cd "$REFBENCH_DIR" && { [ -f "$PAGE" ] || "$PY" bench_ref.py vision --save-page "$PAGE" --page-only; })
say "\$ refbench decode bf16, 903-token prefill, 32 tokens; vision bf16 gundam"
(cd "$REFBENCH_DIR" && "$PY" bench_ref.py decode --dtype bf16 --threads "$THREADS" --prompt-len 903 --gen 32 \
  --prefill-logits last >>"$REF" 2>>"$OUT.ref.log")
(cd "$REFBENCH_DIR" && "$PY" bench_ref.py vision --dtype bf16 --threads "$THREADS" --mode gundam --image "$PAGE" \
  >>"$REF" 2>>"$OUT.ref.log")
cat "$REF" | tee -a "$OUT"
say ""
for q in none q8 q4; do
  run bench decode --model "$CKPT" --device cpu --dtype bf16 --quant "$q" --prompt-tokens 903 --new-tokens 32 --reference "$REF"
done
run bench decode --model "$CKPT" --device cpu --dtype f32 --prompt-tokens 903 --new-tokens 32 --reference "$REF"
run bench encode --model "$CKPT" --device cpu --dtype bf16 --modes base,gundam --image "$PAGE" --reference "$REF"
run bench decode --model "$CKPT" --device cpu --dtype bf16 --prompt-tokens 903 --new-tokens 16 --batch 1,4,8,16
run bench accuracy --model "$CKPT"
say "figures in $OUT"
