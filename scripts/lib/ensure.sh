# shellcheck shell=bash
# Sourced by the scripts in scripts/: installs the build tools a fresh machine lacks
# and starts the local services (Postgres, Redis, RabbitMQ) when they are down.
# Idempotent and quiet when everything is already there.
#
# The test suite (scripts/test.sh) uses ensure_tools, ensure_e2e_tools and
# ensure_services; the quick start (scripts/dev.sh), which needs PostgreSQL alone,
# uses ensure_build_tools and ensure_postgres.

ensure_tools() {
    local missing=()
    command -v cmake >/dev/null 2>&1 || missing+=(cmake)   # Pingora's build needs it
    command -v pg_isready >/dev/null 2>&1 || missing+=(postgresql-client)
    command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
    command -v promtool >/dev/null 2>&1 || missing+=(prometheus)  # promtool checks our /metrics
    command -v curl >/dev/null 2>&1 || missing+=(curl)   # the TLS tests' HTTP/2 client
    # nginx with auth_request, for the forward-auth tests (their own nginx on a
    # free port; RUNLEVEL=1 below keeps the package from starting the system's).
    [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "==> installing ${missing[*]}"
        if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
        $SUDO apt-get update -qq
        $SUDO env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# What the tests that run other languages need: the login portal's end-to-end
# test (gateway/tests/it/portal_e2e.rs) Debian's chromium, Node.js with npm and
# e2e/node_modules (playwright-core, pinned by e2e/package-lock.json); the
# assertion verifiers (gateway/tests/it/assertions.rs) jose from the same
# node_modules and Debian's python3 with PyJWT and cryptography; the OpenAPI test
# (gateway/tests/it/openapi.rs) schemathesis (ensure_schemathesis).
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
    ensure_schemathesis
}

# schemathesis, the OpenAPI fuzzer gateway/tests/it/openapi.rs runs against a live
# gateway: pinned, in a virtualenv of Debian's python3 under target/ (where the test
# looks for it; SCHEMATHESIS overrides the path).
SCHEMATHESIS_VERSION=4.32.5
SCHEMATHESIS_VENV=target/schemathesis-venv
ensure_schemathesis() {
    local bin=$SCHEMATHESIS_VENV/bin/schemathesis
    if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION"; then
        return 0
    fi
    /usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || apt_install python3-venv
    echo "==> installing schemathesis $SCHEMATHESIS_VERSION into $SCHEMATHESIS_VENV"
    /usr/bin/python3 -m venv --clear "$SCHEMATHESIS_VENV"
    "$SCHEMATHESIS_VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
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
        # shellcheck disable=SC2012
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

# --- For the quick start (scripts/dev.sh): PostgreSQL is the only service. ---

die() {
    echo "!! $*" >&2
    exit 1
}

# Installs Debian packages (apt-get update first), with sudo when not root.
apt_install() {
    local sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "==> installing $*"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# What building tenantgate and talking to its database need: Rust, cmake (Pingora's
# build) and the PostgreSQL client tools (pg_isready, psql). Unlike ensure_tools it
# leaves out redis-tools and prometheus, which only the test suite uses.
ensure_build_tools() {
    command -v cargo >/dev/null 2>&1 \
        || die "cargo not found: install Rust (https://rustup.rs), then run this again"
    local missing=()
    command -v cmake >/dev/null 2>&1 || missing+=(cmake)   # Pingora's build needs it
    if ! command -v pg_isready >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
        missing+=(postgresql-client)
    fi
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null 2>&1 \
        || die "missing ${missing[*]}: install them with your package manager, then run this again"
    apt_install "${missing[@]}"
}

postgres_up() { pg_isready -q -h 127.0.0.1 -p 5432; }

# The newest PostgreSQL cluster configured on this machine (Debian's layout:
# /etc/postgresql/<version>/main), as its version; empty if there is none.
postgres_cluster_version() {
    local conf
    conf=$(find /etc/postgresql -mindepth 2 -maxdepth 2 -name main -type d 2>/dev/null | sort -V | tail -n1)
    [ -z "$conf" ] || basename "$(dirname "$conf")"
}

# Makes PostgreSQL answer on 127.0.0.1:5432, taking the first way that works:
#   1. something already answers there: it is used as it is;
#   2. PostgreSQL is installed but down: its cluster is started;
#   3. a Docker engine with the compose plugin: the postgres service of
#      docker-compose.yml (trust authentication, port 5432 on 127.0.0.1 only);
#   4. Debian or Ubuntu: the postgresql package is installed and set up;
# otherwise it stops, saying what to install. The caller's working directory is
# the repository's root (docker-compose.yml is found there).
ensure_postgres() {
    postgres_up && return 0
    local sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo

    local version
    version=$(postgres_cluster_version)
    if [ -n "$version" ] && command -v pg_ctlcluster >/dev/null 2>&1; then
        local state
        state=$(pg_lsclusters -h 2>/dev/null | awk -v v="$version" '$1 == v && $2 == "main" {print $4 " on port " $3}')
        case $state in online*)
            die "PostgreSQL $version is $state, yet nothing answers on 127.0.0.1:5432:
   check port (5432) and listen_addresses ('localhost') in
   /etc/postgresql/$version/main/postgresql.conf, then: pg_ctlcluster $version main restart" ;;
        esac
        echo "==> starting PostgreSQL $version"
        $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main start
        wait_for PostgreSQL postgres_up
        return
    fi

    # `docker compose version` answers without an engine, so ask the engine too.
    if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1 \
        && docker info >/dev/null 2>&1; then
        echo "==> starting PostgreSQL in Docker (docker compose up -d postgres)"
        docker compose up -d postgres
        wait_for PostgreSQL postgres_up
        return
    fi

    command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not running on 127.0.0.1:5432 and this is not
   Debian or Ubuntu: install and start PostgreSQL so that the user
   postgres can connect over TCP from 127.0.0.1 without a password, or install
   Docker with the compose plugin; then run this again"

    apt_install postgresql
    version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort -V | tail -n1)
    [ -n "$version" ] || die "the postgresql package installed no server under /usr/lib/postgresql"
    if [ ! -d "/etc/postgresql/$version/main" ]; then
        echo "==> creating the PostgreSQL $version cluster"
        $sudo pg_createcluster "$version" main
    fi
    # Development machine only: local TCP connections (127.0.0.1, ::1) need no
    # password, so postgres://postgres@127.0.0.1:5432/... works as the rest of the
    # repository expects. Never do this on a shared or production server.
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    $sudo sed -i -E 's#^(host[[:space:]]+all[[:space:]]+all[[:space:]]+(127\.0\.0\.1/32|::1/128)[[:space:]]+)[^[:space:]]+#\1trust#' "$hba"
    echo "==> starting PostgreSQL $version (local TCP connections trusted: development only)"
    # The package may have started it already (then reload reads pg_hba.conf anew).
    $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main reload >/dev/null 2>&1 \
        || $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main start
    wait_for PostgreSQL postgres_up
}
