#!/usr/bin/env bash
# TLS at the edge (issue 15): the gateway's HTTPS listener against a bare Pingora
# proxy with the same TLS setup (bare_proxy --tls: Pingora's rustls backend with
# ring, TLS 1.2 and 1.3, ALPN h2 then http/1.1, the same certificate and key, from
# `gateway tls-cert`: ECDSA P-256). The bare proxy serves its one certificate; the
# gateway picks one by SNI from its reloadable set (here the default: the clients
# connect to 127.0.0.1 and name no host) and counts handshakes in a callback.
# Four settings, 1 proxy thread, unpinned, each ROUNDS rounds over its targets with
# the order rotating per round:
#   h1       HTTP/1.1 keep-alive, wrk -t1 -c$CONNS: both proxies over TLS, and over
#            plain HTTP for reference (what TLS costs each);
#   h2       HTTP/2 over TLS, h2load -t1 -c$H2_CLIENTS -m$H2_STREAMS: both proxies;
#   resumed  a new connection for every request (wrk -H 'Connection: close'). wrk
#            keeps each connection's TLS session for its next one (so does h2load),
#            so every handshake but the first is a TLS 1.3 resumption (a PSK with an
#            X25519 exchange, no certificate, no signature), like a returning
#            browser's;
#   full     full handshakes: $HS_CLIENTS `openssl s_time -new` processes at once,
#            each connecting, handshaking (X25519 + the server's ECDSA P-256
#            signature) and closing without a request, over and over.
# Every HTTP target gets the same request bytes (the gateway's /d route: JWT, tenant
# by header, role check, identity headers; a Host or :authority of the same length,
# the same Authorization and X-Tenant-Id). Each target must answer 200 over
# HTTP/1.1 and HTTP/2 with the CA's certificate checked (curl --cacert) before
# anything is measured. Reports per target the median and spread of requests/s
# (handshakes/s), median p50/p99 (wrk's and h2load's request latencies: a new
# connection's handshake is not in them), non-2xx answers, socket errors and the
# proxy process's CPU time per request (user + system, /proc/<pid>/stat); then the
# median of the per-round gateway/bare ratios.
#
# Usage: bench/gateway/tls.sh [seconds] [connections] [rounds]   (defaults 10, 32, 3)
#        H2_CLIENTS (default 8), H2_STREAMS (10) and HS_CLIENTS (8) set the h2 and
#        full-handshake loads.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${1:-10}
CONNS=${2:-32}
ROUNDS=${3:-3}
H2_CLIENTS=${H2_CLIENTS:-8}
H2_STREAMS=${H2_STREAMS:-10}
HS_CLIENTS=${HS_CLIENTS:-8}
# The TLS and plain ports have as many digits, so every target gets as long a Host.
UP=127.0.0.1:3900 BARE=127.0.0.1:8181 GW=127.0.0.1:8180 ADMIN=127.0.0.1:9190
BARE_TLS=127.0.0.1:8182 GW_TLS=127.0.0.1:8443
OUT=bench/results; mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT   # stack.sh replaces it with its own cleanup
THREADS=1

command -v h2load >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client >/dev/null; }
command -v openssl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null; }

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
for addr in "$BARE_TLS" "$GW_TLS"; do
    for version in 1.1 2; do
        got=$(curl -s -o /dev/null -w '%{http_code} %{http_version}' --cacert "$CA" "--http$version" \
            "https://$addr/d/x" -H "$AUTH" -H "$TEN") || true
        [ "$got" = "200 $version" ] || { echo "!! https://$addr/d/x over HTTP/$version answered '$got'"; tail -5 "$WORK/gateway.log" "$WORK/bare.log"; exit 1; }
    done
