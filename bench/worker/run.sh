#!/usr/bin/env bash
# Worker throughput: emails/s through the worker into a local SMTP sink, and
# notifications/s (Postgres insert + Redis PUBLISH), against the machine's real
# Postgres, Redis and RabbitMQ. Creates and removes its own database and queues.
#
#   bench/worker/run.sh                      # defaults: 20000 emails, 20000 notifications
#   BENCH_EMAILS=5000 BENCH_CONCURRENCY=32 bench/worker/run.sh
#
# PROFILE=release (default: bench) builds with optimizations; set CARGO_TARGET_DIR
# to share a build directory.
set -euo pipefail
cd "$(dirname "$0")/../.."
export BENCH_EMAILS="${BENCH_EMAILS:-20000}"
export BENCH_NOTIFICATIONS="${BENCH_NOTIFICATIONS:-20000}"
export BENCH_CONCURRENCY="${BENCH_CONCURRENCY:-64}"
export BENCH_SMTP_POOL="${BENCH_SMTP_POOL:-16}"
exec cargo bench -p tenantgate-worker --bench throughput
