# Sourced by the gateway benchmarks (run.sh, instructions.sh): starts the demo
# upstream, a bare Pingora proxy and the gateway on this machine, registers a user
# and warms the gateway's cache.
#
# Needs: UP BARE GW ADMIN (addresses), THREADS (proxy worker threads), WORK (a
# scratch folder). WRAP, if set, is a command prefix both proxies run under (the
# instruction count runs them under valgrind). BENCH_TOOLS lists the Debian
# packages to install if missing (default: wrk). Sets: DB, pids (to kill),
# BARE_PID, GW_PID, AUTH and TEN (the request headers every run sends).

source scripts/lib/ensure.sh
ensure_tools
ensure_services
for tool in ${BENCH_TOOLS:-wrk}; do
    command -v "$tool" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null; }
done

DB=tg_bench_$$
pids=()
alive() { for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && return 0; done; return 1; }
cleanup() {
    kill "${pids[@]}" 2>/dev/null || true
    # Pingora shuts down gracefully; under valgrind that can take minutes.
    for _ in $(seq 1 50); do alive || break; sleep 0.1; done
    kill -9 "${pids[@]}" 2>/dev/null || true
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

read -r -a wrap <<<"${WRAP:-}"
./target/release/demo_upstream --fixed --listen "$UP" >/dev/null 2>&1 & pids+=($!)
"${wrap[@]}" ./target/release/examples/bare_proxy "$BARE" "$UP" "$THREADS" >"$WORK/bare.log" 2>&1 &
BARE_PID=$!; pids+=($BARE_PID)

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
    GATEWAY_LISTEN="$GW" GATEWAY_ADMIN_LISTEN="$ADMIN" GATEWAY_ROUTES="$WORK" GATEWAY_THREADS="$THREADS" \
    LOG_LEVEL=warn TENANTGATE_CONFIG=/nonexistent \
    "${wrap[@]}" ./target/release/gateway >"$WORK/gateway.log" 2>&1 &
GW_PID=$!; pids+=($GW_PID)

# Under valgrind the gateway takes a while to start.
for _ in $(seq 1 600); do curl -sf "http://$ADMIN/readyz" >/dev/null && break; sleep 0.2; done
REG=$(curl -sf "http://$GW/auth/register" -H 'content-type: application/json' \
    -d '{"email":"bench@example.test","password":"benchmark password","name":"Bench"}')
TOKEN=$(sed -E 's/.*"accessToken":"([^"]+)".*/\1/' <<<"$REG")
TENANT=$(sed -E 's/.*"tenants":\[\{"id":"([^"]+)".*/\1/' <<<"$REG")
AUTH="authorization: Bearer $TOKEN"; TEN="x-tenant-id: $TENANT"
# Warm the cache; both proxies must answer 200 before anything is measured.
for url in "http://$GW/x" "http://$BARE/x"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$url" -H "$AUTH" -H "$TEN")
    [ "$code" = 200 ] || { echo "!! $url answered $code"; exit 1; }
done
