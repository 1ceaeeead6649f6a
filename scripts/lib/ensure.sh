# Sourced by the scripts in scripts/: installs the build tools a fresh machine lacks
# and starts the local services (Postgres, Redis, RabbitMQ) when they are down.
# Idempotent and quiet when everything is already there.

ensure_tools() {
    local missing=()
    command -v cmake >/dev/null 2>&1 || missing+=(cmake)   # Pingora's build needs it
    command -v pg_isready >/dev/null 2>&1 || missing+=(postgresql-client)
    command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
    command -v promtool >/dev/null 2>&1 || missing+=(prometheus)  # promtool checks our /metrics
    if [ ${#missing[@]} -gt 0 ]; then
        echo "==> installing ${missing[*]}"
        if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# What the tests that run other languages need: the login portal's end-to-end
# test (gateway/tests/it/portal_e2e.rs) Debian's chromium, Node.js with npm and
# e2e/node_modules (playwright-core, pinned by e2e/package-lock.json); the
# assertion verifiers (gateway/tests/it/assertions.rs) jose from the same
# node_modules and Debian's python3 with PyJWT and cryptography.
ensure_e2e_tools() {
    local missing=()
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    /usr/bin/python3 -c 'import jwt, cryptography' >/dev/null 2>&1 || missing+=(python3 python3-jwt python3-cryptography)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "==> installing ${missing[*]}"
        if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    if [ ! -d e2e/node_modules/playwright-core ] || [ ! -d e2e/node_modules/jose ]; then
        echo "==> installing the e2e test's node packages (npm ci --prefix e2e)"
        npm ci --prefix e2e --no-audit --no-fund >/dev/null
    fi
}

wait_for() { # name, command...
    local name=$1; shift
    for _ in $(seq 1 60); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 1
    done
    echo "!! $name did not come up" >&2
    return 1
}

ensure_services() {
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        echo "==> starting PostgreSQL"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
        wait_for PostgreSQL pg_isready -q -h 127.0.0.1 -p 5432
    fi
    if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
        echo "==> starting Redis"
        mkdir -p /var/lib/redis /var/log/redis
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
            --dir /var/lib/redis --logfile /var/log/redis/ci.log
        wait_for Redis redis-cli -h 127.0.0.1 -p 6379 ping
    fi
    if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
        echo "==> starting RabbitMQ"
        rabbitmq-server -detached
        wait_for RabbitMQ bash -c '(exec 3<>/dev/tcp/127.0.0.1/5672)'
        rabbitmqctl await_startup >/dev/null 2>&1 || true
    fi
}
