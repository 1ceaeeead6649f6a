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
use serde::{Deserialize, Deserializer, Serialize};

mod duration;
pub use duration::parse_duration;

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
    ("CORS_ORIGINS", "cors.origins"),
    ("RATE_LIMIT_WINDOW", "rate_limit.window"),
    ("RATE_LIMIT_MAX", "rate_limit.max"),
    ("LOG_LEVEL", "log.level"),
    ("LOG_FORMAT", "log.format"),
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
    ("GATEWAY_HEALTH_CHECK_INTERVAL", "gateway.health_check_interval"),
    ("PORTAL_PRODUCT_NAME", "portal.product_name"),
    ("PORTAL_LOGO_URL", "portal.logo_url"),
    ("PORTAL_PRIMARY_COLOR", "portal.primary_color"),
    ("CACHE_L1_MAX_ENTRIES", "cache.l1_max_entries"),
    ("CACHE_NEGATIVE_TTL", "cache.negative_ttl"),
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
    Load(#[from] Box<figment::Error>),
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
    pub url: String,
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
    /// `REDIS_URL`.
    #[serde(serialize_with = "expose")]
    pub url: SecretString,
    /// `REDIS_KEY_PREFIX`: prepended to every key and channel, so several deployments
    /// (or tests) can share one Redis.
    pub key_prefix: String,
}

/// RabbitMQ settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RabbitMqSettings {
    /// `RABBITMQ_URL`.
    #[serde(serialize_with = "expose")]
    pub url: SecretString,
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
    #[serde(deserialize_with = "duration::deserialize", serialize_with = "duration::serialize")]
    pub access_ttl: Duration,
    /// `JWT_REFRESH_TTL`: refresh-token lifetime.
    #[serde(deserialize_with = "duration::deserialize", serialize_with = "duration::serialize")]
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
    #[serde(deserialize_with = "duration::deserialize", serialize_with = "duration::serialize")]
    pub timeout: Duration,
    /// `SMTP_POOL_SIZE`: most SMTP connections kept open and used at once.
    pub pool_size: u32,
}

/// Mail delivery settings (used by the worker).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    /// `MAIL_TRANSPORT`: `smtp` or `file`.
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
    #[serde(deserialize_with = "duration::deserialize", serialize_with = "duration::serialize")]
    pub retry_base_delay: Duration,
    /// `QUEUE_RETRY_MAX_DELAY`: the longest wait between two attempts.
    #[serde(deserialize_with = "duration::deserialize", serialize_with = "duration::serialize")]
    pub retry_max_delay: Duration,
    /// `QUEUE_OUTBOX_BATCH`: outbox rows the relay publishes per transaction.
    pub outbox_batch: u32,
    /// `QUEUE_OUTBOX_POLL_INTERVAL`: how often the relay looks for rows when no
    /// notification woke it.
    #[serde(deserialize_with = "duration::deserialize", serialize_with = "duration::serialize")]
    pub outbox_poll_interval: Duration,
}

/// CORS settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSettings {
    /// `CORS_ORIGINS`: comma-separated origins allowed to call `/auth` from a browser.
    #[serde(deserialize_with = "string_list")]
    pub origins: Vec<String>,
}

/// Rate-limit defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// `RATE_LIMIT_WINDOW`.
    #[serde(deserialize_with = "duration::deserialize", serialize_with = "duration::serialize")]
    pub window: Duration,
    /// `RATE_LIMIT_MAX`: attempts per window.
    pub max: u32,
}

/// Logging settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `LOG_LEVEL`: an `EnvFilter` directive such as `info` or `gateway=debug,info`.
    pub level: String,
    /// `LOG_FORMAT`: `text` or `json`.
    pub format: LogFormat,
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
    #[serde(deserialize_with = "duration::deserialize", serialize_with = "duration::serialize")]
    pub negative_ttl: Duration,
}

