#!/usr/bin/env bash
# Gateway load benchmark, side by side in one run, alternating:
#   direct   the demo upstream, hit directly;
#   bare     a bare Pingora proxy (no auth; same Pingora, allocator, threads,
#            upstream timeouts and keepalive pool as the gateway's routes);
#   default  the gateway's default route: JWT + tenant by header + role check,
#            the six identity headers, warm caches;
#   full     the gateway's full-headers route: the same plus the signed assertion.
# Every target gets the same request bytes (same path length, Host,
# Authorization and X-Tenant-Id). Three settings: 1 proxy thread unpinned; 1 proxy
# thread pinned (proxies alone on CPU 0, wrk and the upstream on CPU 1); 2 proxy
# threads unpinned. Each setting runs ROUNDS rounds over the four targets, the
# order rotating per round, and reports per target the median and spread of
# requests/s, p50/p99, non-2xx answers, and the proxy process's CPU time per
# request (user and system, from /proc/<pid>/stat) and context switches per
# request (/proc/<pid>/task/*/status); then, to explain a system-time difference,
# the system calls per request of each proxy (strace -c over a short run, not
# timed). Also checks that no warm request reached Redis or Postgres.
#
# Usage: bench/gateway/run.sh [seconds] [connections] [rounds]   (defaults 10, 32, 4)
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${1:-10}
CONNS=${2:-32}
ROUNDS=${3:-4}
UP=127.0.0.1:3900 BARE=127.0.0.1:8181 GW=127.0.0.1:8180 ADMIN=127.0.0.1:9190
OUT=bench/results; mkdir -p "$OUT"
WORK=$(mktemp -d)
THREADS=1
source bench/gateway/stack.sh
UP_PID=${pids[0]}
TSV="$WORK/rounds.tsv"
printf 'setting\ttarget\tround\trps\tp50\tp99\trequests\tnon2xx\tuser_us\tsys_us\tctxsw\n' >"$TSV"

ticks() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }   # utime + stime
user_ticks() { awk '{sub(/.*\) /, ""); print $12}' "/proc/$1/stat"; }
ctxsw() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ {n += $2} END {print n}'; }
CLK=$(getconf CLK_TCK)

lookups() { curl -s "http://$ADMIN/metrics" | grep '^tenantgate_cache_lookups_total' | grep -v 'tier="l1"' | sort; }

measure() { # setting target url pid round
    local setting=$1 target=$2 url=$3 pid=$4 round=$5 out="$WORK/wrk.txt"
    local u0 t0 c0
    if [ -n "$pid" ]; then u0=$(user_ticks "$pid"); t0=$(ticks "$pid"); c0=$(ctxsw "$pid"); fi
    $WRK -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "$AUTH" -H "$TEN" "$url" >"$out"
    local rps p50 p99 reqs non2xx
    rps=$(awk '/Requests\/sec/ {print $2}' "$out")
    p50=$(awk '$1=="50%" {print $2}' "$out")
    p99=$(awk '$1=="99%" {print $2}' "$out")
    reqs=$(awk '/requests in/ {print $1}' "$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$out"); non2xx=${non2xx:-0}
    local user_us=- sys_us=- cs=-
    if [ -n "$pid" ]; then
        local u1 t1 c1
        u1=$(user_ticks "$pid"); t1=$(ticks "$pid"); c1=$(ctxsw "$pid")
        read -r user_us sys_us cs < <(awk -v n="$reqs" -v hz="$CLK" -v u=$((u1 - u0)) -v t=$((t1 - t0)) -v cs=$((c1 - c0)) \
            'BEGIN {printf "%.2f %.2f %.3f\n", u/hz*1e6/n, (t-u)/hz*1e6/n, cs/n}')
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$setting" "$target" "$round" "$rps" "$p50" "$p99" \
        "$reqs" "$non2xx" "$user_us" "$sys_us" "$cs" >>"$TSV"
    printf '  %-22s round %s  %-8s %10s req/s  p50 %-9s p99 %-9s cpu %s+%s us/req\n' "$setting" "$round" "$target" "$rps" "$p50" "$p99" "$user_us" "$sys_us"
}

