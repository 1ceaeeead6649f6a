#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every unit and
# integration test against the local Postgres, Redis and RabbitMQ (started here
# if they are down), then bounded fuzzing of edge/. Works from a fresh clone on a
# fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/ensure.sh
ensure_tools
ensure_e2e_tools
ensure_services

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# deploy/: Prometheus config and alerts (with their unit tests), dashboard, units.
./scripts/check-deploy.sh
# The declared rust-version holds for every locked dependency (no build; see make msrv).
./scripts/msrv.sh
echo "==> cargo test"
cargo test --workspace --locked "$@"
# The request-reading parsers, fuzzed for a bounded time (30 s per target).
./scripts/fuzz.sh
