//! Typed settings: defaults, then `config/gateway.toml`, then the environment.
//!
//! Every environment variable the binaries read is listed once in [`ENV_VARS`]; that
//! table maps it onto the settings tree and is checked against `.env.example` by a
//! test, so the documentation cannot drift from the code.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::duration;
pub use crate::duration::parse_duration;

mod defaults;
pub mod env_file;
mod quota;
mod tls;
mod validate;
mod values;

pub use self::quota::Quota;
pub use self::tls::TlsSettings;
use self::values::{addr_list, display_list, net_list, optional, optional_text, parsed_list, string_list};
pub use self::values::{AssetUrl, Colour, Origin, PublicUrl};
use crate::domain::DomainName;

/// The default location of the settings file, relative to the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "config/gateway.toml";

/// Every environment variable read, and the settings key it sets.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("APP_ENV", "app.env"),
    ("APP_NAME", "app.name"),
    ("APP_URL", "app.url"),
    ("DATABASE_URL", "database.url"),
    ("DATABASE_MAX_CONNECTIONS", "database.max_connections"),
    ("DATABASE_AUTO_MIGRATE", "database.auto_migrate"),
    ("REDIS_URL", "redis.url"),
    ("REDIS_KEY_PREFIX", "redis.key_prefix"),
    ("RABBITMQ_URL", "rabbitmq.url"),
    ("JWT_SECRET", "jwt.secret"),
    ("JWT_REFRESH_SECRET", "jwt.refresh_secret"),
    ("JWT_ISSUER", "jwt.issuer"),
    ("JWT_AUDIENCE", "jwt.audience"),
    ("JWT_ACCESS_TTL", "jwt.access_ttl"),
    ("JWT_REFRESH_TTL", "jwt.refresh_ttl"),
    ("SMTP_HOST", "smtp.host"),
    ("SMTP_PORT", "smtp.port"),
    ("SMTP_USER", "smtp.user"),
    ("SMTP_PASSWORD", "smtp.password"),
    ("SMTP_FROM", "smtp.from"),
    ("SMTP_TLS", "smtp.tls"),
    ("SMTP_TIMEOUT", "smtp.timeout"),
    ("SMTP_POOL_SIZE", "smtp.pool_size"),
    ("MAIL_TRANSPORT", "mail.transport"),
    ("MAIL_DIR", "mail.dir"),
    ("QUEUE_PREFIX", "queue.prefix"),
    ("QUEUE_MAX_ATTEMPTS", "queue.max_attempts"),
    ("QUEUE_RETRY_BASE_DELAY", "queue.retry_base_delay"),
    ("QUEUE_RETRY_MAX_DELAY", "queue.retry_max_delay"),
    ("QUEUE_OUTBOX_BATCH", "queue.outbox_batch"),
    ("QUEUE_OUTBOX_POLL_INTERVAL", "queue.outbox_poll_interval"),
    ("QUEUE_RETENTION", "queue.retention"),
    ("QUEUE_PURGE_INTERVAL", "queue.purge_interval"),
    ("CORS_ORIGINS", "cors.origins"),
    ("RATE_LIMIT_WINDOW", "rate_limit.window"),
    ("RATE_LIMIT_MAX", "rate_limit.max"),
    ("RATE_LIMIT_REGISTER", "rate_limit.register"),
    ("RATE_LIMIT_TENANT_CREATE", "rate_limit.tenant_create"),
    ("RATE_LIMIT_INVITATIONS", "rate_limit.invitations"),
    ("RATE_LIMIT_MAIL", "rate_limit.mail"),
    ("LOG_LEVEL", "log.level"),
    ("LOG_FORMAT", "log.format"),
    ("LOG_ACCESS_SAMPLE", "log.access_sample"),
    ("PASSWORD_HASH_CONCURRENCY", "password.hash_concurrency"),
    ("GATEWAY_LISTEN", "gateway.listen"),
    ("GATEWAY_ADMIN_LISTEN", "gateway.admin_listen"),
    ("GATEWAY_ROUTES", "gateway.routes"),
    ("GATEWAY_THREADS", "gateway.threads"),
    ("GATEWAY_BODY_LIMIT", "gateway.body_limit"),
    ("GATEWAY_SHUTDOWN_GRACE", "gateway.shutdown_grace"),
    ("GATEWAY_BASE_DOMAIN", "gateway.base_domain"),
    ("GATEWAY_ACCESS_COOKIE", "gateway.access_cookie"),
    ("GATEWAY_REFRESH_COOKIE", "gateway.refresh_cookie"),
    ("GATEWAY_TENANT_COOKIE", "gateway.tenant_cookie"),
    ("GATEWAY_COOKIE_SECURE", "gateway.cookie_secure"),
    ("GATEWAY_TRUSTED_DOMAINS", "gateway.trusted_domains"),
    ("GATEWAY_REFRESH_GRACE", "gateway.refresh_grace"),
    ("GATEWAY_ASSERTION_SECRET", "gateway.assertion_secret"),
    ("GATEWAY_ASSERTION_TTL", "gateway.assertion_ttl"),
    ("GATEWAY_ASSERTION_ALGORITHM", "gateway.assertion_algorithm"),
    ("GATEWAY_ASSERTION_KEY_FILE", "gateway.assertion_key_file"),
    ("GATEWAY_HEALTH_CHECK_INTERVAL", "gateway.health_check_interval"),
    ("GATEWAY_TRUSTED_PROXIES", "gateway.trusted_proxies"),
    ("GATEWAY_VERIFY_LISTEN", "gateway.verify_listen"),
    ("GATEWAY_IDENTITY_HEADER_PREFIXES", "gateway.identity_header_prefixes"),
    ("GATEWAY_DNS_RESOLVER", "gateway.dns_resolver"),
    ("GATEWAY_RUNTIME_DIR", "gateway.runtime_dir"),
    ("GATEWAY_UPGRADE_SOCKET", "gateway.upgrade_socket"),
    ("GATEWAY_PID_FILE", "gateway.pid_file"),
    ("GATEWAY_TLS_LISTEN", "gateway.tls.listen"),
    ("GATEWAY_TLS_CERT", "gateway.tls.cert"),
    ("GATEWAY_TLS_KEY", "gateway.tls.key"),
    ("GATEWAY_TLS_CERTS_DIR", "gateway.tls.certs_dir"),
    ("GATEWAY_H2C", "gateway.tls.h2c"),
    ("GATEWAY_HTTP_REDIRECT", "gateway.tls.http_redirect"),
    ("GATEWAY_HSTS_MAX_AGE", "gateway.tls.hsts_max_age"),
    ("GATEWAY_HSTS_INCLUDE_SUBDOMAINS", "gateway.tls.hsts_include_subdomains"),
    ("PORTAL_PRODUCT_NAME", "portal.product_name"),
    ("PORTAL_LOGO_URL", "portal.logo_url"),
    ("PORTAL_PRIMARY_COLOR", "portal.primary_color"),
    ("CACHE_L1_MAX_ENTRIES", "cache.l1_max_entries"),
    ("CACHE_NEGATIVE_TTL", "cache.negative_ttl"),
    ("METRICS_TENANT_LABELS", "metrics.tenant_labels"),
    ("INVITATION_TTL", "tenants.invitation_ttl"),
    ("WORKER_ADMIN_LISTEN", "worker.admin_listen"),
    ("WORKER_CONCURRENCY", "worker.concurrency"),
    ("WORKER_SHUTDOWN_GRACE", "worker.shutdown_grace"),
];

