#!/usr/bin/env bash
# Quick start: builds tenantgate and runs the gateway, the worker and the demo
# upstream app against the local services. Ctrl-C stops all three.
#
# On first run it writes .env from .env.example with freshly generated secrets and
# APP_ENV=development, and creates the `tenantgate` database.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/ensure.sh
ensure_tools
ensure_services

if [ ! -f .env ]; then
    echo "==> writing .env with fresh secrets"
    sed -e "s|^APP_ENV=.*|APP_ENV=development|" \
        -e "s|^JWT_SECRET=.*|JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')|" \
        -e "s|^JWT_REFRESH_SECRET=.*|JWT_REFRESH_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')|" \
        -e "s|^MAIL_TRANSPORT=.*|MAIL_TRANSPORT=log|" \
        -e "s|^GATEWAY_COOKIE_SECURE=.*|GATEWAY_COOKIE_SECURE=false|" \
        .env.example > .env
fi
psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'tenantgate'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE tenantgate"

echo "==> building"
cargo build --workspace --bins

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
./target/debug/demo_upstream --listen 127.0.0.1:3000 & pids+=($!)
./target/debug/gateway migrate
./target/debug/worker & pids+=($!)
./target/debug/gateway & pids+=($!)
echo "==> gateway on http://127.0.0.1:8080 (admin :9090), worker admin :9091, demo app :3000"
wait -n "${pids[@]}"
