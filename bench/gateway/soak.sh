#!/usr/bin/env bash
# Soak: the gateway under half of its measured maximum load for a long while, with
# the control traffic a real deployment has mixed in, watching its memory.
#
#   1. max load: wrk -c16 for 10 s on the default route (see stack.sh); half of
#      that requests/s is the soak's target;
#   2. for SECONDS (600): wrk at about that rate (connections that pause 1 ms
#      after each answer, as many as a probe says) as a member of the tenant, while a loop logs the owner in,
#      rotates a refresh token and flips the member's role between member and
#      admin (each flip evicts the role on every instance: the next proxied request
#      reloads it), once a second each;
#   3. the gateway's RSS (VmRSS) every 5 s while the load runs.
#
# Passes when: no proxied request answers anything but 200, no socket error, every
# control call answers as expected, and the RSS at the end is within 5% of its
# value after the first minute. SOAK_MODE=single runs the gateway in single-node
# mode (no Redis, no RabbitMQ). Report in bench/results/soak-*.txt, RSS samples
# beside it.
#
# Usage: bench/gateway/soak.sh [seconds]     (default 600)
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${1:-600}
UP=127.0.0.1:3904 BARE=127.0.0.1:8189 GW=127.0.0.1:8188 ADMIN=127.0.0.1:9198
OUT=bench/results; mkdir -p "$OUT"
WORK=$(mktemp -d)
THREADS=${THREADS:-1}
GATEWAY_ENV="RATE_LIMIT_MAX=100000000"
[ "${SOAK_MODE:-}" = single ] && GATEWAY_ENV="$GATEWAY_ENV REDIS_URL= RABBITMQ_URL= MAIL_TRANSPORT=file MAIL_DIR=$WORK/mail"
source bench/gateway/stack.sh
stamp=$(date -u +%Y%m%dT%H%M%S)
report="$OUT/soak-$stamp.txt"
samples="$OUT/soak-$stamp-rss.tsv"

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
api() { # method path token [body] -> prints "status body"
    local args=(-s -o "$WORK/body" -w '%{http_code}' -X "$1" "http://$GW$2" -H 'content-type: application/json')
    [ -n "$3" ] && args+=(-H "authorization: Bearer $3")
    [ $# -ge 4 ] && args+=(-d "$4")
    curl "${args[@]}"
}

# The member whose requests make the load, and whose role keeps changing.
MEMBER=$(curl -sf "http://$GW/auth/register" -H 'content-type: application/json' \
    -d '{"email":"soak-member@example.test","password":"benchmark password","name":"Member"}')
MEMBER_ID=$(json '["user"]["id"]' <<<"$MEMBER")
MEMBER_TOKEN=$(json '["accessToken"]' <<<"$MEMBER")
psql -h 127.0.0.1 -U postgres -d "$DB" -qc \
    "INSERT INTO user_tenant_roles (user_id, tenant_id, role) VALUES ('$MEMBER_ID', '$TENANT', 'member')"
MAUTH="authorization: Bearer $MEMBER_TOKEN"
check_targets "http://$GW/d/x"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$GW/d/x" -H "$MAUTH" -H "$TEN")
[ "$code" = 200 ] || { echo "!! the member's request answered $code"; exit 1; }

echo "==> max load (10 s, 16 connections)"
wrk -t1 -c16 -d10s -H "$MAUTH" -H "$TEN" "http://$GW/d/x" >"$WORK/max.txt"
MAX=$(awk '/Requests\/sec/ {printf "%d", $2}' "$WORK/max.txt")
TARGET=$((MAX / 2))
# wrk's pause (bench/gateway/paced.lua) counts whole milliseconds, so the rate is
# set by the number of connections instead: a 5 s probe measures what one
# connection pausing 1 ms asks for at about this load, and the soak opens as many
# as TARGET needs.
PAUSE_MS=1
PAUSE_MS=$PAUSE_MS wrk -t1 -c16 -d5s -s bench/gateway/paced.lua -H "$MAUTH" -H "$TEN" "http://$GW/d/x" >"$WORK/probe.txt"
CONNS=$(awk -v t="$TARGET" -v r="$(awk '/Requests\/sec/ {print $2}' "$WORK/probe.txt")" \
    'BEGIN {c = int(t / (r / 16) + 0.5); print (c < 1 ? 1 : c)}')
echo "    max $MAX req/s; soak target $TARGET req/s ($CONNS connections pausing ${PAUSE_MS} ms)"

rss() { awk '/VmRSS/ {print $2}' "/proc/$GW_PID/status"; }
refresh_token=$(curl -sf "http://$GW/auth/login" -H 'content-type: application/json' \
    -d '{"email":"bench@example.test","password":"benchmark password"}' | json '["refreshToken"]')

echo "==> soak: ${DURATION}s"
PAUSE_MS=$PAUSE_MS wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s bench/gateway/paced.lua \
    -H "$MAUTH" -H "$TEN" "http://$GW/d/x" >"$WORK/soak.txt" &
load=$!
started=$(date +%s)
control_ok=0 control_bad=0 role=admin next_sample=0
printf 'seconds\trss_kib\n' >"$samples"
while kill -0 "$load" 2>/dev/null; do
    now=$(($(date +%s) - started))
    if [ "$now" -ge "$next_sample" ]; then
        printf '%s\t%s\n' "$now" "$(rss)" >>"$samples"
        next_sample=$((next_sample + 5))
    fi
    # A login of the owner, a refresh-token rotation, a role flip of the member.
    s=$(api POST /auth/login "" '{"email":"bench@example.test","password":"benchmark password"}')
    [ "$s" = 200 ] && control_ok=$((control_ok + 1)) || control_bad=$((control_bad + 1))
    s=$(api POST /auth/refresh "" "{\"refreshToken\":\"$refresh_token\"}")
    if [ "$s" = 200 ]; then
        refresh_token=$(json '["refreshToken"]' <"$WORK/body")
        control_ok=$((control_ok + 1))
    else
        control_bad=$((control_bad + 1))
    fi
    s=$(api PATCH "/auth/tenants/$TENANT/members/$MEMBER_ID" "$TOKEN" "{\"role\":\"$role\"}")
    [ "$s" = 200 ] && control_ok=$((control_ok + 1)) || control_bad=$((control_bad + 1))
    if [ "$role" = admin ]; then role=member; else role=admin; fi
    sleep 1
done
wait "$load"
# Not a sample of the soak (that is under load): what the process keeps afterwards.
sleep 5
after=$(rss)

rate=$(awk '/Requests\/sec/ {print $2}' "$WORK/soak.txt")
total=$(awk '/requests in/ {print $1}' "$WORK/soak.txt")
bad=$(awk '/Non-2xx/ {print $NF}' "$WORK/soak.txt"); bad=${bad:-0}
sock=$(awk '/Socket errors/ {print $0}' "$WORK/soak.txt"); sock=${sock:-none}
p99=$(awk '$1=="99%" {print $2}' "$WORK/soak.txt")
{
    echo "soak $stamp: ${DURATION}s, mode ${SOAK_MODE:-scaled-out}, $(nproc) cores, gateway threads $THREADS"
    echo "max load            $MAX req/s (wrk -c16, 10 s)"
    echo "soak load           $rate req/s (target $TARGET), $total requests, p99 $p99"
    echo "non-2xx             $bad"
    echo "socket errors       $sock"
    echo "control calls       $control_ok ok, $control_bad failed (logins, refreshes, role changes)"
    awk -F'\t' 'NR > 1 && $1 >= 60 && first == "" {first = $2; at = $1}
        NR > 1 {last = $2; if ($2 > max) max = $2; if (min == "" || $2 < min) min = $2}
        END {
            printf "rss after %ss       %d KiB\n", at, first
            printf "rss at the end      %d KiB (min %d, max %d)\n", last, min, max
            printf "rss growth          %+.1f%% after the first minute (limit 5%%)\n", (last - first) * 100 / first
        }' "$samples"
    echo "rss 5 s after       $after KiB (load stopped; not part of the criterion)"
} | tee "$report"
growth_ok=$(awk -F'\t' 'NR > 1 && $1 >= 60 && first == "" {first = $2} NR > 1 {last = $2}
    END {print ((last - first) * 100 / first < 5) ? "yes" : "no"}' "$samples")
if [ "$bad" = 0 ] && [ "$sock" = none ] && [ "$control_bad" = 0 ] && [ "$growth_ok" = yes ]; then
    echo "PASS" | tee -a "$report"
else
    echo "FAIL" | tee -a "$report"
    exit 1
fi
