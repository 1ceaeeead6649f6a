# Sourced by the gateway benchmarks (run.sh, instructions.sh, identities.sh, tls.sh):
# starts the demo upstream, a bare Pingora proxy and the gateway on this machine,
# registers a user and warms the gateway's cache.
#
# The gateway serves two routes to the same upstream, told apart by a path of the
# same length so every target gets the same request bytes:
#   /d/...  the default route: JWT, tenant by header, role check, the six identity
#           headers;
#   /f/...  the full-headers route: the same, plus the signed identity assertion.
# The bare proxy gets the same worker threads, allocator, upstream timeouts and
# keepalive pool as the gateway's routes (see gateway/examples/bare_proxy.rs).
#
# Needs: UP BARE GW ADMIN (addresses), WORK (a scratch folder). WRAP, if set, is a
# command prefix both proxies run under (the instruction count runs them under
# valgrind). BENCH_TOOLS lists the Debian packages to install if missing (default:
# wrk). Defines start_proxies THREADS and stop_proxies; sets DB, BARE_PID, GW_PID,
# AUTH and TEN (the request headers every run sends), TENANT and TOKEN; starts the
# proxies with ${THREADS:-1} worker threads. ASSERTION=HS256 signs the full route's
# assertion with HMAC instead of the default Ed25519. GATEWAY_ENV (read when the
# proxies start) adds NAME=value settings to the gateway's environment: the gateway
# runs scaled out (this machine's Redis and RabbitMQ) unless it says
# "REDIS_URL= RABBITMQ_URL=" (single-node mode). BARE_ARGS (likewise) adds arguments
# to the bare proxy's command line (tls.sh: --tls ADDR CERT KEY).

source scripts/lib/ensure.sh
ensure_tools
ensure_services
for tool in ${BENCH_TOOLS:-wrk}; do
    command -v "$tool" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null; }
done

DB=tg_bench_$$
JWT_SECRET=bench-access-secret-0123456789abcdef0123456789
pids=() proxy_pids=()
alive() { for pid in "$@"; do kill -0 "$pid" 2>/dev/null && return 0; done; return 1; }
stop() { # pids...
    [ $# -gt 0 ] || return 0
    kill "$@" 2>/dev/null || true
    # Pingora shuts down gracefully; under valgrind that can take minutes.
    for _ in $(seq 1 50); do alive "$@" || break; sleep 0.1; done
    kill -9 "$@" 2>/dev/null || true
    wait "$@" 2>/dev/null || true
}
cleanup() {
    stop "${proxy_pids[@]}" "${pids[@]}"
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
assertion_env=()
if [ "${ASSERTION:-EdDSA}" = HS256 ]; then
    assertion_env=(GATEWAY_ASSERTION_ALGORITHM=HS256 GATEWAY_ASSERTION_SECRET=bench-assertion-secret-0123456789abcdef012)
fi
./target/release/demo_upstream --fixed --listen "$UP" >/dev/null 2>&1 & pids+=($!)

psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $DB"
cat > "$WORK/routes.toml" <<TOML
[[route]]
name = "default"
path_prefix = "/d"
upstreams = ["$UP"]
auth = "required"
tenant = "required"
tenant_from = ["header"]
min_role = "member"

[[route]]
name = "full"
path_prefix = "/f"
upstreams = ["$UP"]
auth = "required"
tenant = "required"
tenant_from = ["header"]
min_role = "member"
signed_assertion = true
TOML

# Both proxies with $1 worker threads.
start_proxies() {
    local threads=$1
    local gateway_env; read -r -a gateway_env <<<"${GATEWAY_ENV:-}"
    local bare_args; read -r -a bare_args <<<"${BARE_ARGS:-}"
    "${wrap[@]}" ./target/release/examples/bare_proxy "$BARE" "$UP" "$threads" "${bare_args[@]}" >"$WORK/bare.log" 2>&1 &
    BARE_PID=$!
    env -i PATH="$PATH" APP_ENV=production \
        JWT_SECRET=$JWT_SECRET JWT_ACCESS_TTL=1h \
        JWT_REFRESH_SECRET=bench-refresh-secret-0123456789abcdef01234567 \
        DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB REDIS_KEY_PREFIX="tgbench$$:" QUEUE_PREFIX="tgbench$$." \
        REDIS_URL=redis://127.0.0.1:6379 RABBITMQ_URL=amqp://guest:guest@127.0.0.1:5672/%2f \
        GATEWAY_LISTEN="$GW" GATEWAY_ADMIN_LISTEN="$ADMIN" GATEWAY_ROUTES="$WORK/routes.toml" GATEWAY_THREADS="$threads" \
        LOG_LEVEL=warn TENANTGATE_CONFIG=/nonexistent "${assertion_env[@]}" "${gateway_env[@]}" \
        "${wrap[@]}" ./target/release/gateway >"$WORK/gateway.log" 2>&1 &
    GW_PID=$!
    proxy_pids=("$BARE_PID" "$GW_PID")
    # Under valgrind the gateway takes a while to start.
    for _ in $(seq 1 600); do curl -sf "http://$ADMIN/readyz" >/dev/null && break; sleep 0.2; done
    for _ in $(seq 1 100); do curl -s -o /dev/null "http://$BARE/" && break; sleep 0.1; done
}

stop_proxies() {
    stop "${proxy_pids[@]}"
    proxy_pids=()
}

# Sends one request to each target; all must answer 200.
check_targets() { # urls...
    for url in "$@"; do
        code=$(curl -s -o /dev/null -w '%{http_code}' "$url" -H "$AUTH" -H "$TEN")
        [ "$code" = 200 ] || { echo "!! $url answered $code"; tail -5 "$WORK/gateway.log"; exit 1; }
    done
}

start_proxies "${THREADS:-1}"
REG=$(curl -sf "http://$GW/auth/register" -H 'content-type: application/json' \
    -d '{"email":"bench@example.test","password":"benchmark password","name":"Bench"}')
TOKEN=$(sed -E 's/.*"accessToken":"([^"]+)".*/\1/' <<<"$REG")
TENANT=$(sed -E 's/.*"tenants":\[\{"id":"([^"]+)".*/\1/' <<<"$REG")
AUTH="authorization: Bearer $TOKEN"; TEN="x-tenant-id: $TENANT"
check_targets "http://$GW/d/x" "http://$GW/f/x" "http://$BARE/d/x"
