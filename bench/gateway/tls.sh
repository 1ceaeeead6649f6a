#!/usr/bin/env bash
# TLS at the edge (issue 15): the gateway's HTTPS listener against a bare Pingora
# proxy with the same TLS setup (bare_proxy --tls: Pingora's rustls backend with
# ring, TLS 1.2 and 1.3, ALPN h2 then http/1.1, the same certificate and key, from
# `gateway tls-cert`: ECDSA P-256). The bare proxy serves its one certificate; the
# gateway picks one by SNI from its reloadable set (here: no file for `localhost`,
# no wildcard, so the default) and counts handshakes in a callback. The clients ask
# for `localhost`, as a browser names its host: given an IP address, wrk and
# OpenSSL send it as SNI, which rustls ignores with a WARN log line each time, and
# the gateway prints rustls' log lines (the bare proxy has no logger).
# Four settings, 1 proxy thread, unpinned, each ROUNDS rounds over its targets with
# the order rotating per round:
#   h1       HTTP/1.1 keep-alive, wrk -t1 -c$CONNS: both proxies over TLS, and over
#            plain HTTP for reference (what TLS costs each);
#   h2       HTTP/2 over TLS, h2load -t1 -c$H2_CLIENTS -m$H2_STREAMS: both proxies;
#   resumed  a new connection for every request: wrk -c$CONNS -H 'Connection: close'.
#            wrk keeps each connection's TLS session for its next one (as h2load
#            does), so every handshake but the first is a TLS 1.3 resumption (a PSK
#            with an X25519 exchange: no certificate, no signature), like a
#            returning browser's;
#   full     the same with wrk -c$FULL_CONNS: full handshakes (X25519 and the
#            server's ECDSA P-256 signature over its certificate), like new
#            visitors'. Both proxies keep rustls' default session store, 256
#            entries, oldest out first, and each connection leaves 2 tickets in it:
#            past ~128 connections reconnecting in turn a client's ticket is gone
#            when it offers it. The loopback bytes per request show it (a full
#            handshake carries the certificate and its signature, ~0.7 KB more).
# Every HTTP target gets the same request bytes (the gateway's /d route: JWT, tenant
# by header, role check, identity headers; a Host or :authority of the same length,
# the same Authorization and X-Tenant-Id). Each target must answer 200 over
# HTTP/1.1 and HTTP/2 with the CA's certificate checked (curl --cacert) before
# anything is measured. Reports per target the median and spread of requests/s,
# median p50/p99 (wrk's and h2load's request latencies: a new
# connection's handshake is not in them), non-2xx answers, socket errors and the
# proxy process's CPU time per request (user + system, /proc/<pid>/stat), the
# bytes through the loopback interface per request (client, proxy and upstream:
# the whole machine's, so anything else talking over loopback meanwhile adds to
# it) and the CPU the rest of the machine took meanwhile (all CPU time, steal
# included, less the proxies', the upstream's and the client's, as a share of both
# cores: a round someone else's job disturbed shows there); then the median of the
# per-round gateway/bare ratios. The client shares the machine: on 2 cores the
# handshake runs are bound by OpenSSL's client, and the proxy's CPU per handshake
# is the figure to compare.
#
# Usage: bench/gateway/tls.sh [seconds] [connections] [rounds]   (defaults 10, 32, 3)
#        H2_CLIENTS (default 8), H2_STREAMS (10) and FULL_CONNS (256) set the h2
#        and full-handshake loads.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${1:-10}
CONNS=${2:-32}
ROUNDS=${3:-3}
H2_CLIENTS=${H2_CLIENTS:-8}
H2_STREAMS=${H2_STREAMS:-10}
FULL_CONNS=${FULL_CONNS:-256}
UP=127.0.0.1:3900 BARE=127.0.0.1:8181 GW=127.0.0.1:8180 ADMIN=127.0.0.1:9190
BARE_TLS=127.0.0.1:8182 GW_TLS=127.0.0.1:8443
# What the clients ask for: the same name and as many port digits, so every target
# gets as long a Host (and SNI).
authority() { echo "localhost:${1##*:}"; }
OUT=bench/results; mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT   # stack.sh replaces it with its own cleanup
THREADS=1

command -v h2load >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client >/dev/null; }
[ -x /usr/bin/time ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
command -v openssl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null; }
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -gt $((FULL_CONNS + 64)) ] || ulimit -n $((FULL_CONNS + 1024))