/// Values shipped in `.env.example` and `config/gateway.toml`: a secret still set to
/// one of them is as good as public.
const EXAMPLE_SECRETS: &[&str] =
    &["change-me-to-a-random-string-of-at-least-32-bytes", "change-me-to-another-random-string-of-32-bytes"];

/// The minimum length of a signing secret outside the development profile.
pub const MIN_SECRET_BYTES: usize = 32;

/// Errors raised while loading or validating settings.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A source could not be read or a value had the wrong shape.
    #[error("invalid configuration: {0}")]
    Load(String),
    /// The values parsed but break a rule; the message names the variable.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Which rules apply: `development` relaxes the secret checks and cookie security.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Local development and tests.
    #[serde(alias = "dev")]
    Development,
    /// Everything else; the default.
    #[serde(alias = "prod")]
    Production,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// How the worker talks to the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text (local sinks only).
    None,
    /// STARTTLS upgrade, required.
    Starttls,
    /// Implicit TLS.
    Tls,
}

/// Which transport the worker hands rendered mail to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    /// The SMTP server in `SMTP_*`.
    Smtp,
    /// `.eml` files in `MAIL_DIR` (development and demos).
    File,
    /// Each message's recipient, subject and text written to the log, one-time
    /// links included: for trying the product out, refused with
    /// `APP_ENV=production`.
    Log,
}

