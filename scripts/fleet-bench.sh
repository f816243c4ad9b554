#!/usr/bin/env bash
# scripts/fleet-bench.sh: pages/s of a fleet with 1, 2 and 3 workers on one PostgreSQL + S3
# (a throwaway cluster and moto on 127.0.0.1, as in tests/fleet_pg.rs), with the fake engine
# at a fixed time per page (FLEET_TOKEN_DELAY_MS per token, about 25 tokens a page; default 8,
# so ~0.2 s a page) over FLEET_DOCS ten-page documents (default 12). Needs `scripts/setup.sh --test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo test --test fleet_pg fleet_throughput -- --ignored --nocapture 2>&1 | grep -E "workers=|speed-up"
