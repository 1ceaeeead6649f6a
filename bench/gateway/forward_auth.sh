#!/usr/bin/env bash
# Forward-auth (issue 16): nginx asking the gateway with auth_request, against nginx
# alone, side by side in one run, alternating, the order rotating per round:
#   nginx         nginx alone: the documented `location /` without the auth lines,
#                 proxy_pass to the demo upstream over a keepalive pool (`upstream
#                 { keepalive $CONNS; }`, as many idle connections as wrk has
#                 connections; proxy_http_version 1.1, Connection "");
#   nginx-noka    the same, proxying the upstream as the documented snippet does
#                 (`proxy_pass http://ADDR;`: HTTP/1.0, a new connection per
#                 request): the baseline for the next target's app hop;
#   nginx+tg      nginx + auth_request to the gateway's /auth/verify/nginx, exactly
#                 as docs/examples/nginx-forward-auth.conf configures it (read when
#                 this script runs; only the addresses and `listen` replaced, as
#                 gateway/tests/it/forward_auth.rs does);
#   nginx+tg+pool the same, the `keepalive` of the snippet's upstream block for the
#                 check raised to $CONNS (nginx keeps that many idle connections;
#                 while more checks run at once, each one beyond opens a connection
#                 and closes it after);
#   nginx+tg+ka   the same, both hops kept alive over the pools nginx alone uses
#                 (the check and the app, `keepalive $CONNS`, HTTP/1.1, Connection "");
#   nginx+tg+newconn  the same, the check over a new connection per request
#                 (proxy_pass straight to the gateway, HTTP/1.0), as the snippet
#                 was before it kept its connections;
#   gateway       the gateway as the proxy itself, its default route /d (run.sh's
#                 "default");
#   bare          bare Pingora (run.sh's "bare").
# bench/gateway/forward_auth_conf.py writes the nginx+tg configs; a variant
# that would be the documented config itself is left out. Every nginx is the same
# binary with the same http block (worker_processes 1, access_log off, default
# buffers, the same two upstream pools defined), a non-daemon child with its own
# prefix and temp folders under $WORK; each run's configs are kept beside its
# results. The gateway runs 1 worker thread, trusts 127.0.0.1/32
# (GATEWAY_TRUSTED_PROXIES), and every request is a warm one on its default route
# /d (JWT, tenant by header, role check).
# Every target gets the same request bytes (path /d/x, a Host of the same length,
# the same Authorization and X-Tenant-Id).
# Before anything is measured, each nginx config is started once in front of an
# echoing demo upstream: the forward-auth ones must answer 200 with the app having
# received the registered user's X-User-Id, X-Tenant-Id and X-Tenant-Role and no
# Authorization; nginx alone 200 with no X-User-Id. Then the same configs, in front
# of the --fixed upstream, are measured.
# Reports per target the median and per-round requests/s, median p50/p99, non-2xx
# answers and socket errors, the CPU time per request (user + system,
# /proc/<pid>/stat) of nginx (master and worker), the gateway, the bare proxy, the
# upstream and all the processes the target's requests pass through together
# (the client's not included), the machine's busy time charged to no process per
# request ("kernel": the busy time from /proc/stat less every process's CPU time
# and the client's; interrupts on idle CPUs, and the CPU of processes that ended
# during the round: within a few µs of 0 in a quiet round), the CPU the
# hypervisor stole and the CPU the other processes on the machine took meanwhile
# (/proc/*/stat), both as shares of all cores, and the TCP connections accepted
# per request (PassiveOpens, /proc/net/snmp: the whole machine's);
# then the median per-round ratios. Checks with the gateway's /metrics that no warm
# request reached Redis or Postgres (cache lookups on tiers other than l1), and
# counts the requests the gateway answered.
#
# Usage: bench/gateway/forward_auth.sh [seconds] [connections] [rounds]   (defaults 10, 32, 3)
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${1:-10}
CONNS=${2:-32}
ROUNDS=${3:-3}
UP=127.0.0.1:3900 BARE=127.0.0.1:8181 GW=127.0.0.1:8180 ADMIN=127.0.0.1:9190
ECHO=127.0.0.1:3901   # the echoing upstream the checks run against
SNIPPET=docs/examples/nginx-forward-auth.conf
NGINX=/usr/sbin/nginx; [ -x "$NGINX" ] || NGINX=nginx
# Each nginx's port: a Host as long as the proxies' 8180 and 8181.
declare -A port=([nginx]=8183 [nginx-noka]=8184 [nginx+tg]=8185 [nginx+tg+newconn]=8186 [nginx+tg+ka]=8187
    [nginx+tg+pool]=8188)