/// The whole settings tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Product-wide settings.
    pub app: AppSettings,
    /// Postgres.
    pub database: DatabaseSettings,
    /// Redis (shared cache, pub/sub, rate limits).
    pub redis: RedisSettings,
    /// RabbitMQ.
    pub rabbitmq: RabbitMqSettings,
    /// Token signing and lifetimes.
    pub jwt: JwtSettings,
    /// Outgoing mail.
    pub smtp: SmtpSettings,
    /// Where rendered mail goes.
    pub mail: MailSettings,
    /// RabbitMQ queue names, retries and the outbox relay.
    pub queue: QueueSettings,
    /// CORS for the auth API.
    pub cors: CorsSettings,
    /// Default limits for credential endpoints.
    pub rate_limit: RateLimitSettings,
    /// Logging.
    pub log: LogSettings,
    /// Password hashing.
    pub password: PasswordSettings,
    /// The role cache.
    pub cache: CacheSettings,
    /// Prometheus metrics.
    pub metrics: MetricsSettings,
    /// Tenant management.
    pub tenants: TenantSettings,
    /// The gateway binary.
    pub gateway: GatewaySettings,
    /// The hosted login portal's look.
    pub portal: PortalSettings,
    /// The worker binary.
    pub worker: WorkerSettings,
}

/// Product-wide settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSettings {
    /// `APP_ENV`: `development` or `production`.
    pub env: Profile,
    /// `APP_NAME`: shown in emails and pages.
    pub name: String,
    /// `APP_URL`: the public base URL links are built from.
    pub url: PublicUrl,
}

/// Postgres settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `DATABASE_URL`.
    #[serde(serialize_with = "expose")]
    pub url: SecretString,
    /// `DATABASE_MAX_CONNECTIONS`: pool size per process.
    pub max_connections: u32,
    /// `DATABASE_AUTO_MIGRATE`: run migrations when the gateway starts.
    pub auto_migrate: bool,
}

/// Redis settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `REDIS_URL`; unset or empty means none: single-node mode, where the gateway
    /// keeps its cache, rate limits, invalidations and live notifications in
    /// process (one instance only).
    #[serde(serialize_with = "optional_secret_text", deserialize_with = "optional_secret")]
    pub url: Option<SecretString>,
    /// `REDIS_KEY_PREFIX`: prepended to every key and channel, so several deployments
    /// (or tests) can share one Redis.
    pub key_prefix: String,
}

/// RabbitMQ settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RabbitMqSettings {
    /// `RABBITMQ_URL`; unset or empty means none: the gateway then runs the
    /// worker's jobs itself, straight from the outbox, and no worker daemon is needed.
    #[serde(serialize_with = "optional_secret_text", deserialize_with = "optional_secret")]
    pub url: Option<SecretString>,
}

/// Token settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    /// `JWT_SECRET`: HS256 key for access tokens.
    #[serde(serialize_with = "expose")]
    pub secret: SecretString,
    /// `JWT_REFRESH_SECRET`: HMAC key refresh-token hashes are computed with.
    #[serde(serialize_with = "expose")]
    pub refresh_secret: SecretString,
    /// `JWT_ISSUER`: the `iss` claim.
    pub issuer: String,
    /// `JWT_AUDIENCE`: the `aud` claim.
    pub audience: String,
    /// `JWT_ACCESS_TTL`: access-token lifetime.
    #[serde(with = "duration")]
    pub access_ttl: Duration,
    /// `JWT_REFRESH_TTL`: refresh-token lifetime.
    #[serde(with = "duration")]
    pub refresh_ttl: Duration,
}

