# syntax=docker/dockerfile:1
# tenantgate's image: the gateway, the worker and the demo upstream app, release
# builds, in one image; the command picks which runs (`gateway` by default,
# `gateway migrate`, `worker`, `demo_upstream --listen 0.0.0.0:3000`).
#
#   docker build -t tenantgate .
#
# docker-compose.yml runs the whole stack from it. Checked (statically) by
# scripts/check-compose.sh.
#
# Dependencies are built in a layer of their own (cargo-chef: a "recipe" of the
# manifests and Cargo.lock), so changing tenantgate's code rebuilds tenantgate's
# crates only.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# --- Toolchain: Rust, cargo-chef, and what the C parts of the dependencies need
# (cmake for Pingora's zlib-ng, a C/C++ compiler for mimalloc and ring).
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS chef
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake g++ make pkg-config \
    && rm -rf /var/lib/apt/lists/*
ARG CARGO_CHEF_VERSION=0.1.76
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /app

# --- The recipe: the workspace's manifests and lock file, nothing else.
FROM chef AS planner
COPY Cargo.toml Cargo.lock ./
COPY shared shared
COPY edge edge
COPY gateway gateway
COPY worker worker
COPY testkit testkit
RUN cargo chef prepare --recipe-path recipe.json

# --- The dependencies (cached until a manifest or Cargo.lock changes), then the
# workspace's binaries. The migrations are compiled in (sqlx::migrate! in
# shared/src/db/mod.rs), so they are needed here and not at run time.
FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --workspace --recipe-path recipe.json
COPY Cargo.toml Cargo.lock ./
COPY shared shared
COPY edge edge
COPY gateway gateway
COPY worker worker
COPY testkit testkit
COPY migrations migrations
RUN cargo build --release --locked --workspace --bins \
    && mkdir -p /out \
    && cp target/release/gateway target/release/worker target/release/demo_upstream /out/

# --- Runtime: the binaries, CA certificates (SMTP with TLS, rediss://, amqps://)
# and curl for the health check (the binaries have no health-check command).
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 tenantgate \
    && useradd --system --uid 10001 --gid tenantgate --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin tenantgate
WORKDIR /app
COPY --from=builder /out/ /usr/local/bin/
# The route files (GATEWAY_ROUTES, config/routes relative to /app by default; the
# shipped one fronts a demo_upstream on 127.0.0.1:3000): mount your own over it or
# point GATEWAY_ROUTES elsewhere. config/gateway.toml is left out on purpose: it
# is optional (every setting has a built-in default) and the environment is the
# way to configure a container; mount one and set TENANTGATE_CONFIG to use a file.
COPY config/routes config/routes
# var/: GATEWAY_RUNTIME_DIR (var/run: upgrade socket, pid file) and MAIL_DIR
# (var/mail), relative to the working directory, so writable by the user.
RUN mkdir -p var && chown tenantgate:tenantgate var
# In a container the listeners must not be bound to 127.0.0.1 (the defaults).
ENV GATEWAY_LISTEN=0.0.0.0:8080 \
    GATEWAY_ADMIN_LISTEN=0.0.0.0:9090 \
    WORKER_ADMIN_LISTEN=0.0.0.0:9091
# tenantgate (uid 10001), by number so that "run as non-root" checks can see it.
USER 10001:10001
# The proxy and the admin listener (/healthz, /readyz, /metrics); the worker's
# admin listener is 9091.
EXPOSE 8080 9090
# The gateway's admin /healthz; a container running the worker or the demo app
# overrides this (docker-compose.yml does).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9090/healthz"]
CMD ["gateway"]