/// Tenant management settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// `INVITATION_TTL`: how long an emailed invitation link works.
    #[serde(deserialize_with = "duration::deserialize", serialize_with = "duration::serialize")]
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
    #[serde(deserialize_with = "duration::deserialize", serialize_with = "duration::serialize")]
    pub shutdown_grace: Duration,
    /// `GATEWAY_BASE_DOMAIN`: tenants are `{slug}.{base_domain}` for `subdomain`
    /// resolution; empty disables it.
    pub base_domain: String,
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
    #[serde(deserialize_with = "string_list")]
    pub trusted_domains: Vec<String>,
    /// `GATEWAY_REFRESH_GRACE`: how long a gateway answers the same refresh cookie
    /// again with the pair it rotated it into (parallel browser requests); 0
    /// disables it.
    #[serde(deserialize_with = "duration::deserialize", serialize_with = "duration::serialize")]
    pub refresh_grace: Duration,
    /// `GATEWAY_ASSERTION_SECRET`: HS256 key of the signed identity assertion sent
    /// upstream (`X-Tenantgate-Assertion`); empty disables it.
    #[serde(serialize_with = "expose")]
    pub assertion_secret: SecretString,
    /// `GATEWAY_ASSERTION_TTL`: lifetime of an assertion.
    #[serde(deserialize_with = "duration::deserialize", serialize_with = "duration::serialize")]
    pub assertion_ttl: Duration,
    /// `GATEWAY_HEALTH_CHECK_INTERVAL`: how often upstreams are probed.
    #[serde(deserialize_with = "duration::deserialize", serialize_with = "duration::serialize")]
    pub health_check_interval: Duration,
}

/// How the hosted login portal (`/auth/ui/`) looks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalSettings {
    /// `PORTAL_PRODUCT_NAME`: the name on the pages; `APP_NAME` when empty.
    pub product_name: String,
    /// `PORTAL_LOGO_URL`: an `https://`, `http://` or `/` URL of the logo; empty for
    /// none.
    pub logo_url: String,
    /// `PORTAL_PRIMARY_COLOR`: buttons and links, as `#rgb` or `#rrggbb`.
    pub primary_color: String,
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
    #[serde(deserialize_with = "duration::deserialize", serialize_with = "duration::serialize")]
    pub shutdown_grace: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        let empty = || SecretString::from(String::new());
        Settings {
            app: AppSettings {
                env: Profile::Production,
                name: "tenantgate".into(),
                url: "http://localhost:8080".into(),
            },
            database: DatabaseSettings {
                url: SecretString::from("postgres://postgres@127.0.0.1:5432/tenantgate"),
                max_connections: 20,
                auto_migrate: true,
            },
            redis: RedisSettings { url: SecretString::from("redis://127.0.0.1:6379"), key_prefix: "tg:".into() },
            rabbitmq: RabbitMqSettings { url: SecretString::from("amqp://guest:guest@127.0.0.1:5672/%2f") },
            jwt: JwtSettings {
                secret: empty(),
                refresh_secret: empty(),
                issuer: "tenantgate".into(),
                audience: "tenantgate".into(),
                access_ttl: Duration::from_secs(15 * 60),
                refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            },
            smtp: SmtpSettings {
                host: "127.0.0.1".into(),
                port: 1025,
                user: String::new(),
                password: empty(),
                from: "tenantgate <no-reply@localhost>".into(),
                tls: SmtpTls::None,
                timeout: Duration::from_secs(10),
                pool_size: 16,
            },
            mail: MailSettings { transport: MailTransport::Smtp, dir: PathBuf::from("var/mail") },
            queue: QueueSettings {
                prefix: String::new(),
                max_attempts: 8,
                retry_base_delay: Duration::from_secs(5),
                retry_max_delay: Duration::from_secs(3600),
                outbox_batch: 100,
                outbox_poll_interval: Duration::from_secs(2),
            },
            cors: CorsSettings { origins: Vec::new() },
            rate_limit: RateLimitSettings { window: Duration::from_secs(15 * 60), max: 10 },
            log: LogSettings { level: "info".into(), format: LogFormat::Text },
            password: PasswordSettings { hash_concurrency: 0 },
            gateway: GatewaySettings {
                listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
                admin_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
                routes: PathBuf::from("config/routes"),
                threads: 0,
                body_limit: 64 * 1024,
                shutdown_grace: Duration::from_secs(10),
                base_domain: String::new(),
                access_cookie: "tg_access".into(),
                refresh_cookie: "tg_refresh".into(),
                tenant_cookie: "tg_tenant".into(),
                cookie_secure: true,
                trusted_domains: Vec::new(),
                refresh_grace: Duration::from_secs(10),
                assertion_secret: empty(),
                assertion_ttl: Duration::from_secs(60),
                health_check_interval: Duration::from_secs(2),
            },
            portal: PortalSettings {
                product_name: String::new(),
                logo_url: String::new(),
                primary_color: "#3b5bdb".into(),
            },
            cache: CacheSettings { l1_max_entries: 100_000, negative_ttl: Duration::from_secs(30) },
            tenants: TenantSettings { invitation_ttl: Duration::from_secs(7 * 86_400) },
            worker: WorkerSettings {
                admin_listen: SocketAddr::from(([127, 0, 0, 1], 9091)),
                concurrency: 32,
                shutdown_grace: Duration::from_secs(10),
            },
        }
    }
}

