#!/usr/bin/env bash
# Downloads the lingua model crates named in lingua.tsv (crates.io, Apache-2.0) into the cargo
# registry (~280 MB unpacked), where examples/build-profiles.rs and examples/evaluate.rs find them.
# Nothing is copied into the repository: only the model derived from them (profiles.bin).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src"
echo 'fn main() {}' > "$tmp/src/main.rs"
{
  printf '[package]\nname = "lingua-data-fetch"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n\n[dependencies]\n'
  grep -v '^#' "$here/lingua.tsv" | tail -n +2 | cut -f1 | sort -u | while read -r lang; do
    printf 'lingua-%s-language-model = "=1.3.0"\n' "$lang"
  done
} > "$tmp/Cargo.toml"
cargo fetch --manifest-path "$tmp/Cargo.toml"
echo "lingua model crates are in ${CARGO_HOME:-$HOME/.cargo}/registry/src/"
