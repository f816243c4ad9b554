#!/usr/bin/env bash
# scripts/test-deps.sh: system packages the test suite uses (called by `scripts/setup.sh --test`).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# chromium: the web UI test (tests/server_ui.rs) drives Debian's Chromium headless.
APT_PACKAGES=(poppler-utils chromium)
# Node.js runs that test's playwright-core script; use the machine's if it has one.
command -v node >/dev/null 2>&1 || APT_PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(npm)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# playwright-core, pinned by tests/web/package-lock.json, into tests/web/node_modules (git-ignored);
# it drives /usr/bin/chromium and never downloads a browser of its own.
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$here/tests/web" --no-audit --no-fund --silent