/// SMTP settings (used by the worker).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    /// `SMTP_HOST`.
    pub host: String,
    /// `SMTP_PORT`.
    pub port: u16,
    /// `SMTP_USER`: empty for no authentication.
    pub user: String,
    /// `SMTP_PASSWORD`.
    #[serde(serialize_with = "expose")]
    pub password: SecretString,
    /// `SMTP_FROM`: the From header.
    pub from: String,
    /// `SMTP_TLS`: `none`, `starttls` or `tls`.
    pub tls: SmtpTls,
    /// `SMTP_TIMEOUT`: limit on each SMTP command (connect, greeting, DATA...).
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// `SMTP_POOL_SIZE`: most SMTP connections kept open and used at once.
    pub pool_size: u32,
}

/// Mail delivery settings (used by the worker).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    /// `MAIL_TRANSPORT`: `smtp`, `file` or `log`.
    pub transport: MailTransport,
    /// `MAIL_DIR`: the folder `.eml` files are written to with `MAIL_TRANSPORT=file`.
    pub dir: PathBuf,
}

/// RabbitMQ topology and outbox relay settings (used by both binaries).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    /// `QUEUE_PREFIX`: prepended to every queue name (`{prefix}email`...), so several
    /// deployments (or tests) can share one broker.
    pub prefix: String,
    /// `QUEUE_MAX_ATTEMPTS`: attempts before a job goes to the dead-letter queue.
    pub max_attempts: u32,
    /// `QUEUE_RETRY_BASE_DELAY`: the wait before the first retry; doubled each time.
    #[serde(with = "duration")]
    pub retry_base_delay: Duration,
    /// `QUEUE_RETRY_MAX_DELAY`: the longest wait between two attempts.
    #[serde(with = "duration")]
    pub retry_max_delay: Duration,
    /// `QUEUE_OUTBOX_BATCH`: outbox rows the relay publishes per transaction.
    pub outbox_batch: u32,
    /// `QUEUE_OUTBOX_POLL_INTERVAL`: how often the relay looks for rows when no
    /// notification woke it.
    #[serde(with = "duration")]
    pub outbox_poll_interval: Duration,
    /// `QUEUE_RETENTION`: how long published outbox rows and the worker's record of
    /// processed messages are kept before the worker deletes them. Unpublished rows
    /// are never deleted.
    #[serde(with = "duration")]
    pub retention: Duration,
    /// `QUEUE_PURGE_INTERVAL`: how often the worker deletes what is past retention.
    #[serde(with = "duration")]
    pub purge_interval: Duration,
}

/// CORS settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSettings {
    /// `CORS_ORIGINS`: comma-separated origins allowed to call `/auth` from a browser.
    #[serde(deserialize_with = "parsed_list")]
    pub origins: Vec<Origin>,
}

/// Abuse limits of the auth API, each counted per account (the normalized
/// address or the user id) and per client IP (IPv6 per /64), in Redis.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// `RATE_LIMIT_WINDOW`: the window of the credential endpoints (login,
    /// forgot-password).
    #[serde(with = "duration")]
    pub window: Duration,
    /// `RATE_LIMIT_MAX`: credential attempts per window.
    pub max: u32,
    /// `RATE_LIMIT_REGISTER`: sign-ups per address and per IP.
    pub register: Quota,
    /// `RATE_LIMIT_TENANT_CREATE`: tenants created per account and per IP.
    pub tenant_create: Quota,
    /// `RATE_LIMIT_INVITATIONS`: invitations sent per account and per IP.
    pub invitations: Quota,
    /// `RATE_LIMIT_MAIL`: mails one address is sent on request (invitations to it,
    /// verification resends), and verification resends per IP.
    pub mail: Quota,
}

impl RateLimitSettings {
    /// The credential endpoints' quota (`RATE_LIMIT_MAX` per `RATE_LIMIT_WINDOW`).
    pub fn credentials(&self) -> Quota {
        Quota { max: self.max, window: self.window }
    }
}

