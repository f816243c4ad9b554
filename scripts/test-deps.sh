#!/usr/bin/env bash
# scripts/test-deps.sh: system packages the test suite uses (called by `scripts/setup.sh --test`).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# chromium: the web UI test (tests/server_ui.rs) drives Debian's Chromium headless.
# postgresql: the fleet tests (tests/fleet_pg.rs) make a throwaway cluster with its initdb/pg_ctl.
# python3-venv: moto, the S3-compatible test server, is installed into its own venv below.
APT_PACKAGES=(poppler-utils chromium postgresql python3-venv)
# Node.js runs that test's playwright-core script; use the machine's if it has one.
command -v node >/dev/null 2>&1 || APT_PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(npm)
missing=()
# A Python from outside Debian (pyenv, a venv) brings its own venv module.
if python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  APT_PACKAGES=("${APT_PACKAGES[@]/python3-venv}")
fi
for p in "${APT_PACKAGES[@]}"; do
  [ -n "$p" ] || continue
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
# PostgreSQL refuses to run as root: when tests run as root (CI does), their clusters run as
# this dedicated system user (tests/fleet_support runs initdb/pg_ctl through runuser).
if [ "$(id -u)" -eq 0 ] && ! id -u docseek-pg >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin docseek-pg
fi
# moto in server mode: a real S3-compatible server for the fleet tests, pinned, in its own venv
# under vendor/ (git-ignored), bound to 127.0.0.1 by the tests.
MOTO_VERSION=5.2.1
if ! "$here/vendor/moto/bin/python" -c "import moto, flask; assert moto.__version__ == '$MOTO_VERSION'" >/dev/null 2>&1; then
  python3 -m venv "$here/vendor/moto"
  "$here/vendor/moto/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi
