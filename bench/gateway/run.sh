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

DURATION=${1:-15}
CONNS=${2:-32}
THREADS=1            # proxy worker threads for both proxies: same budget each
UP=127.0.0.1:3900 BARE=127.0.0.1:8181 GW=127.0.0.1:8180 ADMIN=127.0.0.1:9190
OUT=bench/results; mkdir -p "$OUT"
WORK=$(mktemp -d)
source bench/gateway/stack.sh

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
run "upstream direct" "http://$UP/x" "$AUTH" "$TEN"
run "bare pingora proxy" "http://$BARE/x" "$AUTH" "$TEN"
before=$(lookups)
run "gateway (auth, warm cache)" "http://$GW/x" "$AUTH" "$TEN"
after=$(lookups)
counts=$(curl -s "http://$ADMIN/metrics" | grep '^tenantgate_http_requests_total' | grep 'route="bench"')
# 499: requests wrk abandoned when it closed its connections at the end of the run.
cut_off=$(grep 'status="499"' <<<"$counts" | awk '{print $2}' || true)
non200=$(grep -v -e 'status="200"' -e 'status="499"' <<<"$counts" || true)

ratio=$(awk -v g="$(cat "$WORK/gateway (auth, warm cache).rps")" -v b="$(cat "$WORK/bare pingora proxy.rps")" 'BEGIN {printf "%.2f", g/b}')
echo "==> gateway / bare proxy = ${ratio}x"
if [ "$before" = "$after" ]; then
    echo "==> Redis and Postgres lookups during the gateway run: 0 (cache counters unchanged)"
else
    echo "==> cache counters moved during the gateway run:"; diff <(echo "$before") <(echo "$after") || true
fi
[ -z "$cut_off" ] || echo "==> $cut_off requests cut off by wrk closing its connections at the end (counted as 499)"
[ -z "$non200" ] || { echo "!! non-200 answers from the gateway:"; echo "$non200"; }
{
    date -u +"%Y-%m-%dT%H:%M:%SZ"
    for f in "$WORK"/*.txt; do echo "--- $(basename "$f" .txt)"; cat "$f"; done
    echo "ratio $ratio"
} >"$OUT/gateway-$(date -u +%Y%m%dT%H%M%S).txt"