# What forward_auth_conf.py makes of the snippet for each nginx+tg target.
declare -A variant=([nginx+tg]=documented [nginx+tg+ka]=keepalive [nginx+tg+newconn]=newconn
    [nginx+tg+pool]="pool:$CONNS")
OUT=bench/results; mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT   # stack.sh replaces it with its own cleanup
THREADS=1
GATEWAY_ENV="GATEWAY_TRUSTED_PROXIES=127.0.0.1/32 ${GATEWAY_ENV:-}"
[ -x /usr/bin/time ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
source bench/gateway/stack.sh   # ensure_tools installs nginx-light if missing
UP_PID=${pids[0]}
USER_ID=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["user"]["id"])' <<<"$REG")

# --- The nginx configs -------------------------------------------------------------

# The http block every nginx runs, around its server block ($dir/site.conf).
nginx_conf() { # dir app
    local d=$1 app=$2
    cat <<CONF
daemon off;
master_process on;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    upstream tg_app { server $app; keepalive $CONNS; }
    upstream tg_verify { server $GW; keepalive $CONNS; }
    include $d/site.conf;
}
CONF
}

KEEPALIVE='proxy_http_version 1.1;
        proxy_set_header Connection "";'

# The server block of one target, in front of `app`.
site() { # target app
    local target=$1 app=$2 listen="listen 127.0.0.1:${port[$1]};"
    case $target in
        nginx | nginx-noka)
            local pass="proxy_pass http://tg_app;
        $KEEPALIVE"
            [ "$target" = nginx ] || pass="proxy_pass http://$app;"
            cat <<SITE
server {
    $listen
    location / {
        proxy_set_header Host \$host;
        proxy_set_header X-Forwarded-For \$remote_addr;
        proxy_set_header X-Forwarded-Proto \$scheme;
        $pass
    }
}
SITE
            ;;
        nginx+tg*) python3 bench/gateway/forward_auth_conf.py "$SNIPPET" "${variant[$target]}" "$GW" "$app" "${port[$target]}" ;;
    esac
}

declare -A nginx_pid nginx_worker
start_nginx() { # target app
    local target=$1 app=$2 d="$WORK/nginx-$1"
    mkdir -p "$d"
    site "$target" "$app" >"$d/site.conf"
    nginx_conf "$d" "$app" >"$d/nginx.conf"
    "$NGINX" -t -q -e "$d/error.log" -p "$d" -c "$d/nginx.conf" || { cat "$d/error.log" "$d/site.conf"; exit 1; }
    "$NGINX" -e "$d/error.log" -p "$d" -c "$d/nginx.conf" >"$d/stdout.log" 2>&1 &
    nginx_pid[$target]=$!
    pids+=($!)
    local worker=""
    for _ in $(seq 1 100); do
        worker=$(pgrep -P "${nginx_pid[$target]}" || true)
        [ -n "$worker" ] && curl -s -o /dev/null "http://127.0.0.1:${port[$target]}/" && break
        sleep 0.1
    done
    [ -n "$worker" ] || { echo "!! nginx ($target) did not start:"; cat "$d/error.log"; exit 1; }
    nginx_worker[$target]=$worker
    pids+=("$worker")
}
stop_nginx() { # target
    stop "${nginx_pid[$1]}" "${nginx_worker[$1]}"
    unset "nginx_pid[$1]" "nginx_worker[$1]"
}