done
echo "==> what each TLS listener negotiates with OpenSSL's client"
for addr in "$BARE_TLS" "$GW_TLS"; do
    summary=$(openssl s_client -connect "$addr" -alpn h2,http/1.1 -CAfile "$CA" </dev/null 2>/dev/null |
        awk '/^Protocol *:/ {p=$NF} /Cipher is/ {c=$NF} /^Server public key is/ {k=$5" bit"} /Peer signature type/ {s=$NF}
             /^ALPN protocol/ {a=$NF} /Verify return code/ {v=$4}
             END {printf "%s %s, key %s %s, ALPN %s, verify %s", p, c, s, k, a, v}')
    # Resumption: a second connection offering the first one's session.
    printf 'GET /d/x HTTP/1.1\r\nHost: %s\r\n%s\r\n%s\r\nConnection: close\r\n\r\n' "$addr" "$AUTH" "$TEN" |
        openssl s_client -quiet -ign_eof -connect "$addr" -sess_out "$WORK/session.pem" >/dev/null 2>&1 || true
    resumed=$(openssl s_client -connect "$addr" -sess_in "$WORK/session.pem" </dev/null 2>/dev/null | grep -cE '^Reused,' || true)
    printf '  %-15s %s; a second connection %s\n' "$addr" "$summary" "$([ "$resumed" -gt 0 ] && echo resumes || echo 'does NOT resume')"
done

TSV="$WORK/rounds.tsv"
printf 'setting\ttarget\tround\trps\tp50_us\tp99_us\trequests\tnon2xx\terrors\tuser_us\tsys_us\n' >"$TSV"

ticks() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }   # utime + stime
user_ticks() { awk '{sub(/.*\) /, ""); print $12}' "/proc/$1/stat"; }
CLK=$(getconf CLK_TCK)
cpu_start() { CPU_U0=$(user_ticks "$1"); CPU_T0=$(ticks "$1"); }
cpu_per() { # pid count: prints user_us sys_us per unit since cpu_start
    local u=$(($(user_ticks "$1") - CPU_U0)) t=$(($(ticks "$1") - CPU_T0))
    awk -v n="$2" -v hz="$CLK" -v u="$u" -v t="$t" 'BEGIN {if (n > 0) printf "%.2f %.2f\n", u/hz*1e6/n, (t-u)/hz*1e6/n; else print "- -"}'
}
micros() { awk '{v=$1; if (v ~ /us$/) f=1; else if (v ~ /ms$/) f=1e3; else f=1e6; sub(/[a-z]+$/, "", v); printf "%.1f\n", v*f}' <<<"$1"; }
record() { # setting target round rps p50 p99 requests non2xx errors user_us sys_us
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$TSV"
    printf '  %-8s round %s  %-13s %10s /s  p50 %-8s p99 %-8s non-2xx %s errors %s cpu %s+%s us\n' "$1" "$3" "$2" "$4" "$5" "$6" "$8" "$9" "${10}" "${11}"
}

wrk_run() { # setting target url pid round [wrk args...]
    local setting=$1 target=$2 url=$3 pid=$4 round=$5 out="$WORK/wrk.txt"; shift 5
    cpu_start "$pid"
    wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "$AUTH" -H "$TEN" "$@" "$url" >"$out"
    local rps p50 p99 reqs non2xx errors cpu
    rps=$(awk '/Requests\/sec/ {print $2}' "$out")
    p50=$(micros "$(awk '$1=="50%" {print $2}' "$out")")
    p99=$(micros "$(awk '$1=="99%" {print $2}' "$out")")
    reqs=$(awk '/requests in/ {print $1}' "$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$out"); non2xx=${non2xx:-0}
    errors=$(awk '/Socket errors/ {gsub(/,/, ""); print $4 + $6 + $8 + $10}' "$out"); errors=${errors:-0}
    cpu=$(cpu_per "$pid" "$reqs")
    record "$setting" "$target" "$round" "$rps" "$p50" "$p99" "$reqs" "$non2xx" "$errors" $cpu
}

h2_run() { # setting target url pid round
    local setting=$1 target=$2 url=$3 pid=$4 round=$5 out="$WORK/h2load.txt" log="$WORK/h2load.log"
    cpu_start "$pid"
    h2load -t1 -c"$H2_CLIENTS" -m"$H2_STREAMS" -D"$DURATION" -H "$AUTH" -H "$TEN" --log-file="$log" "$url" >"$out"
    grep -q '^Application protocol: h2$' "$out" || { echo "!! h2load did not speak h2 to $url:"; cat "$out"; exit 1; }
    local rps ok non2xx errors cpu p50 p99
    rps=$(awk '/^finished in/ {gsub(/,/, ""); print $4}' "$out")
    ok=$(awk '/^status codes:/ {print $3}' "$out")
    non2xx=$(awk '/^status codes:/ {gsub(/,/, ""); print $5 + $7 + $9}' "$out")
    errors=$(awk '/^requests:/ {gsub(/,/, ""); print $10}' "$out")   # failed: errored and timed out included
    read -r p50 p99 < <(cut -f3 "$log" | sort -n | awk '{v[NR]=$1} END {printf "%.1f %.1f\n", v[int(NR*0.5)+1], v[int(NR*0.99)+1]}')
    cpu=$(cpu_per "$pid" "$ok")
    record "$setting" "$target" "$round" "$rps" "$p50" "$p99" "$ok" "$non2xx" "$errors" $cpu
}

