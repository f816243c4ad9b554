#!/usr/bin/env bash
# scripts/gpu-smoke.sh: a ~3-minute first look on a GPU machine (driver + Python with the CUDA 13
# wheels, no Rust), run from the repository root with the pack of scripts/pack-gpu.sh in gpu/:
#   1. the GPU kernel tests (every kernel against its CPU reference, fresh random inputs);
#   2. docseek parity on the fixtures on cuda: f32 and bf16 with the kernels, f32 without;
#   3. the full-size random checkpoint (kept in /tmp for bench-gpu.sh when the machine stays warm)
#      and a batch-1 decode bench (bf16), kernels on / off / FP8.
# Writes $OUT/smoke-log.txt (everything), $OUT/smoke-steps.txt; prints a table last.
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/gpu-env.sh
source scripts/gpu-env.sh || exit 1
DEADLINE=$(($(date +%s) + ${SMOKE_BUDGET_S:-200}))
LOG=$RESULTS/smoke-log.txt
STEPS=$RESULTS/smoke-steps.txt
: >"$LOG"
: >"$STEPS"
CK=/tmp/docseek-ckpt/ocr1-full

step kernel-tests 150 "$GPU_TESTS" --test-threads 4
grep -E "test result|FAILED|panicked|max \|diff\|" "$LOG" | tail -40
for dt in f32 bf16; do
  step "parity-$dt-cuda" 90 "$DOCSEEK" parity "$FIXTURES" --device cuda --dtype "$dt"
  grep -E "^[0-9]+ passed" "$LOG" | tail -1
done
DOCSEEK_KERNELS=off step parity-f32-cuda-generic 90 "$DOCSEEK" parity "$FIXTURES" --device cuda --dtype f32
grep -E "^[0-9]+ passed" "$LOG" | tail -1
grep -E "^FAIL|failed:|\bFAIL\b" "$LOG" | head -20

if [ ! -f "$CK/.complete" ]; then
  rm -rf "$CK"
  step random-checkpoint-ocr1 150 "$DOCSEEK" dev random-checkpoint "$CK" --arch ocr1 && touch "$CK/.complete"
fi
for variant in on off fp8; do
  case $variant in
    on) envs=() ;;
    off) envs=(DOCSEEK_KERNELS=off) ;;
    fp8) envs=(DOCSEEK_FP8=1) ;;
  esac
  step "decode-b1-bf16-kernels-$variant" 120 env "${envs[@]}" "$DOCSEEK" bench decode --model "$CK" --device cuda \
    --dtype bf16 --prompt-tokens 903 --new-tokens 32
  grep -E "^  (prefill|decode|decode roofline|weights) " "$LOG" | tail -4
done
echo
echo "== steps (rc 0 = ok)"
cat "$STEPS"