TARGETS=(nginx nginx-noka nginx+tg)
for t in nginx+tg+pool nginx+tg+ka nginx+tg+newconn; do
    if why=$(site "$t" "$UP"); then
        TARGETS+=("$t")
    else
        [ $? -eq 3 ] || { echo "!! $t: the snippet could not be changed (above)"; exit 1; }
        echo "==> no $t target: $why"
    fi
done
NGINX_TARGETS=("${TARGETS[@]}")
TARGETS+=(gateway bare)

# --- The checks, against the echoing upstream ---------------------------------------

echo "==> checking every nginx config in front of an echoing upstream"
./target/release/demo_upstream --listen "$ECHO" >/dev/null 2>&1 & ECHO_PID=$!; pids+=("$ECHO_PID")
for _ in $(seq 1 100); do curl -s -o /dev/null "http://$ECHO/" && break; sleep 0.1; done
for t in "${NGINX_TARGETS[@]}"; do
    start_nginx "$t" "$ECHO"
    body=$(curl -s -w '\n%{http_code}' "http://127.0.0.1:${port[$t]}/d/x" -H "$AUTH" -H "$TEN")
    verdict=$(python3 - "$t" "$USER_ID" "$TENANT" "$body" <<'PY'
import json, sys
target, user, tenant, body = sys.argv[1:]
text, _, code = body.rpartition("\n")
if code != "200":
    sys.exit(f"answered {code}: {text}")
headers = json.loads(text)["headers"]
if target.startswith("nginx+tg"):
    want = {"x-user-id": user, "x-tenant-id": tenant, "x-tenant-role": "owner"}
    wrong = {k: headers.get(k) for k, v in want.items() if headers.get(k) != v}
    if wrong or "authorization" in headers:
        sys.exit(f"the app received {headers}")
    print(f"200, the app got x-user-id {user[:8]}..., x-tenant-role owner, no authorization")
else:
    if "x-user-id" in headers:
        sys.exit(f"the app received {headers}")
    print("200, no identity headers")
PY
    ) || { echo "!! $t: the check failed"; tail -5 "$WORK/gateway.log" "$WORK/nginx-$t/error.log"; exit 1; }
    printf '  %-16s %s\n' "$t" "$verdict"
    stop_nginx "$t"
done
stop "$ECHO_PID"

# --- The measurements -------------------------------------------------------------

for t in "${NGINX_TARGETS[@]}"; do start_nginx "$t" "$UP"; done
declare -A url=([gateway]="http://$GW/d/x" [bare]="http://$BARE/d/x")
for t in "${NGINX_TARGETS[@]}"; do url[$t]="http://127.0.0.1:${port[$t]}/d/x"; done
check_targets "${url[@]}"

TSV="$WORK/rounds.tsv"
printf 'target\tround\trps\tp50_us\tp99_us\trequests\tnon2xx\terrors\tnginx_us\tgateway_us\tbare_us\tupstream_us\tall_us\tkernel_us\tsteal_pct\tothers_pct\tconns\n' >"$TSV"

ticks() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }   # utime + stime
sum_ticks() { local n=0 p; for p in "$@"; do n=$((n + $(ticks "$p"))); done; echo "$n"; }
CLK=$(getconf CLK_TCK)
# All CPUs, ticks: busy (user, nice, system, irq, softirq) and stolen by the
# hypervisor.
busy() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8, $9}' /proc/stat; }
# TCP connections accepted on this machine so far.
accepted() { awk '/^Tcp:/ {if (!c) {for (i = 1; i <= NF; i++) if ($i == "PassiveOpens") c = i} else print $c}' /proc/net/snmp; }
# Every process's CPU ticks ("pid ticks name"), ours left out.
processes() { # our pids...
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v ours=" $* " '{
        pid = $1; name = $0; sub(/^[^(]*\(/, "", name); sub(/\).*/, "", name); gsub(/ /, "_", name)
        sub(/.*\) /, ""); if (index(ours, " " pid " ") == 0) print pid, $12 + $13, name}'
}
# The ticks the other processes took between two snapshots (those started
# meanwhile: all theirs; those ended meanwhile are lost); the busiest three into
# $WORK/busiest.
others_ticks() { # before after
    awk 'NR == FNR {t0[$1] = $2; next} {d = $2 - ($1 in t0 ? t0[$1] : 0); n += d; if (d > 0) print d, $3 > "/dev/stderr"}
        END {print n + 0}' "$1" "$2" 2> >(sort -rn | head -3 | awk '{printf "%s %s, ", $2, $1}' >"$WORK/busiest")
}
NCPU=$(nproc)
micros() { awk '{v=$1; if (v ~ /us$/) f=1; else if (v ~ /ms$/) f=1e3; else f=1e6; sub(/[a-z]+$/, "", v); printf "%.1f\n", v*f}' <<<"$1"; }
all_nginx() { local t; for t in "${NGINX_TARGETS[@]}"; do printf '%s %s ' "${nginx_pid[$t]}" "${nginx_worker[$t]}"; done; }
lookups() { curl -s "http://$ADMIN/metrics" | grep '^tenantgate_cache_lookups_total' | grep -v 'tier="l1"' | sort; }
answered() { curl -s "http://$ADMIN/metrics" | awk '/^tenantgate_http_requests_total/ {n += $NF} END {printf "%d\n", n}'; }
answers() { curl -s "http://$ADMIN/metrics" | grep '^tenantgate_http_requests_total' | sed -E 's/,?tenant="[^"]*"//' | sort; }