full_run() { # setting target addr pid round
    local setting=$1 target=$2 addr=$3 pid=$4 round=$5 clients=() i start end
    cpu_start "$pid"
    start=$(date +%s%N)
    for i in $(seq 1 "$HS_CLIENTS"); do
        openssl s_time -connect "$addr" -new -time "$DURATION" >"$WORK/s_time.$i" 2>&1 & clients+=($!)
    done
    wait "${clients[@]}" || true
    end=$(date +%s%N)
    local n errors rps cpu
    n=$(cat "$WORK"/s_time.* | awk '/connections in .* real seconds/ {n += $1} END {print n + 0}')
    errors=$(cat "$WORK"/s_time.* | grep -ciE 'error|errno' || true)
    rps=$(awk -v n="$n" -v ns=$((end - start)) 'BEGIN {printf "%.2f\n", n / (ns / 1e9)}')
    cpu=$(cpu_per "$pid" "$n")
    record "$setting" "$target" "$round" "$rps" - - "$n" - "$errors" $cpu
}

declare -A url=([bare-tls]="https://$BARE_TLS/d/x" [gateway-tls]="https://$GW_TLS/d/x"
    [bare-http]="http://$BARE/d/x" [gateway-http]="http://$GW/d/x")
declare -A addr=([bare-tls]="$BARE_TLS" [gateway-tls]="$GW_TLS")
declare -A pid=([bare-tls]="$BARE_PID" [gateway-tls]="$GW_PID" [bare-http]="$BARE_PID" [gateway-http]="$GW_PID")

one() { # setting target round [warm-up]
    local setting=$1 t=$2 round=$3
    case $setting in
        h1) wrk_run h1 "$t" "${url[$t]}" "${pid[$t]}" "$round" ;;
        h2) h2_run h2 "$t" "${url[$t]}" "${pid[$t]}" "$round" ;;
        resumed) wrk_run resumed "$t" "${url[$t]}" "${pid[$t]}" "$round" -H 'Connection: close' ;;
        full) full_run full "$t" "${addr[$t]}" "${pid[$t]}" "$round" ;;
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

stamp=$(date -u +%Y%m%dT%H%M%S)
cp "$TSV" "$OUT/tls-$stamp.tsv"
python3 - "$TSV" <<'PY' | tee "$OUT/tls-$stamp.md"
import csv, statistics, sys
from collections import defaultdict

rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
titles = {
    "h1": "HTTP/1.1 keep-alive (wrk)",
    "h2": "HTTP/2 over TLS (h2load)",
    "resumed": "a new connection per request, TLS 1.3 resumption (wrk, Connection: close)",
    "full": "full TLS handshakes, no request (openssl s_time -new)",
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
    unit = "handshakes/s" if setting == "full" else "req/s"
    per = "handshake" if setting == "full" else "req"
    print(f"\n### {titles.get(setting, setting)} ({len(next(iter(of.values())))} rounds)\n")
    print(f"| target | {unit} median | min-max | p50 µs | p99 µs | non-2xx | errors | CPU µs/{per} (user+sys) |")
    print("|---|---|---|---|---|---|---|---|")
    cpu = lambda r: num(r["user_us"]) + num(r["sys_us"]) if num(r["user_us"]) is not None else None
    for t, rs in of.items():
        rs = list(rs.values())
        rps = [float(r["rps"]) for r in rs]
        non2xx = "-" if rs[0]["non2xx"] == "-" else sum(int(r["non2xx"]) for r in rs)
        print(f"| {t} | {fmt(med(rps), 0)} | {fmt(min(rps), 0)}-{fmt(max(rps), 0)} "
              f"| {fmt(med(num(r['p50_us']) for r in rs))} | {fmt(med(num(r['p99_us']) for r in rs))} "
              f"| {non2xx} | {sum(int(r['errors']) for r in rs)} | {fmt(med(cpu(r) for r in rs), 2)} |")
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