/// Logging settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `LOG_LEVEL`: an `EnvFilter` directive such as `info` or `gateway=debug,info`.
    pub level: String,
    /// `LOG_FORMAT`: `text` or `json`.
    pub format: LogFormat,
    /// `LOG_ACCESS_SAMPLE`: the share (0 to 1) of the gateway's access-log lines
    /// for answers below 400 that are written; answers of 400 and more always are.
    pub access_sample: f64,
}

/// Password hashing settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordSettings {
    /// `PASSWORD_HASH_CONCURRENCY`: argon2 jobs run at once (0 = number of cores).
    pub hash_concurrency: usize,
}

/// Role-cache settings (TTLs per key are fixed by design: user 5 min, tenant 1 h,
/// role 10 min).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    /// `CACHE_L1_MAX_ENTRIES`: in-process entries per cache (users, tenants, roles...).
    pub l1_max_entries: u64,
    /// `CACHE_NEGATIVE_TTL`: how long "not a member" and "no such tenant" are cached.
    #[serde(with = "duration")]
    pub negative_ttl: Duration,
}

/// Prometheus metrics settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// `METRICS_TENANT_LABELS`: how many tenants, the busiest, keep their slug in
    /// the request and refusal metrics' `tenant` label; the rest count as
    /// `other` (0: all of them).
    pub tenant_labels: usize,
}

/// Tenant management settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// `INVITATION_TTL`: how long an emailed invitation link works.
    #[serde(with = "duration")]
    pub invitation_ttl: Duration,
}

/// Gateway settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// `GATEWAY_LISTEN`: the proxy listener.
    pub listen: SocketAddr,
    /// `GATEWAY_ADMIN_LISTEN`: `/healthz`, `/readyz`, `/metrics`.
    pub admin_listen: SocketAddr,
    /// `GATEWAY_ROUTES`: a routes file or a folder of them.
    pub routes: PathBuf,
    /// `GATEWAY_THREADS`: proxy worker threads (0 = number of cores).
    pub threads: usize,
    /// `GATEWAY_BODY_LIMIT`: largest accepted auth API body, in bytes.
    pub body_limit: usize,
    /// `GATEWAY_SHUTDOWN_GRACE`: how long in-flight requests get on SIGTERM.
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
    /// `GATEWAY_BASE_DOMAIN`: tenants are `{slug}.{base_domain}` for `subdomain`
    /// resolution; empty disables it.
    #[serde(deserialize_with = "optional", serialize_with = "optional_text")]
    pub base_domain: Option<DomainName>,
    /// `GATEWAY_ACCESS_COOKIE`: cookie an access token is also read from (and the
    /// portal sets).
    pub access_cookie: String,
    /// `GATEWAY_REFRESH_COOKIE`: cookie the portal keeps the refresh token in; the
    /// proxy refreshes an expired access cookie from it.
    pub refresh_cookie: String,
    /// `GATEWAY_TENANT_COOKIE`: cookie holding the tenant chosen in the portal.
    pub tenant_cookie: String,
    /// `GATEWAY_COOKIE_SECURE`: mark session cookies `Secure` (false only for local
    /// plain-HTTP setups).
    pub cookie_secure: bool,
    /// `GATEWAY_TRUSTED_DOMAINS`: more domains (and their subdomains) that return
    /// URLs may point at and cookie-authenticated writes may come from, besides the
    /// request's own host and `GATEWAY_BASE_DOMAIN`.
    #[serde(deserialize_with = "parsed_list")]
    pub trusted_domains: Vec<DomainName>,
    /// `GATEWAY_REFRESH_GRACE`: how long a gateway answers the same refresh cookie
    /// again with the pair it rotated it into (parallel browser requests); 0
    /// disables it.
    #[serde(with = "duration")]
    pub refresh_grace: Duration,
    /// `GATEWAY_ASSERTION_ALGORITHM`: `EdDSA` (Ed25519, public keys at
    /// `/.well-known/jwks.json`; the default) or `HS256` (with
    /// `GATEWAY_ASSERTION_SECRET`, which apps must then hold).
    pub assertion_algorithm: crate::assertion::AssertionAlgorithm,
    /// `GATEWAY_ASSERTION_KEY_FILE`: PEM file of Ed25519 private keys (PKCS#8), the
    /// first signing; re-read when it changes. Empty: a key made at start (one
    /// instance only: several must share the file).
    pub assertion_key_file: PathBuf,
    /// `GATEWAY_ASSERTION_SECRET`: HS256 key of the signed identity assertion sent
    /// upstream (`X-Tenantgate-Assertion`), with `GATEWAY_ASSERTION_ALGORITHM=HS256`.
    #[serde(serialize_with = "expose")]
    pub assertion_secret: SecretString,
    /// `GATEWAY_ASSERTION_TTL`: lifetime of an assertion (1 to 60 s).
    #[serde(with = "duration")]
    pub assertion_ttl: Duration,
    /// `GATEWAY_HEALTH_CHECK_INTERVAL`: how often upstreams are probed.
    #[serde(with = "duration")]
    pub health_check_interval: Duration,
    /// `GATEWAY_TRUSTED_PROXIES`: addresses or CIDR blocks of proxies in front of
    /// the gateway whose `X-Forwarded-For`, `X-Forwarded-Proto` and other
    /// forwarding headers are believed; empty (the default) trusts none.
    #[serde(deserialize_with = "net_list", serialize_with = "display_list")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `GATEWAY_VERIFY_LISTEN`: a listener that answers only forward-auth
    /// (`/auth/verify...`), to every peer, on a loopback or private address; empty
    /// for none (forward-auth is then answered to `GATEWAY_TRUSTED_PROXIES` only).
    #[serde(deserialize_with = "tls::optional_addr", serialize_with = "tls::optional_addr_text")]
    pub verify_listen: Option<SocketAddr>,
    /// `GATEWAY_IDENTITY_HEADER_PREFIXES`: more header-name prefixes to strip from
    /// client requests in every spelling, besides the built-in `X-User-`,
    /// `X-Tenant-`, `X-Auth-` and `X-Tenantgate-`.
    #[serde(deserialize_with = "string_list")]
    pub identity_header_prefixes: Vec<String>,
    /// `GATEWAY_DNS_RESOLVER`: DNS servers (`ip:port`, comma-separated) that custom
    /// domains' TXT challenges are looked up with; empty uses the system's
    /// (`/etc/resolv.conf`).
    #[serde(deserialize_with = "addr_list", serialize_with = "display_list")]
    pub dns_resolver: Vec<SocketAddr>,
    /// `GATEWAY_RUNTIME_DIR`: where the zero-downtime upgrade socket
    /// (`upgrade.sock`) and the pid file (`gateway.pid`) live; created with mode
    /// 0700 (an existing one is tightened to it).
    pub runtime_dir: PathBuf,
    /// TLS: the HTTPS listener, certificates, h2c, redirect, HSTS.
    pub tls: TlsSettings,
    /// `GATEWAY_UPGRADE_SOCKET`: the zero-downtime upgrade socket; empty is
    /// `upgrade.sock` in `GATEWAY_RUNTIME_DIR`. See [`Settings::upgrade_socket`].
    pub upgrade_socket: PathBuf,
    /// `GATEWAY_PID_FILE`: the pid file; empty is `gateway.pid` in
    /// `GATEWAY_RUNTIME_DIR`. See [`Settings::pid_file`].
    pub pid_file: PathBuf,
}

/// How the hosted login portal (`/auth/ui/`) looks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalSettings {
    /// `PORTAL_PRODUCT_NAME`: the name on the pages; `APP_NAME` when empty.
    pub product_name: String,
    /// `PORTAL_LOGO_URL`: an `https://`, `http://` or `/` URL of the logo; empty for
    /// none.
    #[serde(deserialize_with = "optional", serialize_with = "optional_text")]
    pub logo_url: Option<AssetUrl>,
    /// `PORTAL_PRIMARY_COLOR`: buttons and links, as `#rgb` or `#rrggbb`.
    pub primary_color: Colour,
}

/// Worker settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// `WORKER_ADMIN_LISTEN`: `/healthz`, `/readyz`, `/metrics`.
    pub admin_listen: SocketAddr,
    /// `WORKER_CONCURRENCY`: jobs run at once per queue (also the prefetch).
    pub concurrency: u16,
    /// `WORKER_SHUTDOWN_GRACE`: how long in-flight jobs get to finish on SIGTERM.
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
}