# The certificate both proxies serve (stack.sh builds too; this build makes it a no-op).
echo "==> building (release) and writing a local certificate"
cargo build --release -q -p tenantgate-gateway --bin gateway --bin demo_upstream --example bare_proxy
./target/release/gateway tls-cert --dir "$WORK/tls" >/dev/null
CA=$WORK/tls/ca.pem CERT=$WORK/tls/localhost.pem KEY=$WORK/tls/localhost.key
GATEWAY_ENV="GATEWAY_TLS_LISTEN=$GW_TLS GATEWAY_TLS_CERT=$CERT GATEWAY_TLS_KEY=$KEY ${GATEWAY_ENV:-}"
BARE_ARGS="--tls $BARE_TLS $CERT $KEY"
source bench/gateway/stack.sh

# Both TLS listeners answer 200 over HTTP/1.1 and HTTP/2 (ALPN), the certificate
# checked against the local CA.
check_targets "http://$(authority "$BARE")/d/x" "http://$(authority "$GW")/d/x"
for addr in "$BARE_TLS" "$GW_TLS"; do
    for version in 1.1 2; do
        got=$(curl -s -o /dev/null -w '%{http_code} %{http_version}' --cacert "$CA" "--http$version" \
            "https://$(authority "$addr")/d/x" -H "$AUTH" -H "$TEN") || true
        [ "$got" = "200 $version" ] || { echo "!! https://$(authority "$addr")/d/x over HTTP/$version answered '$got'"; tail -5 "$WORK/gateway.log" "$WORK/bare.log"; exit 1; }
    done
done
echo "==> what each TLS listener negotiates with OpenSSL's client"
for addr in "$BARE_TLS" "$GW_TLS"; do
    summary=$(openssl s_client -connect "$addr" -servername localhost -alpn h2,http/1.1 -CAfile "$CA" </dev/null 2>/dev/null |
        awk '/Cipher is/ {p=$2; sub(/,/, "", p); c=$NF} /^Server public key is/ {k=$5" bit"} /Peer signature type/ {s=$NF}
             /^ALPN protocol/ {a=$NF} /Verify return code/ {v=$4}
             END {printf "%s %s, key %s %s, ALPN %s, verify %s", p, c, s, k, a, v}')
    # Resumption: a second connection offering the first one's session.
    printf 'GET /d/x HTTP/1.1\r\nHost: %s\r\n%s\r\n%s\r\nConnection: close\r\n\r\n' "$(authority "$addr")" "$AUTH" "$TEN" |
        openssl s_client -quiet -ign_eof -connect "$addr" -servername localhost -sess_out "$WORK/session.pem" >/dev/null 2>&1 || true
    resumed=$(openssl s_client -connect "$addr" -servername localhost -sess_in "$WORK/session.pem" </dev/null 2>/dev/null |
        grep -cE '^Reused,' || true)
    printf '  %-15s %s; a second connection %s\n' "$addr" "$summary" "$([ "$resumed" -gt 0 ] && echo resumes || echo 'does NOT resume')"
done

TSV="$WORK/rounds.tsv"
printf 'setting\ttarget\tround\trps\tp50_us\tp99_us\trequests\tnon2xx\terrors\tuser_us\tsys_us\tlo_bytes\tothers_pct\n' >"$TSV"
UP_PID=${pids[0]}

ticks() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }   # utime + stime
user_ticks() { awk '{sub(/.*\) /, ""); print $12}' "/proc/$1/stat"; }
CLK=$(getconf CLK_TCK)
loopback() { awk '$1 == "lo:" {print $2}' /proc/net/dev; }   # bytes received (= sent) on lo
busy() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }   # all CPUs, ticks
ours() { echo $(($(ticks "$BARE_PID") + $(ticks "$GW_PID") + $(ticks "$UP_PID"))); }
NCPU=$(nproc)
cpu_start() { CPU_U0=$(user_ticks "$1"); CPU_T0=$(ticks "$1"); LO0=$(loopback); BUSY0=$(busy); OURS0=$(ours); WALL0=$(date +%s%N); }
cpu_per() { # pid count: prints user_us sys_us loopback_bytes per request, others_pct, since cpu_start
    local u=$(($(user_ticks "$1") - CPU_U0)) t=$(($(ticks "$1") - CPU_T0)) w=$(($(loopback) - LO0))
    local b=$(($(busy) - BUSY0)) o=$(($(ours) - OURS0)) ns=$(($(date +%s%N) - WALL0))
    awk -v n="$2" -v hz="$CLK" -v u="$u" -v t="$t" -v w="$w" -v b="$b" -v o="$o" -v ns="$ns" -v ncpu="$NCPU" \
        -v client="$(cat "$WORK/client.time")" 'BEGIN {
            split(client, c, " "); others = (b - o - (c[1] + c[2]) * hz) / (ns / 1e9 * hz * ncpu) * 100
            if (n > 0) printf "%.2f %.2f %.0f %.1f\n", u/hz*1e6/n, (t-u)/hz*1e6/n, w/n, others; else print "- - - -"}'
}
client() { /usr/bin/time -o "$WORK/client.time" -f '%U %S' "$@"; }   # the load generator, its CPU time kept
micros() { awk '{v=$1; if (v ~ /us$/) f=1; else if (v ~ /ms$/) f=1e3; else f=1e6; sub(/[a-z]+$/, "", v); printf "%.1f\n", v*f}' <<<"$1"; }
record() { # setting target round rps p50 p99 requests non2xx errors user_us sys_us lo_bytes others_pct
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$TSV"
    printf '  %-8s round %s  %-13s %10s /s  p50 %-8s p99 %-8s non-2xx %s errors %s cpu %s+%s us  lo %s B  others %s%%\n' \
        "$1" "$3" "$2" "$4" "$5" "$6" "$8" "$9" "${10}" "${11}" "${12}" "${13}"
}

wrk_run() { # setting target url pid round connections [wrk args...]
    local setting=$1 target=$2 url=$3 pid=$4 round=$5 conns=$6 out="$WORK/wrk.txt"; shift 6
    cpu_start "$pid"
    client wrk -t1 -c"$conns" -d"${DURATION}s" --latency -H "$AUTH" -H "$TEN" "$@" "$url" >"$out"
    local rps p50 p99 reqs non2xx errors cpu
    reqs=$(awk '/requests in/ {print $1}' "$out")
    cpu=$(cpu_per "$pid" "$reqs")
    rps=$(awk '/Requests\/sec/ {print $2}' "$out")
    p50=$(micros "$(awk '$1=="50%" {print $2}' "$out")")
    p99=$(micros "$(awk '$1=="99%" {print $2}' "$out")")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$out"); non2xx=${non2xx:-0}
    errors=$(awk '/Socket errors/ {gsub(/,/, ""); print $4 + $6 + $8 + $10}' "$out"); errors=${errors:-0}
    record "$setting" "$target" "$round" "$rps" "$p50" "$p99" "$reqs" "$non2xx" "$errors" $cpu
}

h2_run() { # setting target url pid round
    local setting=$1 target=$2 url=$3 pid=$4 round=$5 out="$WORK/h2load.txt" log="$WORK/h2load.log"
    cpu_start "$pid"
    client h2load -t1 -c"$H2_CLIENTS" -m"$H2_STREAMS" -D"$DURATION" -H "$AUTH" -H "$TEN" --log-file="$log" "$url" >"$out"
    grep -q '^Application protocol: h2$' "$out" || { echo "!! h2load did not speak h2 to $url:"; cat "$out"; exit 1; }
    local rps ok non2xx errors cpu p50 p99
    ok=$(awk '/^status codes:/ {print $3}' "$out")
    cpu=$(cpu_per "$pid" "$ok")
    rps=$(awk '/^finished in/ {gsub(/,/, ""); print $4}' "$out")
    non2xx=$(awk '/^status codes:/ {gsub(/,/, ""); print $5 + $7 + $9}' "$out")
    errors=$(awk '/^requests:/ {gsub(/,/, ""); print $10}' "$out")   # failed: errored and timed out included
    read -r p50 p99 < <(cut -f3 "$log" | sort -n | awk '{v[NR]=$1} END {printf "%.1f %.1f\n", v[int(NR*0.5)+1], v[int(NR*0.99)+1]}')
    record "$setting" "$target" "$round" "$rps" "$p50" "$p99" "$ok" "$non2xx" "$errors" $cpu
}

declare -A url=([bare-tls]="https://$(authority "$BARE_TLS")/d/x" [gateway-tls]="https://$(authority "$GW_TLS")/d/x"
    [bare-http]="http://$(authority "$BARE")/d/x" [gateway-http]="http://$(authority "$GW")/d/x")
declare -A pid=([bare-tls]="$BARE_PID" [gateway-tls]="$GW_PID" [bare-http]="$BARE_PID" [gateway-http]="$GW_PID")

one() { # setting target round
    local setting=$1 t=$2 round=$3
    case $setting in
        h1) wrk_run h1 "$t" "${url[$t]}" "${pid[$t]}" "$round" "$CONNS" ;;
        h2) h2_run h2 "$t" "${url[$t]}" "${pid[$t]}" "$round" ;;
        resumed) wrk_run resumed "$t" "${url[$t]}" "${pid[$t]}" "$round" "$CONNS" -H 'Connection: close' ;;
        full) wrk_run full "$t" "${url[$t]}" "${pid[$t]}" "$round" "$FULL_CONNS" -H 'Connection: close' ;;
    esac
}

setting() { # name targets...
    local name=$1; shift
    local targets=("$@") n=$# round i
    echo "==> $name: ${#targets[@]} targets, ${DURATION}s each, $ROUNDS rounds"
    local duration=$DURATION; DURATION=2   # warm-up, not recorded
    local tsv=$TSV; TSV=/dev/null
    for t in "${targets[@]}"; do one "$name" "$t" 0 >/dev/null; done
    DURATION=$duration TSV=$tsv
    for round in $(seq 1 "$ROUNDS"); do
        for i in $(seq 0 $((n - 1))); do one "$name" "${targets[$(((i + round) % n))]}" "$round"; done
    done
}

tls_metric() { curl -s "http://$ADMIN/metrics" | awk -v m="$1" 'index($0, m) == 1 {n += $NF} END {print n + 0}'; }
handshakes0=$(tls_metric tenantgate_tls_handshakes_total)
failures0=$(tls_metric tenantgate_tls_handshake_failures_total)

setting h1 bare-tls gateway-tls bare-http gateway-http
setting h2 bare-tls gateway-tls
setting resumed bare-tls gateway-tls
setting full bare-tls gateway-tls

echo "==> the gateway counted $(($(tls_metric tenantgate_tls_handshakes_total) - handshakes0)) TLS handshakes" \
    "and $(($(tls_metric tenantgate_tls_handshake_failures_total) - failures0)) failed ones meanwhile"
curl -s "http://$ADMIN/metrics" | grep '^tenantgate_tls_handshake' || true
echo "==> the gateway's log: $(wc -l <"$WORK/gateway.log") lines"; tail -3 "$WORK/gateway.log"

stamp=$(date -u +%Y%m%dT%H%M%S)
cp "$TSV" "$OUT/tls-$stamp.tsv"
python3 - "$TSV" "$FULL_CONNS" <<'PY' | tee "$OUT/tls-$stamp.md"
import csv, statistics, sys
from collections import defaultdict

rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
titles = {
    "h1": "HTTP/1.1 keep-alive (wrk)",
    "h2": "HTTP/2 over TLS (h2load)",
    "resumed": "a new connection per request, TLS 1.3 resumption (wrk, Connection: close)",
    "full": "a new connection per request, full handshakes (wrk, Connection: close, " + sys.argv[2] + " connections)",
}


def num(v):
    return None if v in ("-", "") else float(v)


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=1):
    return "-" if v is None else f"{v:,.{digits}f}"


for setting in dict.fromkeys(r["setting"] for r in rows):
    of = defaultdict(dict)
    for r in rows:
        if r["setting"] == setting:
            of[r["target"]][r["round"]] = r
    unit, per = "req/s", "req"
    print(f"\n### {titles.get(setting, setting)} ({len(next(iter(of.values())))} rounds)\n")
    print(f"| target | {unit} median | min-max | p50 µs | p99 µs | non-2xx | errors | proxy CPU µs/{per} (user+sys) "
          f"| loopback bytes/{per} | rest of the machine, max % |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    cpu = lambda r: num(r["user_us"]) + num(r["sys_us"]) if num(r["user_us"]) is not None else None
    for t, rs in of.items():
        rs = list(rs.values())
        rps = [float(r["rps"]) for r in rs]
        non2xx = "-" if rs[0]["non2xx"] == "-" else sum(int(r["non2xx"]) for r in rs)
        print(f"| {t} | {fmt(med(rps), 0)} | {fmt(min(rps), 0)}-{fmt(max(rps), 0)} "
              f"| {fmt(med(num(r['p50_us']) for r in rs))} | {fmt(med(num(r['p99_us']) for r in rs))} "
              f"| {non2xx} | {sum(int(r['errors']) for r in rs)} | {fmt(med(cpu(r) for r in rs), 2)} "
              f"| {fmt(med(num(r['lo_bytes']) for r in rs), 0)} | {fmt(max(num(r['others_pct']) for r in rs))} |")
    pairs = [("gateway-tls", "bare-tls"), ("gateway-http", "bare-http"), ("bare-tls", "bare-http"), ("gateway-tls", "gateway-http")]
    for a, b in pairs:
        if a not in of or b not in of:
            continue
        rounds = [k for k in of[b] if k in of[a]]
        ratios = [float(of[a][k]["rps"]) / float(of[b][k]["rps"]) for k in rounds]
        extra = med(cpu(of[a][k]) - cpu(of[b][k]) for k in rounds)
        print(f"\n{a} / {b}: {unit} {statistics.median(ratios):.2f}x (rounds {', '.join(f'{x:.2f}' for x in ratios)}); "
              f"extra proxy CPU {fmt(extra, 2)} µs/{per}")
PY
