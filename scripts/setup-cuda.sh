#!/usr/bin/env bash
# scripts/setup-cuda.sh  (also: scripts/setup.sh --cuda)
# Installs the pinned CUDA 13.0 toolchain from PyPI wheels into a venv under vendor/cuda, so that
# `cargo build --release --features cuda` works on any x86-64 Linux machine with Python 3 + pip,
# GPU or not. Prints the environment to use (also written to vendor/cuda/env.sh).
#
# - CUDA 13.0.x, not newer: the PTX it emits must not be newer than what driver 580 accepts.
# - The wheels ship only versioned libraries; the linker wants unversioned names, so symlinks
#   `libcudart.so` etc. are added in <cu13>/lib.
# - libcuda (the driver) is on no registry: a link-time stub whose every entry point returns
#   CUDA_ERROR_STUB_LIBRARY (34) goes into <cu13>/lib/stubs. It is for linking only; never put that
#   folder on LD_LIBRARY_PATH of a machine with a GPU (the driver provides the real libcuda.so.1).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=${DOCSEEK_CUDA_DIR:-$here/vendor/cuda}

# Pinned set (verified together: nvcc --version = 13.0, V13.0.88).
WHEELS=(
  nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-cccl==13.0.85
  nvidia-cuda-runtime==13.0.96 nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35 nvidia-cuda-nvrtc==13.0.88
)
# cudarc version whose driver bindings name the stub's entry points (the workspace pin).
CUDARC_GLOB="cudarc-0.19.*"

if [ "$(uname -m)" != x86_64 ]; then
  echo "setup-cuda: only x86_64 is pinned here" >&2
  exit 1
fi
if [ ! -x "$DEST/bin/python3" ]; then
  python3 -m venv "$DEST"
fi
cu13() { "$DEST/bin/python3" - <<'EOF'
import pathlib, sysconfig
print(pathlib.Path(sysconfig.get_paths()["purelib"]) / "nvidia" / "cu13")
EOF
}
C=$(cu13)
if [ ! -x "$C/bin/nvcc" ] || ! "$C/bin/nvcc" --version | grep -q "release 13.0"; then
  "$DEST/bin/python3" -m pip install --quiet --disable-pip-version-check --no-deps --only-binary=:all: "${WHEELS[@]}"
fi
[ -x "$C/bin/nvcc" ] || { echo "setup-cuda: nvcc missing in $C after install" >&2; exit 1; }
# nvcc.profile expects include/cccl beside the other headers.
if [ -d "$C/include" ] && [ ! -e "$C/include/cccl" ] && [ -d "$C/cccl" ]; then
  ln -sfn ../cccl "$C/include/cccl"
fi
(
  cd "$C/lib"
  for f in lib*.so.*; do
    b=${f%%.so.*}
    [ -e "$b.so" ] || ln -s "$f" "$b.so"
  done
)

# The driver stub: every cu* entry point that cudarc's bindings or cuda.h name.
# cudarc's sources (an optional dependency, already in Cargo.lock) list the entry points it links.
if command -v cargo >/dev/null; then
  cargo fetch --quiet --manifest-path "$here/Cargo.toml" || echo "setup-cuda: cargo fetch failed; stub from cuda.h only" >&2
fi
mkdir -p "$C/lib/stubs"
(
  names=$(mktemp); trap 'rm -f "$names"' EXIT
  grep -ohE '\bcu[A-Z][A-Za-z0-9_]*\b' "$C/include/cuda.h" >"$names"
  for d in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/$CUDARC_GLOB/src/driver/sys; do
    [ -d "$d" ] && grep -rohE '\bcu[A-Z][A-Za-z0-9_]*\b' "$d" >>"$names"
  done
  {
    echo "/* Link-time stub for libcuda.so.1: every entry point returns CUDA_ERROR_STUB_LIBRARY (34). */"
    sort -u "$names" | sed 's/.*/int &(void) { return 34; }/'
  } >"$C/lib/stubs/libcuda_stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$C/lib/stubs/libcuda.so" "$C/lib/stubs/libcuda_stub.c"
  ln -sfn libcuda.so "$C/lib/stubs/libcuda.so.1"
)

cat >"$DEST/env.sh" <<EOF
# Source this before \`cargo build --features cuda\` (written by scripts/setup-cuda.sh).
export CUDA_ROOT="$C" CUDA_HOME="$C" CUDA_PATH="$C"
export PATH="$C/bin:\$PATH"
export CUDA_COMPUTE_CAP=\${CUDA_COMPUTE_CAP:-90}
export CUDARC_CUDA_VERSION=13000
# Link path: the toolkit's libraries and the driver stub (link time only).
export LIBRARY_PATH="$C/lib:$C/lib/stubs\${LIBRARY_PATH:+:\$LIBRARY_PATH}"
# To run a cuda build here (no GPU: it starts, finds no device and says so):
#   LD_LIBRARY_PATH=$C/lib:$C/lib/stubs target/release/docseek --version
EOF
"$C/bin/nvcc" --version | tail -2
echo "CUDA toolchain in $C"
echo "use it with:  source $DEST/env.sh"
cat "$DEST/env.sh"
