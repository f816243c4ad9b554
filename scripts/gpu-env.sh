# scripts/gpu-env.sh: sourced by gpu-smoke.sh and bench-gpu.sh on a GPU machine that has a
# driver and a Python environment with NVIDIA's CUDA 13 wheels (PyTorch cu130), but no Rust.
# Unpacks the pack that scripts/pack-gpu.sh built into $BIN, points LD_LIBRARY_PATH at the
# CUDA runtime libraries the binary links (cudart 13, cuBLAS 13, cuRAND 10), checks that every
# library resolves, and sets $DOCSEEK, $GPU_TESTS, $FIXTURES and $RESULTS.
# shellcheck shell=bash

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PACK=${DOCSEEK_GPU_PACK:-$here/gpu}
BIN=${DOCSEEK_GPU_BIN:-/tmp/docseek-gpu}
RESULTS=${OUT:-$here/bench-results/gpu}
mkdir -p "$BIN" "$RESULTS"
[ -f "$PACK/docseek.xz" ] || { echo "gpu-env: no pack at $PACK (run scripts/pack-gpu.sh and carry gpu/)" >&2; return 1; }
for f in docseek gpu_kernels libpdfium.so; do
  if [ -f "$PACK/$f.xz" ] && [ ! -s "$BIN/$f" ]; then
    xz -dc "$PACK/$f.xz" >"$BIN/$f"
    chmod +x "$BIN/$f"
  fi
done
DOCSEEK=$BIN/docseek
GPU_TESTS=$BIN/gpu_kernels
FIXTURES=$PACK/fixtures
export DOCSEEK_PDFIUM_LIB=$BIN/libpdfium.so

# Folders of the pip wheels' CUDA libraries (nvidia/cu13/lib for CUDA 13, nvidia/*/lib before).
cuda_lib_dirs() {
  python3 - <<'EOF'
import glob, os, site, sys
roots = []
for r in list(site.getsitepackages()) + [site.getusersitepackages()] + sys.path:
    if r and os.path.isdir(os.path.join(r, "nvidia")) and r not in roots:
        roots.append(r)
want = ["libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10"]
found = {}
for r in roots:
    for w in want:
        for p in sorted(glob.glob(os.path.join(r, "nvidia", "**", w + "*"), recursive=True)):
            found.setdefault(w, os.path.dirname(p))
for w in want:
    if w not in found:
        print("gpu-env: %s not found under %s" % (w, roots), file=sys.stderr)
print(":".join(dict.fromkeys(found.values())))
EOF
}
libs=$(cuda_lib_dirs)
extra=""
for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/local/cuda/lib64 /usr/lib/x86_64-linux-gnu; do
  [ -d "$d" ] && extra="$extra:$d"
done
export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}${extra}"
missing=$(ldd "$DOCSEEK" | grep "not found" || true)
if [ -n "$missing" ]; then
  echo "gpu-env: unresolved libraries (LD_LIBRARY_PATH=$LD_LIBRARY_PATH):" >&2
  echo "$missing" >&2
  return 1
fi
echo "gpu-env: LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
ldd "$DOCSEEK" | grep -E "libcuda|libcudart|libcublas|libcurand" | sed 's/^/gpu-env:   /'
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv,noheader 2>/dev/null | sed 's/^/gpu-env: /' || true
"$DOCSEEK" --version

# Peak GPU memory: sample nvidia-smi every 200 ms in the background while a step runs.
gpu_mem_watch_start() {
  (nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 2>/dev/null >"$BIN/mem.$1") &
  echo $! >"$BIN/mem.pid"
}
gpu_mem_watch_stop() {
  kill "$(cat "$BIN/mem.pid")" 2>/dev/null || true
  wait "$(cat "$BIN/mem.pid")" 2>/dev/null || true
  sort -n "$BIN/mem.$1" 2>/dev/null | tail -1
}

# step NAME LIMIT_S CMD...: runs CMD with a time limit, its output appended to $LOG, and
# records "NAME rc seconds" in $STEPS (and on stdout). Returns CMD's status.
# With $DEADLINE (epoch seconds) set, a step's limit is cut to the time left, and a step with
# under 15 s left is skipped (rc 125), so the whole script ends in time.
step() {
  local name=$1 limit=$2
  shift 2
  if [ -n "${DEADLINE:-}" ]; then
    local left=$((DEADLINE - $(date +%s)))
    if [ "$left" -lt 15 ]; then
      printf '%-34s rc=%-4s %7.1fs (skipped: out of time)\n' "$name" 125 0 | tee -a "$STEPS"
      return 125
    fi
    [ "$left" -lt "$limit" ] && limit=$left
  fi
  echo "== $name: $*" >>"$LOG"
  local t0 t1 rc
  t0=$(date +%s.%N)
  timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  printf "%-34s rc=%-4s %7.1fs\n" "$name" "$rc" "$(awk "BEGIN{print $t1 - $t0}")" | tee -a "$STEPS"
  return $rc
}