setting() { # name
    local name=$1
    local targets=(direct bare default full)
    declare -A url=([direct]="http://$UP/d/x" [bare]="http://$BARE/d/x" [default]="http://$GW/d/x" [full]="http://$GW/f/x")
    declare -A pid=([direct]="" [bare]="$BARE_PID" [default]="$GW_PID" [full]="$GW_PID")
    echo "==> $name: wrk -t1 -c$CONNS -d${DURATION}s, $ROUNDS rounds"
    for t in "${targets[@]}"; do $WRK -t1 -c"$CONNS" -d2s -H "$AUTH" -H "$TEN" "${url[$t]}" >/dev/null; done   # warm-up
    local before; before=$(lookups)
    for round in $(seq 1 "$ROUNDS"); do
        for i in 0 1 2 3; do
            local t=${targets[$(((i + round) % 4))]}
            measure "$name" "$t" "${url[$t]}" "${pid[$t]}" "$round"
        done
    done
    # Cached entries live CACHE_* TTLs (users 5 minutes): a long run may refresh
    # one from Postgres once per TTL, never per request. Show what moved, and how
    # many requests the gateway served meanwhile.
    if [ "$before" != "$(lookups)" ]; then
        local served; served=$(awk -F'\t' -v s="$name" '$1 == s && ($2 == "default" || $2 == "full") {n += $7} END {print n}' "$TSV")
        echo "!! cache lookups beyond the process moved during $served warm gateway requests (an entry's TTL ran out?):"
        diff <(echo "$before") <(lookups) || true
    fi
}

pin() { # cpus pid...
    local cpus=$1; shift
    for p in "$@"; do taskset -a -pc "$cpus" "$p" >/dev/null; done
}

# System calls per request of one proxy: strace -c over a short wrk run (slowed
# by strace, so not timed; the counts per request are what matter).
syscalls() { # name pid url
    local name=$1 pid=$2 url=$3
    strace -c -f -q -p "$pid" -o "$WORK/$name.strace" & local tracer=$!
    sleep 0.5
    wrk -t1 -c"$CONNS" -d3s -H "$AUTH" -H "$TEN" "$url" >"$WORK/strace-wrk.txt"
    kill -INT "$tracer"; wait "$tracer" 2>/dev/null || true
    local reqs; reqs=$(awk '/requests in/ {print $1}' "$WORK/strace-wrk.txt")
    awk -v n="$reqs" -v name="$name" '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" {c[$NF] = $4}
        END {printf "  %-8s", name; for (k in c) if (c[k] / n >= 0.05) printf " %s %.2f", k, c[k] / n; printf "  (per request)\n"}' \
        "$WORK/$name.strace"
}

WRK=wrk
setting "1 thread, unpinned"
echo "==> system calls per request"
syscalls bare "$BARE_PID" "http://$BARE/d/x" | tee "$WORK/syscalls.txt"
syscalls default "$GW_PID" "http://$GW/d/x" | tee -a "$WORK/syscalls.txt"

pin 0 "$BARE_PID" "$GW_PID"; pin 1 "$UP_PID"; WRK="taskset -c 1 wrk"
setting "1 thread, pinned"
pin 0,1 "$UP_PID"; WRK=wrk

stop_proxies; start_proxies 2
check_targets "http://$GW/d/x" "http://$GW/f/x" "http://$BARE/d/x"
setting "2 threads, unpinned"

stamp=$(date -u +%Y%m%dT%H%M%S)
cp "$TSV" "$OUT/gateway-$stamp.tsv"
{ python3 bench/gateway/summarize.py "$TSV"; echo; echo "System calls per request:"; cat "$WORK/syscalls.txt"; } |
    tee "$OUT/gateway-$stamp.md"
