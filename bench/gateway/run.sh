#!/usr/bin/env bash
# Gateway load benchmark, in one go on this machine:
#   1. the demo upstream, hit directly;
#   2. a bare Pingora proxy (no auth) in front of it;
#   3. the gateway in front of it, full auth path (JWT + tenant by header + role
#      check) with a warm cache.
# Same upstream, same wrk settings, same run. Prints requests/s, the ratio
# gateway/bare, and the cache counters before and after the gateway run (Redis and
# Postgres lookups must not move once warm).
#
# Usage: bench/gateway/run.sh [seconds] [connections]    (defaults 15, 32)
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/ensure.sh
ensure_tools
ensure_services
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }

DURATION=${1:-15}
CONNS=${2:-32}
THREADS=1            # proxy worker threads for both proxies: same budget each
UP=127.0.0.1:3900 BARE=127.0.0.1:8181 GW=127.0.0.1:8180 ADMIN=127.0.0.1:9190
DB=tg_bench_$$
OUT=bench/results; mkdir -p "$OUT"
WORK=$(mktemp -d)
pids=()
cleanup() {
    kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    # The gateway's outbox relay declared this run's queues; remove them.
    for q in $(rabbitmqctl list_queues -q name 2>/dev/null | grep "^tgbench$$\." || true); do
        rabbitmqctl delete_queue -q "$q" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "==> building (release)"
cargo build --release -q -p tenantgate-gateway --bin gateway --bin demo_upstream --example bare_proxy

./target/release/demo_upstream --fixed --listen $UP >/dev/null 2>&1 & pids+=($!)
./target/release/examples/bare_proxy $BARE $UP $THREADS >/dev/null 2>&1 & pids+=($!)

psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $DB"
cat > "$WORK/routes.toml" <<TOML
[[route]]
name = "bench"
path_prefix = "/"
upstreams = ["$UP"]
auth = "required"
tenant = "required"
tenant_from = ["header"]
min_role = "member"
TOML
env -i PATH="$PATH" APP_ENV=production \
    JWT_SECRET=bench-access-secret-0123456789abcdef0123456789 \
    JWT_REFRESH_SECRET=bench-refresh-secret-0123456789abcdef01234567 \
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB REDIS_KEY_PREFIX="tgbench$$:" QUEUE_PREFIX="tgbench$$." \
    GATEWAY_LISTEN=$GW GATEWAY_ADMIN_LISTEN=$ADMIN GATEWAY_ROUTES="$WORK" GATEWAY_THREADS=$THREADS \
    LOG_LEVEL=warn TENANTGATE_CONFIG=/nonexistent \
    ./target/release/gateway >"$WORK/gateway.log" 2>&1 & pids+=($!)

for _ in $(seq 1 100); do curl -sf "http://$ADMIN/readyz" >/dev/null && break; sleep 0.1; done
REG=$(curl -sf "http://$GW/auth/register" -H 'content-type: application/json' \
    -d '{"email":"bench@example.test","password":"benchmark password","name":"Bench"}')
TOKEN=$(sed -E 's/.*"accessToken":"([^"]+)".*/\1/' <<<"$REG")
TENANT=$(sed -E 's/.*"tenants":\[\{"id":"([^"]+)".*/\1/' <<<"$REG")
curl -sf "http://$GW/x" -H "authorization: Bearer $TOKEN" -H "x-tenant-id: $TENANT" >/dev/null   # warm the cache

lookups() { curl -s "http://$ADMIN/metrics" | grep '^tenantgate_cache_lookups_total' | grep -v 'tier="l1"' | sort; }
run() { # name url [headers...]
    local name=$1 url=$2; shift 2
    local args=(); for h in "$@"; do args+=(-H "$h"); done
    wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "${args[@]}" "$url" >"$WORK/$name.txt"
    local rps p50 p99
    rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/$name.txt")
    p50=$(awk '$1=="50%" {print $2}' "$WORK/$name.txt")
    p99=$(awk '$1=="99%" {print $2}' "$WORK/$name.txt")
    printf '%-28s %12s req/s   p50 %-9s p99 %s\n' "$name" "$rps" "$p50" "$p99"
    echo "$rps" >"$WORK/$name.rps"
}

echo "==> wrk -t1 -c$CONNS -d${DURATION}s, proxies with $THREADS worker thread(s), $(nproc) cores"
# Every run sends the same request headers; the upstream answers a fixed body.
AUTH="authorization: Bearer $TOKEN"; TEN="x-tenant-id: $TENANT"
run "upstream direct" "http://$UP/x" "$AUTH" "$TEN"
run "bare pingora proxy" "http://$BARE/x" "$AUTH" "$TEN"
before=$(lookups)
run "gateway (auth, warm cache)" "http://$GW/x" "$AUTH" "$TEN"
after=$(lookups)
non200=$(curl -s "http://$ADMIN/metrics" | grep '^tenantgate_http_requests_total' | grep -v 'status="200"' | grep 'route="bench"' || true)

ratio=$(awk -v g="$(cat "$WORK/gateway (auth, warm cache).rps")" -v b="$(cat "$WORK/bare pingora proxy.rps")" 'BEGIN {printf "%.2f", g/b}')
echo "==> gateway / bare proxy = ${ratio}x"
if [ "$before" = "$after" ]; then
    echo "==> Redis and Postgres lookups during the gateway run: 0 (cache counters unchanged)"
else
    echo "==> cache counters moved during the gateway run:"; diff <(echo "$before") <(echo "$after") || true
fi
[ -z "$non200" ] || { echo "!! non-200 answers from the gateway:"; echo "$non200"; }
{
    date -u +"%Y-%m-%dT%H:%M:%SZ"
    for f in "$WORK"/*.txt; do echo "--- $(basename "$f" .txt)"; cat "$f"; done
    echo "ratio $ratio"
} >"$OUT/gateway-$(date -u +%Y%m%dT%H%M%S).txt"