impl Settings {
    /// Loads defaults, then `config_file` (if it exists), then the environment, after
    /// reading `.env` from the working directory if there is one; then validates.
    ///
    /// # Errors
    /// [`Error::Load`] when a source is malformed, [`Error::Invalid`] when a rule is
    /// broken; both name the offending key or variable.
    pub fn load(config_file: &Path) -> Result<Settings, Error> {
        // A missing .env is the normal case in production; one that does not parse
        // is an error (the lines after the bad one would be silently ignored).
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::Load(env_file::describe(&e))),
        }
        Self::load_from(config_file, Env::raw())
    }

    /// Like [`Settings::load`] without reading `.env`; `env` is the environment
    /// provider, so tests can pass their own.
    ///
    /// # Errors
    /// As [`Settings::load`].
    pub fn load_from(config_file: &Path, env: Env) -> Result<Settings, Error> {
        let names: Vec<&str> = ENV_VARS.iter().map(|(name, _)| *name).collect();
        let env = env.only(&names).map(|name| {
            ENV_VARS
                .iter()
                .find(|(var, _)| name.as_str().eq_ignore_ascii_case(var))
                .map(|(_, key)| (*key).into())
                .unwrap_or_else(|| name.into())
        });
        let settings: Settings = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::file(config_file))
            .merge(env)
            .extract()
            .map_err(describe)?;
        settings.validate()?;
        Ok(settings)
    }

    /// The product name the portal shows: `PORTAL_PRODUCT_NAME`, else `APP_NAME`.
    pub fn product_name(&self) -> &str {
        if self.portal.product_name.is_empty() {
            &self.app.name
        } else {
            &self.portal.product_name
        }
    }

    /// `GATEWAY_UPGRADE_SOCKET`, or `upgrade.sock` in `GATEWAY_RUNTIME_DIR`.
    pub fn upgrade_socket(&self) -> PathBuf {
        in_runtime_dir(&self.gateway.upgrade_socket, &self.gateway.runtime_dir, "upgrade.sock")
    }

    /// `GATEWAY_PID_FILE`, or `gateway.pid` in `GATEWAY_RUNTIME_DIR`.
    pub fn pid_file(&self) -> PathBuf {
        in_runtime_dir(&self.gateway.pid_file, &self.gateway.runtime_dir, "gateway.pid")
    }

    /// The number of proxy worker threads, resolving 0 to the number of cores.
    pub fn gateway_threads(&self) -> usize {
        resolve_cores(self.gateway.threads)
    }

    /// The number of concurrent argon2 jobs, resolving 0 to the number of cores.
    pub fn hash_concurrency(&self) -> usize {
        resolve_cores(self.password.hash_concurrency)
    }
}

fn in_runtime_dir(configured: &Path, runtime_dir: &Path, name: &str) -> PathBuf {
    if configured.as_os_str().is_empty() {
        runtime_dir.join(name)
    } else {
        configured.to_owned()
    }
}

fn resolve_cores(configured: usize) -> usize {
    if configured > 0 {
        configured
    } else {
        std::thread::available_parallelism().map(usize::from).unwrap_or(1)
    }
}

/// `Serialize` exists only to feed [`Settings::default`] to figment as the lowest
/// layer, so secrets must round-trip. Never log a serialized `Settings`; its `Debug`
/// (the `SecretString`s') is redacted.
fn expose<S: serde::Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

/// Reads an optional secret: empty (or blank) text is none.
fn optional_secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    let raw = String::deserialize(d)?;
    Ok((!raw.trim().is_empty()).then(|| SecretString::from(raw)))
}

/// Writes what [`optional_secret`] reads: none as empty text.
fn optional_secret_text<S: serde::Serializer>(secret: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.as_ref().map_or("", |secret| secret.expose_secret()))
}

/// A load error naming the environment variable at fault where there is one.
fn describe(e: figment::Error) -> Error {
    let lines: Vec<String> = e
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            match ENV_VARS.iter().find(|(_, k)| *k == key) {
                Some((var, _)) => format!("{var}: {}", e.kind),
                None => e.to_string(),
            }
        })
        .collect();
    Error::Load(lines.join("; "))
}

#[cfg(test)]
mod tests;
