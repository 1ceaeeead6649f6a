#!/usr/bin/env bash
# A login storm beside proxied traffic: argon2id password checks run on a bounded
# pool off the proxy's threads (PASSWORD_HASH_CONCURRENCY), so proxied requests
# keep their latency while 50 clients log in at once. For each pool size given,
# the gateway is started afresh and measured twice on its default route (see
# stack.sh) with the same wrk settings: alone, then while `wrk -c50` posts logins
# of the bench user (bench/gateway/login.lua) to /auth/login. Reports proxied
# requests/s, p50 and p99 in both, the p99 ratio (target: within 2x), and the
# storm's logins/s. The login rate limit is lifted for the run (RATE_LIMIT_MAX).
#
# Usage: bench/gateway/login_storm.sh [seconds] [pool sizes...]   (defaults 15; 1 2)
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${1:-15}
shift || true
POOLS=("${@:-1 2}")
read -r -a POOLS <<<"${POOLS[*]}"
UP=127.0.0.1:3903 BARE=127.0.0.1:8187 GW=127.0.0.1:8186 ADMIN=127.0.0.1:9196
OUT=bench/results; mkdir -p "$OUT"
WORK=$(mktemp -d)
THREADS=1
GATEWAY_ENV="RATE_LIMIT_MAX=100000000 PASSWORD_HASH_CONCURRENCY=${POOLS[0]}"
source bench/gateway/stack.sh

proxied() { # out-file
    wrk -t1 -c16 -d"${DURATION}s" --latency -H "$AUTH" -H "$TEN" "http://$GW/d/x" >"$1"
    awk '/Requests\/sec/ {r=$2} $1=="50%" {p50=$2} $1=="99%" {p99=$2} /Non-2xx/ {bad=$NF}
        END {printf "%s req/s  p50 %s  p99 %s  non-2xx %s\n", r, p50, p99, bad + 0}' "$1"
}
ms() { awk '$1=="99%" {v=$2; if (v ~ /ms$/) {sub(/ms/, "", v); print v} else if (v ~ /us$/) {sub(/us/, "", v); print v/1000} else {sub(/s$/, "", v); print v*1000}}' "$1"; }

report="$WORK/report.txt"
for pool in "${POOLS[@]}"; do
    stop_proxies
    GATEWAY_ENV="RATE_LIMIT_MAX=100000000 PASSWORD_HASH_CONCURRENCY=$pool"
    start_proxies 1
    check_targets "http://$GW/d/x"
    wrk -t1 -c16 -d2s -H "$AUTH" -H "$TEN" "http://$GW/d/x" >/dev/null   # warm-up
    echo "==> PASSWORD_HASH_CONCURRENCY=$pool" | tee -a "$report"
    printf '  alone       %s\n' "$(proxied "$WORK/alone.txt")" | tee -a "$report"
    wrk -t1 -c50 -d"$((DURATION + 4))s" -s bench/gateway/login.lua "http://$GW/auth/login" >"$WORK/storm.txt" &
    storm=$!
    sleep 2
    printf '  with storm  %s\n' "$(proxied "$WORK/storm-proxied.txt")" | tee -a "$report"
    wait "$storm"
    logins=$(awk '/Requests\/sec/ {print $2}' "$WORK/storm.txt")
    bad=$(awk '/Non-2xx/ {print $NF}' "$WORK/storm.txt")
    printf '  storm       %s logins/s (50 clients), non-2xx %s\n' "$logins" "${bad:-0}" | tee -a "$report"
    awk -v a="$(ms "$WORK/alone.txt")" -v s="$(ms "$WORK/storm-proxied.txt")" \
        'BEGIN {printf "  p99 with storm / alone = %.2fx (target <= 2x)\n", s / a}' | tee -a "$report"
done
cp "$report" "$OUT/login-storm-$(date -u +%Y%m%dT%H%M%S).txt"
