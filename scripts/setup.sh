#!/usr/bin/env bash
# scripts/setup.sh [--test]
# One-time set-up of a fresh machine for docseek.
#   (no flag)  what running docseek needs: libpdfium (pinned, checksummed) in vendor/pdfium.
#   --test     also what the test suite needs: poppler-utils (pdftoppm/pdftotext, the reference
#              the rasterizer and the searchable PDF are checked against), and the test tools
#              listed in scripts/test-deps.sh.
# Needs: Python 3 with pip (PyPI reachable); for --test, apt-get (as root or through sudo).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$here/scripts/fetch-pdfium.sh"
if [ "${1:-}" = "--test" ]; then
  "$here/scripts/test-deps.sh"
fi
echo "docseek set-up done"