impl Settings {
    /// Loads defaults, then `config_file` (if it exists), then the environment, after
    /// reading `.env` from the working directory if there is one; then validates.
    ///
    /// # Errors
    /// [`Error::Load`] when a source is malformed, [`Error::Invalid`] when a rule is
    /// broken; both name the offending key or variable.
    pub fn load(config_file: &Path) -> Result<Settings, Error> {
        // A missing .env is the normal case in production.
        let _ = dotenvy::dotenv();
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
            .map_err(|e| Error::Load(Box::new(e)))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks the cross-field rules; called by [`Settings::load`].
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the variable at fault.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |msg: String| Err(Error::Invalid(msg));
        for (var, secret) in [("JWT_SECRET", &self.jwt.secret), ("JWT_REFRESH_SECRET", &self.jwt.refresh_secret)] {
            let value = secret.expose_secret();
            if value.is_empty() {
                return invalid(format!("{var} is not set"));
            }
            if self.app.env == Profile::Production {
                if value.len() < MIN_SECRET_BYTES {
                    return invalid(format!(
                        "{var} is {} bytes long; at least {MIN_SECRET_BYTES} are required outside APP_ENV=development",
                        value.len()
                    ));
                }
                if EXAMPLE_SECRETS.contains(&value) || value.starts_with("change-me") {
                    return invalid(format!(
                        "{var} is still the example value; generate one with `openssl rand -hex 32`"
                    ));
                }
            }
        }
        if self.jwt.secret.expose_secret() == self.jwt.refresh_secret.expose_secret() {
            return invalid("JWT_SECRET and JWT_REFRESH_SECRET must differ".into());
        }
        if self.jwt.access_ttl < Duration::from_secs(10) || self.jwt.access_ttl > Duration::from_secs(3600) {
            return invalid("JWT_ACCESS_TTL must be between 10s and 1h (access tokens are short-lived)".into());
        }
        if self.jwt.refresh_ttl <= self.jwt.access_ttl {
            return invalid("JWT_REFRESH_TTL must be longer than JWT_ACCESS_TTL".into());
        }
        if self.jwt.issuer.is_empty() || self.jwt.audience.is_empty() {
            return invalid("JWT_ISSUER and JWT_AUDIENCE must not be empty".into());
        }
        if !(self.app.url.starts_with("http://") || self.app.url.starts_with("https://")) {
            return invalid(format!("APP_URL must be an http(s) URL, got {:?}", self.app.url));
        }
        for origin in &self.cors.origins {
            if origin == "*" {
                return invalid("CORS_ORIGINS must list origins; `*` cannot be used with credentials".into());
            }
            if http_origin(origin).is_none() {
                return invalid(format!("CORS_ORIGINS entry {origin:?} is not an origin like https://app.example.com"));
            }
        }
        if self.rate_limit.max == 0 || self.rate_limit.window.is_zero() {
            return invalid("RATE_LIMIT_MAX and RATE_LIMIT_WINDOW must be positive".into());
        }
        if self.tenants.invitation_ttl < Duration::from_secs(60) {
            return invalid("INVITATION_TTL must be at least 1m".into());
        }
        if self.gateway.body_limit < 1024 {
            return invalid("GATEWAY_BODY_LIMIT must be at least 1024 bytes".into());
        }
        let assertion = self.gateway.assertion_secret.expose_secret();
        if !assertion.is_empty() {
            if self.app.env == Profile::Production && assertion.len() < MIN_SECRET_BYTES {
                return invalid(format!("GATEWAY_ASSERTION_SECRET must be at least {MIN_SECRET_BYTES} bytes"));
            }
            if assertion == self.jwt.secret.expose_secret() {
                return invalid("GATEWAY_ASSERTION_SECRET must differ from JWT_SECRET (upstreams hold it)".into());
            }
        }
        if self.database.max_connections == 0 {
            return invalid("DATABASE_MAX_CONNECTIONS must be at least 1".into());
        }
        if self.queue.max_attempts == 0 {
            return invalid("QUEUE_MAX_ATTEMPTS must be at least 1".into());
        }
        if self.queue.retry_base_delay.is_zero() || self.queue.retry_max_delay < self.queue.retry_base_delay {
            return invalid("QUEUE_RETRY_BASE_DELAY must be positive and at most QUEUE_RETRY_MAX_DELAY".into());
        }
        if !self.queue.prefix.chars().all(|c| c.is_ascii_alphanumeric() || "._-:".contains(c)) {
            return invalid(format!("QUEUE_PREFIX {:?} may only hold letters, digits and . _ - :", self.queue.prefix));
        }
        if self.queue.outbox_batch == 0 || self.queue.outbox_poll_interval.is_zero() {
            return invalid("QUEUE_OUTBOX_BATCH and QUEUE_OUTBOX_POLL_INTERVAL must be positive".into());
        }
        if self.worker.concurrency == 0 || self.smtp.pool_size == 0 || self.smtp.timeout.is_zero() {
            return invalid("WORKER_CONCURRENCY, SMTP_POOL_SIZE and SMTP_TIMEOUT must be positive".into());
        }
        if self.mail.transport == MailTransport::Smtp && self.smtp.host.is_empty() {
            return invalid("SMTP_HOST must be set with MAIL_TRANSPORT=smtp".into());
        }
        self.validate_portal()?;
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return invalid(format!("LOG_LEVEL {:?} is not a valid filter", self.log.level));
        }
        Ok(())
    }

    /// Cookie names and the portal's look: values that end up in headers and CSS.
    fn validate_portal(&self) -> Result<(), Error> {
        let g = &self.gateway;
        for (var, name) in [
            ("GATEWAY_ACCESS_COOKIE", &g.access_cookie),
            ("GATEWAY_REFRESH_COOKIE", &g.refresh_cookie),
            ("GATEWAY_TENANT_COOKIE", &g.tenant_cookie),
        ] {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(Error::Invalid(format!("{var} {name:?} must be letters, digits, _ or -")));
            }
        }
        if g.access_cookie == g.refresh_cookie
            || g.access_cookie == g.tenant_cookie
            || g.refresh_cookie == g.tenant_cookie
        {
            return Err(Error::Invalid(
                "GATEWAY_ACCESS_COOKIE, GATEWAY_REFRESH_COOKIE and GATEWAY_TENANT_COOKIE must differ".into(),
            ));
        }
        for domain in std::iter::once(&g.base_domain).filter(|d| !d.is_empty()).chain(&g.trusted_domains) {
            if !domain.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') || domain.starts_with('.') {
                return Err(Error::Invalid(format!(
                    "GATEWAY_BASE_DOMAIN / GATEWAY_TRUSTED_DOMAINS entry {domain:?} is not a domain like example.com"
                )));
            }
        }
        let color = self.portal.primary_color.strip_prefix('#').unwrap_or("");
        if !matches!(color.len(), 3 | 6) || !color.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::Invalid(format!(
                "PORTAL_PRIMARY_COLOR {:?} must be a colour like #3b5bdb",
                self.portal.primary_color
            )));
        }
        let logo = &self.portal.logo_url;
        let logo_ok = logo.is_empty()
            || ((logo.starts_with("https://")
                || logo.starts_with("http://")
                || (logo.starts_with('/') && !logo.starts_with("//")))
                && !logo.chars().any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\'));
        if !logo_ok {
            return Err(Error::Invalid(format!("PORTAL_LOGO_URL {logo:?} must be an http(s) URL or a /path")));
        }
        Ok(())
    }

    /// The product name the portal shows: `PORTAL_PRODUCT_NAME`, else `APP_NAME`.
    pub fn product_name(&self) -> &str {
        if self.portal.product_name.is_empty() {
            &self.app.name
        } else {
            &self.portal.product_name
        }
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

fn resolve_cores(configured: usize) -> usize {
    if configured > 0 {
        configured
    } else {
        std::thread::available_parallelism().map(usize::from).unwrap_or(1)
    }
}

/// `scheme://host[:port]` with nothing after it.
fn http_origin(origin: &str) -> Option<&str> {
    let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"))?;
    (!rest.is_empty() && !rest.contains('/')).then_some(rest)
}

/// `Serialize` exists only to feed [`Settings::default`] to figment as the lowest
/// layer, so secrets must round-trip. Never log a serialized `Settings`; its `Debug`
/// (the `SecretString`s') is redacted.
fn expose<S: serde::Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

/// Accepts `"a, b"` (as the environment gives it) or a TOML array.
fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        One(String),
        Many(Vec<String>),
    }
    let items = match List::deserialize(d)? {
        List::One(s) => s.split(',').map(str::to_owned).collect(),
        List::Many(v) => v,
    };
    Ok(items.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads settings from exactly `vars`, in a jail that hides the real environment.
    #[allow(clippy::result_large_err)]
    fn env(vars: &[(&str, &str)]) -> Result<Settings, Error> {
        let mut out = None;
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            for (k, v) in vars {
                jail.set_env(k, v);
            }
            out = Some(Settings::load_from(Path::new("does-not-exist.toml"), Env::raw()));
            Ok(())
        });
        out.unwrap_or_else(|| Err(Error::Invalid("jail did not run".into())))
    }

    const GOOD: [(&str, &str); 2] = [
        ("JWT_SECRET", "0123456789abcdef0123456789abcdef-access"),
        ("JWT_REFRESH_SECRET", "0123456789abcdef0123456789abcdef-refresh"),
    ];

    #[test]
    fn env_overrides_defaults_and_parses_durations() {
        let mut vars = GOOD.to_vec();
        vars.extend([
            ("JWT_ACCESS_TTL", "30s"),
            ("JWT_REFRESH_TTL", "30d"),
            ("CORS_ORIGINS", "https://a.test, http://b.test:3000"),
        ]);
        let s = env(&vars).unwrap();
        assert_eq!(s.jwt.access_ttl, Duration::from_secs(30));
        assert_eq!(s.jwt.refresh_ttl, Duration::from_secs(30 * 86400));
        assert_eq!(s.cors.origins, vec!["https://a.test", "http://b.test:3000"]);
        assert_eq!(s.gateway.body_limit, 64 * 1024);
        assert!(s.gateway.cookie_secure, "cookies are Secure unless turned off");
    }

    #[test]
    fn every_duration_setting_accepts_units() {
        let mut vars = GOOD.to_vec();
        vars.extend([("JWT_ACCESS_TTL", "15m"), ("GATEWAY_REFRESH_GRACE", "0s"), ("RATE_LIMIT_WINDOW", "2h")]);
        let s = env(&vars).unwrap();
        assert_eq!(s.jwt.access_ttl, Duration::from_secs(900));
        assert_eq!(s.gateway.refresh_grace, Duration::ZERO);
        assert_eq!(s.rate_limit.window, Duration::from_secs(7200));
    }

    #[test]
    fn portal_look_and_cookie_names_are_checked() {
        for (var, value) in [
            ("PORTAL_PRIMARY_COLOR", "red;}body{display:none"),
            ("PORTAL_LOGO_URL", "javascript:alert(1)"),
            ("PORTAL_LOGO_URL", "//evil.test/logo.png"),
            ("GATEWAY_REFRESH_COOKIE", "tg_access"),
            ("GATEWAY_TENANT_COOKIE", "a b"),
            ("GATEWAY_TRUSTED_DOMAINS", "ok.test, bad/domain"),
        ] {
            let mut vars = GOOD.to_vec();
            vars.push((var, value));
            assert!(env(&vars).is_err(), "{var}={value} accepted");
        }
        let mut vars = GOOD.to_vec();
        vars.extend([
            ("PORTAL_PRIMARY_COLOR", "#0a0"),
            ("PORTAL_LOGO_URL", "https://cdn.test/logo.svg"),
            ("GATEWAY_COOKIE_SECURE", "false"),
            ("GATEWAY_TRUSTED_DOMAINS", "partner.test, other.test"),
        ]);
        let s = env(&vars).unwrap();
        assert!(!s.gateway.cookie_secure);
        assert_eq!(s.gateway.trusted_domains, ["partner.test", "other.test"]);
        assert_eq!(s.product_name(), "tenantgate");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature, not ours
    fn the_shipped_settings_file_parses() {
        let mut out = None;
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("JWT_SECRET", GOOD[0].1);
            jail.set_env("JWT_REFRESH_SECRET", GOOD[1].1);
            let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/gateway.toml");
            out = Some(Settings::load_from(&file, Env::raw()));
            Ok(())
        });
        let settings = out.unwrap().unwrap();
        assert_eq!(settings.gateway.routes, PathBuf::from("config/routes"));
        assert_eq!(settings.cache.l1_max_entries, 100_000);
    }

    #[test]
    fn secret_defaults_survive_the_default_layer() {
        let s = env(&GOOD).unwrap();
        assert_eq!(s.redis.url.expose_secret(), "redis://127.0.0.1:6379");
        assert!(s.database.url.expose_secret().starts_with("postgres://"));
        assert!(!format!("{s:?}").contains("0123456789abcdef"), "Debug must redact secrets");
    }

    #[test]
    fn short_secret_is_refused_naming_the_variable() {
        let err = env(&[("JWT_SECRET", "short"), GOOD[1]]).unwrap_err().to_string();
        assert!(err.contains("JWT_SECRET"), "{err}");
        assert!(err.contains("32"), "{err}");
    }

    #[test]
    fn example_secret_is_refused_in_production_but_not_in_development() {
        let vars = [("JWT_SECRET", EXAMPLE_SECRETS[0]), ("JWT_REFRESH_SECRET", EXAMPLE_SECRETS[1])];
        let err = env(&vars).unwrap_err().to_string();
        assert!(err.contains("JWT_SECRET") && err.contains("example"), "{err}");
        let mut dev = vars.to_vec();
        dev.push(("APP_ENV", "development"));
        assert!(env(&dev).is_ok());
    }

    #[test]
    fn wildcard_cors_and_bad_log_format_are_refused() {
        let mut vars = GOOD.to_vec();
        vars.push(("CORS_ORIGINS", "*"));
        assert!(env(&vars).unwrap_err().to_string().contains("CORS_ORIGINS"));
        let mut vars = GOOD.to_vec();
        vars.push(("LOG_FORMAT", "xml"));
        assert!(env(&vars).is_err());
    }

    #[test]
    fn env_example_documents_every_variable_with_a_comment() {
        let example = include_str!("../../.env.example");
        for (var, _) in ENV_VARS {
            let pos = example
                .lines()
                .position(|l| l.starts_with(&format!("{var}=")))
                .unwrap_or_else(|| panic!(".env.example lacks {var}"));
            let lines: Vec<&str> = example.lines().collect();
            assert!(pos > 0 && lines[pos - 1].starts_with('#'), "{var} has no comment above it");
        }
    }
}
