#!/usr/bin/env bash
# Quick start: builds tenantgate and runs the gateway and the demo upstream app in
# single-node mode, with PostgreSQL as the only service: no Redis (the gateway
# keeps its cache and rate limits in process) and no RabbitMQ or worker daemon
# (the gateway sends the emails itself, from the outbox, and MAIL_TRANSPORT=log
# prints them, links included, to its log). Ctrl-C stops both.
#
# PostgreSQL: the one answering on 127.0.0.1:5432, else the installed one started,
# else the postgres service of docker-compose.yml, else Debian's package installed
# (see ensure_postgres in scripts/lib/ensure.sh).
#
# On first run it writes .env from .env.example with freshly generated secrets,
# APP_ENV=development and REDIS_URL and RABBITMQ_URL empty, and creates the
# `tenantgate` database. Running it again reuses both.
#
# --tls also serves HTTPS (HTTP/2 and HTTP/1.1) on 127.0.0.1:8443 with a local
# certificate authority and certificate made by `gateway tls-cert` in var/tls/
# (trust var/tls/ca.pem: curl --cacert var/tls/ca.pem https://localhost:8443/...).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/ensure.sh

tls=no
for arg in "$@"; do
    case "$arg" in
        --tls) tls=yes ;;
        *) die "unknown option $arg (dev.sh [--tls])" ;;
    esac
done

secret() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

if [ ! -f .env ]; then
    echo "==> writing .env with fresh secrets (single-node mode)"
    env_file=$(mktemp)   # mode 0600: it holds the secrets
    sed -e "s|^APP_ENV=.*|APP_ENV=development|" \
        -e "s|^JWT_SECRET=.*|JWT_SECRET=$(secret)|" \
        -e "s|^JWT_REFRESH_SECRET=.*|JWT_REFRESH_SECRET=$(secret)|" \
        -e "s|^MAIL_TRANSPORT=.*|MAIL_TRANSPORT=log|" \
        -e "s|^GATEWAY_COOKIE_SECURE=.*|GATEWAY_COOKIE_SECURE=false|" \
        -e "s|^REDIS_URL=.*|REDIS_URL=|" \
        -e "s|^RABBITMQ_URL=.*|RABBITMQ_URL=|" \
        .env.example > "$env_file"
    # Empty is single-node mode; .env.example may not list them at all.
    for var in REDIS_URL RABBITMQ_URL; do
        grep -q "^$var=" "$env_file" || echo "$var=" >> "$env_file"
    done
    mv "$env_file" .env
fi
# An .env from before (or edited since) may still name a Redis or a RabbitMQ: then
# the gateway uses them, and they must be running.
single_node=yes
for var in REDIS_URL RABBITMQ_URL; do
    if grep -Eq "^$var=[^[:space:]]" .env; then
        echo "note: .env sets $var, so the gateway will use it: empty it (\"$var=\") for single-node mode"
        single_node=no
    fi
done

ensure_build_tools
ensure_postgres

psql -w -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1" >/dev/null 2>&1 \
    || die "PostgreSQL answers on 127.0.0.1:5432 but refuses the user postgres without
   a password, which .env's DATABASE_URL uses. On a development machine, trust local
   TCP connections: in pg_hba.conf (psql: SHOW hba_file;) set the method of the lines
   'host all all 127.0.0.1/32' and '::1/128' to trust, and reload PostgreSQL"
if ! psql -w -h 127.0.0.1 -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'tenantgate'" | grep -q 1; then
    echo "==> creating the tenantgate database"
    psql -w -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE tenantgate"
fi

echo "==> building"
cargo build --workspace --bins
./target/debug/gateway migrate

gateway_env=()
if [ "$tls" = yes ]; then
    # A fresh certificate when there is none or it is within a week of expiring.
    if [ ! -f var/tls/localhost.pem ] || [ -n "$(find var/tls/localhost.pem -mtime +80)" ]; then
        ./target/debug/gateway tls-cert --dir var/tls >/dev/null
    fi
    gateway_env=(GATEWAY_TLS_LISTEN=127.0.0.1:8443 GATEWAY_TLS_CERT=var/tls/localhost.pem
        GATEWAY_TLS_KEY=var/tls/localhost.key GATEWAY_COOKIE_SECURE=true)
fi

pids=()
cleanup() {
    trap - EXIT INT TERM
    if [ ${#pids[@]} -gt 0 ]; then
        kill "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
./target/debug/demo_upstream --listen 127.0.0.1:3000 & pids+=($!)
env "${gateway_env[@]}" ./target/debug/gateway & pids+=($!)
echo "==> gateway on http://127.0.0.1:8080 (admin :9090), demo app :3000"
if [ "$tls" = yes ]; then
    echo "    and on https://localhost:8443 (HTTP/2; trust var/tls/ca.pem: curl --cacert var/tls/ca.pem)"
fi
if [ "$single_node" = yes ]; then
    echo "    single-node mode: no Redis, no RabbitMQ, no worker (the gateway runs the email"
    echo "    and notification jobs itself; with MAIL_TRANSPORT=log the emails are printed here)"
fi
# Until Ctrl-C, or until either one exits (then the other is stopped too).
wait -n "${pids[@]}"
