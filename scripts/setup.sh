#!/usr/bin/env bash
# scripts/setup.sh [--test] [--cuda]
# One-time set-up of a fresh machine for docseek.
#   (no flag)  what running docseek needs: libpdfium (pinned, checksummed) in vendor/pdfium.
#   --test     also what the test suite needs: poppler-utils (pdftoppm/pdftotext, the reference
#              the rasterizer and the searchable PDF are checked against), and the test tools
#              listed in scripts/test-deps.sh.
#   --cuda     also the CUDA 13.0 toolchain for `cargo build --features cuda` (PyPI wheels into
#              vendor/cuda, ~1.2 GB; scripts/setup-cuda.sh), then prints the environment to use.
# Needs: Python 3 with pip (PyPI reachable); for --test, apt-get (as root or through sudo).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$here/scripts/fetch-pdfium.sh"
for arg in "$@"; do
  case "$arg" in
    --test) "$here/scripts/test-deps.sh" ;;
    --cuda) "$here/scripts/setup-cuda.sh" ;;
    *) echo "setup.sh: unknown option $arg (--test, --cuda)" >&2; exit 2 ;;
  esac
done
echo "docseek set-up done"