measure() { # target round
    local t=$1 round=$2 out="$WORK/wrk.txt"
    local ng=() ; [ -z "${nginx_pid[$t]:-}" ] || ng=("${nginx_pid[$t]}" "${nginx_worker[$t]}")
    local mine; read -r -a mine <<<"$(all_nginx)"
    local n0=0 g0 b0 u0 o0 busy0 steal0 ns0
    [ ${#ng[@]} -eq 0 ] || n0=$(sum_ticks "${ng[@]}")
    g0=$(ticks "$GW_PID"); b0=$(ticks "$BARE_PID"); u0=$(ticks "$UP_PID"); o0=$(sum_ticks "${mine[@]}")
    processes "$GW_PID" "$BARE_PID" "$UP_PID" "${mine[@]}" >"$WORK/procs0"
    read -r busy0 steal0 <<<"$(busy)"; ns0=$(date +%s%N); local acc0; acc0=$(accepted)
    /usr/bin/time -o "$WORK/client.time" -f '%U %S' \
        wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "$AUTH" -H "$TEN" "${url[$t]}" >"$out"
    local n1=0 g1 b1 u1 o1 busy1 steal1 ns1
    [ ${#ng[@]} -eq 0 ] || n1=$(sum_ticks "${ng[@]}")
    g1=$(ticks "$GW_PID"); b1=$(ticks "$BARE_PID"); u1=$(ticks "$UP_PID"); o1=$(sum_ticks "${mine[@]}")
    read -r busy1 steal1 <<<"$(busy)"; ns1=$(date +%s%N); local acc1; acc1=$(accepted)
    processes "$GW_PID" "$BARE_PID" "$UP_PID" "${mine[@]}" >"$WORK/procs1"
    local rps p50 p99 reqs non2xx errors cpu
    reqs=$(awk '/requests in/ {print $1}' "$out")
    rps=$(awk '/Requests\/sec/ {print $2}' "$out")
    p50=$(micros "$(awk '$1=="50%" {print $2}' "$out")")
    p99=$(micros "$(awk '$1=="99%" {print $2}' "$out")")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$out"); non2xx=${non2xx:-0}
    errors=$(awk '/Socket errors/ {gsub(/,/, ""); print $4 + $6 + $8 + $10}' "$out"); errors=${errors:-0}
    # "all": the processes this target's requests pass through.
    local via_gw=0 via_bare=0
    case $t in gateway | nginx+tg*) via_gw=1 ;; bare) via_bare=1 ;; esac
    cpu=$(awk -v r="$reqs" -v hz="$CLK" -v ng="${#ng[@]}" -v n=$((n1 - n0)) -v g=$((g1 - g0)) -v b=$((b1 - b0)) \
        -v via_gw="$via_gw" -v via_bare="$via_bare" \
        -v u=$((u1 - u0)) -v o=$((o1 - o0)) -v busy=$((busy1 - busy0)) -v steal=$((steal1 - steal0)) -v ns=$((ns1 - ns0)) -v ncpu="$NCPU" \
        -v client="$(cat "$WORK/client.time")" -v rest="$(others_ticks "$WORK/procs0" "$WORK/procs1")" 'BEGIN {
            split(client, c, " "); us = 1e6 / hz / r
            all = ns / 1e9 * hz * ncpu
            kernel = busy - o - g - b - u - (c[1] + c[2]) * hz - rest
            printf "%s %.2f %.2f %.2f %.2f %.2f %.1f %.1f\n", ng ? sprintf("%.2f", n * us) : "-", g * us, b * us, u * us,
                (n + via_gw * g + via_bare * b + u) * us, kernel * us, steal / all * 100, rest / all * 100}')
    local conns; conns=$(awk -v a=$((acc1 - acc0)) -v r="$reqs" 'BEGIN {printf "%.3f\n", a / r}')
    # shellcheck disable=SC2086 # cpu is eight fields
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$round" "$rps" "$p50" "$p99" "$reqs" \
        "$non2xx" "$errors" $cpu "$conns" >>"$TSV"
    read -r c_ng c_gw c_bare c_up c_all c_kernel c_steal c_oth <<<"$cpu"
    printf '  round %s  %-16s %9s req/s  p50 %7s p99 %7s us  non-2xx %s err %s  cpu us/req: nginx %s gw %s bare %s up %s all %s kernel %s  steal %s%% others %s%%  conns/req %s\n' \
        "$round" "$t" "$rps" "$p50" "$p99" "$non2xx" "$errors" "$c_ng" "$c_gw" "$c_bare" "$c_up" "$c_all" "$c_kernel" "$c_steal" "$c_oth" "$conns"
    sleep 0.2; echo "           busiest others (ticks): $(cat "$WORK/busiest")"
}

n=${#TARGETS[@]}
echo "==> ${TARGETS[*]}: wrk -t1 -c$CONNS -d${DURATION}s, $ROUNDS rounds"
for t in "${TARGETS[@]}"; do wrk -t1 -c"$CONNS" -d2s -H "$AUTH" -H "$TEN" "${url[$t]}" >/dev/null; done   # warm-up
lookups0=$(lookups); answered0=$(answered); answers0=$(answers)
for round in $(seq 1 "$ROUNDS"); do
    for i in $(seq 0 $((n - 1))); do measure "${TARGETS[$(((i + round) % n))]}" "$round"; done
done

# Every warm request, proxied or checked, is decided from the process's own cache:
# nothing may have asked Redis or Postgres. (Cached entries live CACHE_* TTLs, users
# 5 minutes: a long run may refresh one once per TTL, never per request.)
gw_served=$(awk -F'\t' 'NR > 1 && ($1 == "gateway" || $1 ~ /^nginx\+tg/) {n += $6} END {print n}' "$TSV")
echo "==> the gateway answered $(($(answered) - answered0)) requests (wrk counted $gw_served through it)"
diff <(echo "$answers0") <(answers) | grep '^>' || true
if [ "$lookups0" != "$(lookups)" ]; then
    echo "!! cache lookups beyond the process moved during $gw_served warm gateway requests:"
    diff <(echo "$lookups0") <(lookups) || true
else
    echo "==> no lookup beyond the process's cache (Redis, Postgres) during the measured runs"
fi
for t in "${NGINX_TARGETS[@]}"; do
    lines=$(wc -l <"$WORK/nginx-$t/error.log")
    [ "$lines" -eq 0 ] || { echo "!! nginx ($t) logged $lines lines:"; tail -3 "$WORK/nginx-$t/error.log"; }
done
echo "==> the gateway's log: $(wc -l <"$WORK/gateway.log") lines"; tail -3 "$WORK/gateway.log"

stamp=$(date -u +%Y%m%dT%H%M%S)
cp "$TSV" "$OUT/forward-auth-$stamp.tsv"
for t in "${NGINX_TARGETS[@]}"; do cp "$WORK/nginx-$t/site.conf" "$OUT/forward-auth-$stamp-$t.conf"; done
cp "$SNIPPET" "$OUT/forward-auth-$stamp-snippet.conf"
python3 - "$TSV" <<'PY' | tee "$OUT/forward-auth-$stamp.md"
import csv, statistics, sys
from collections import defaultdict

rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
of = defaultdict(dict)
for r in rows:
    of[r["target"]][r["round"]] = r


def num(v):
    return None if v in ("-", "") else float(v)


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=1):
    return "-" if v is None else f"{v:,.{digits}f}"


print(f"\n### forward-auth ({len(next(iter(of.values())))} rounds)\n")
print("| target | req/s median | rounds | p50 µs | p99 µs | non-2xx | errors | nginx CPU µs/req | gateway CPU µs/req "
      "| bare CPU µs/req | upstream CPU µs/req | all CPU µs/req | kernel µs/req | new connections/req "
      "| steal, max % | rest of the machine, max % |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for t, by_round in of.items():
    rs = [by_round[k] for k in sorted(by_round, key=int)]
    rps = [float(r["rps"]) for r in rs]
    col = lambda name: fmt(med(num(r[name]) for r in rs), 2)
    print(f"| {t} | {fmt(med(rps), 0)} | {', '.join(fmt(x, 0) for x in rps)} "
          f"| {fmt(med(num(r['p50_us']) for r in rs))} | {fmt(med(num(r['p99_us']) for r in rs))} "
          f"| {sum(int(r['non2xx']) for r in rs)} | {sum(int(r['errors']) for r in rs)} "
          f"| {col('nginx_us')} | {col('gateway_us')} | {col('bare_us')} | {col('upstream_us')} | {col('all_us')} "
          f"| {col('kernel_us')} | {fmt(med(num(r['conns']) for r in rs), 3)} | {fmt(max(num(r['steal_pct']) for r in rs))} | {fmt(max(num(r['others_pct']) for r in rs))} |")

pairs = [("nginx+tg", "nginx"), ("nginx+tg", "nginx-noka"), ("nginx+tg+ka", "nginx"), ("nginx+tg+ka", "nginx+tg"),
         ("nginx+tg+pool", "nginx+tg"), ("nginx+tg+pool", "nginx-noka"),
         ("nginx+tg+newconn", "nginx+tg"), ("nginx+tg+newconn", "nginx-noka"), ("nginx-noka", "nginx"),
         ("gateway", "bare"), ("nginx", "bare"), ("nginx+tg", "gateway"), ("nginx+tg+ka", "gateway")]
print()
for a, b in pairs:
    if a not in of or b not in of:
        continue
    rounds = [k for k in of[b] if k in of[a]]
    ratios = [float(of[a][k]["rps"]) / float(of[b][k]["rps"]) for k in rounds]
    extra = med(float(of[a][k]["all_us"]) - float(of[b][k]["all_us"]) for k in rounds)
    print(f"- {a} / {b}: req/s {statistics.median(ratios):.2f}x (rounds {', '.join(f'{x:.2f}' for x in ratios)}); "
          f"extra CPU of all the servers {fmt(extra, 2)} µs/req")
PY
