#!/usr/bin/env bash
# scripts/fetch-pdfium.sh [DEST]
# Installs libpdfium.so (PDFium chromium/8149) from the pinned PyPI wheel pypdfium2, checking the
# wheel's sha256. DEST defaults to vendor/pdfium in the repository, which docseek searches.
# Licences (PDFium BSD-3-Clause/Apache-2.0 and what it compiles in) are copied next to the library.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=${1:-$here/vendor/pdfium}
VER=5.15.2
case "$(uname -m)" in
  x86_64)
    PLAT=manylinux_2_17_x86_64
    WHL=pypdfium2-$VER-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
    SHA=dc31aea5b0fb9fefc9b537a65f4113980b2c40798445736a7e6565bc85161e37 ;;
  *)
    echo "fetch-pdfium: no pinned wheel for $(uname -m); install libpdfium.so yourself and set DOCSEEK_PDFIUM_LIB" >&2
    exit 1 ;;
esac
if [ -f "$DEST/libpdfium.so" ]; then
  echo "libpdfium already in $DEST"
  exit 0
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --platform "$PLAT" --python-version 3.11 --dest "$tmp" "pypdfium2==$VER"
echo "$SHA  $tmp/$WHL" | sha256sum -c --quiet
python3 -m zipfile -e "$tmp/$WHL" "$tmp/x"
mkdir -p "$DEST/licenses"
install -m 0755 "$tmp/x/pypdfium2_raw/libpdfium.so" "$DEST/libpdfium.so"
cp "$tmp/x/pypdfium2_raw/version.json" "$DEST/version.json" 2>/dev/null || true
cp -r "$tmp/x/pypdfium2-$VER.dist-info/licenses/." "$DEST/licenses/"
echo "libpdfium -> $DEST/libpdfium.so"
