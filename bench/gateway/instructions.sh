#!/usr/bin/env bash
# The gateway's work per request against a bare Pingora proxy's, counted in CPU
# instructions under valgrind's callgrind: the same count for the same binaries and
# requests however busy the machine is, unlike requests/s on two shared cores. It
# counts user-space instructions only (the kernel's TCP work, the same for both
# proxies, is not in it), so it bounds the requests/s ratio from below.
#
# Both proxies run under callgrind with instrumentation off; after a warm-up, it is
# switched on for a fixed wrk run, then off and dumped. Prints instructions per
# request for the bare proxy and for the gateway's default and full-headers routes
# (see stack.sh), the extra over bare, and the gateway's most expensive functions
# on the default route (inclusive, per request), so a regression points at its
# cause.
#
# Usage: bench/gateway/instructions.sh [seconds]    (default 15; ~1 minute in all)
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${1:-15}
THREADS=1
UP=127.0.0.1:3901 BARE=127.0.0.1:8183 GW=127.0.0.1:8182 ADMIN=127.0.0.1:9192
OUT=bench/results; mkdir -p "$OUT"
WORK=$(mktemp -d)
WRAP="valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=$WORK/%p.callgrind"
BENCH_TOOLS="wrk valgrind"
source bench/gateway/stack.sh

count() { # name pid url -> prints "requests instructions"
    local name=$1 pid=$2 url=$3
    wrk -t1 -c8 -d3s -H "$AUTH" -H "$TEN" "$url" >/dev/null          # warm-up, not counted
    callgrind_control -i on "$pid" >/dev/null 2>&1
    wrk -t1 -c8 -d"${DURATION}s" -H "$AUTH" -H "$TEN" "$url" >"$WORK/$name.wrk"
    callgrind_control -i off "$pid" >/dev/null 2>&1
    callgrind_control -d "$pid" >/dev/null 2>&1
    local file; file=$(ls -t "$WORK/$pid.callgrind"* | head -1)
    cp "$file" "$WORK/$name.out"
    echo "$(awk '/requests in/ {print $1}' "$WORK/$name.wrk") $(awk '/^totals:/ {print $2}' "$file")"
}

echo "==> callgrind, wrk -t1 -c8 -d${DURATION}s against each proxy (1 worker thread each)"
read -r bare_reqs bare_ir < <(count bare "$BARE_PID" "http://$BARE/d/x")
read -r full_reqs full_ir < <(count full "$GW_PID" "http://$GW/f/x")
read -r gw_reqs gw_ir < <(count gateway "$GW_PID" "http://$GW/d/x")
# Each dump holds what ran since the previous one.
bare_per=$((bare_ir / bare_reqs)) gw_per=$((gw_ir / gw_reqs)) full_per=$((full_ir / full_reqs))
printf '%-34s %10d requests %12d instructions/request\n' "bare pingora proxy" "$bare_reqs" "$bare_per"
printf '%-34s %10d requests %12d instructions/request  (+%d)\n' "gateway, default route" "$gw_reqs" "$gw_per" $((gw_per - bare_per))
printf '%-34s %10d requests %12d instructions/request  (+%d)\n' "gateway, full-headers route" "$full_reqs" "$full_per" $((full_per - bare_per))
ratio=$(awk -v g="$gw_per" -v b="$bare_per" 'BEGIN {printf "%.2f", b/g}')
echo "==> bare / gateway (default route) instructions per request = ${ratio}x"
echo "==> the gateway's own functions, instructions per request (inclusive):"
callgrind_annotate --inclusive=yes --threshold=99.9 "$WORK/gateway.out" 2>/dev/null |
    awk -v n="$gw_reqs" '/\/(gateway|shared)\/src\// && !/=>/ && !/unidentified/ {
        c=$1; gsub(",", "", c); fn=$0; sub(/.*src\//, "", fn); sub(/ \[.*/, "", fn)
        if (c / n >= 300) printf "  %8d  %s\n", c / n, fn }' | head -25
# The whole profile, for callgrind_annotate (or kcachegrind) when the table above
# is not enough.
cp "$WORK/gateway.out" "$OUT/gateway-latest.callgrind"
cp "$WORK/bare.out" "$OUT/bare-latest.callgrind"
{
    date -u +"%Y-%m-%dT%H:%M:%SZ"
    echo "bare $bare_reqs requests $bare_per instructions/request"
    echo "gateway $gw_reqs requests $gw_per instructions/request"
    echo "full $full_reqs requests $full_per instructions/request"
    echo "ratio $ratio"
} >"$OUT/instructions-$(date -u +%Y%m%dT%H%M%S).txt"
