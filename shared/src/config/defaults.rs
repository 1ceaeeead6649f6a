//! The built-in defaults: the lowest settings layer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use super::*;

const HOUR: Duration = Duration::from_secs(3600);

impl Default for Settings {
    fn default() -> Self {
        let empty = || SecretString::from(String::new());
        Settings {
            app: AppSettings { env: Profile::Production, name: "tenantgate".into(), url: PublicUrl::default() },
            database: DatabaseSettings {
                url: SecretString::from("postgres://postgres@127.0.0.1:5432/tenantgate"),
                max_connections: 20,
                auto_migrate: true,
            },
            // No built-in addresses: unset means single-node mode (see RedisSettings).
            redis: RedisSettings { url: None, key_prefix: "tg:".into() },
            rabbitmq: RabbitMqSettings { url: None },
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
                retention: Duration::from_secs(7 * 86400),
                purge_interval: HOUR,
            },
            cors: CorsSettings { origins: Vec::new() },
            rate_limit: RateLimitSettings {
                window: Duration::from_secs(15 * 60),
                max: 10,
                register: Quota { max: 10, window: HOUR },
                tenant_create: Quota { max: 10, window: HOUR },
                invitations: Quota { max: 50, window: HOUR },
                mail: Quota { max: 5, window: HOUR },
            },
            log: LogSettings { level: "info".into(), format: LogFormat::Text, access_sample: 1.0 },
            password: PasswordSettings { hash_concurrency: 0 },
            gateway: GatewaySettings {
                listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
                admin_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
                routes: PathBuf::from("config/routes"),
                threads: 0,
                body_limit: 64 * 1024,
                shutdown_grace: Duration::from_secs(10),
                base_domain: None,
                access_cookie: "tg_access".into(),
                refresh_cookie: "tg_refresh".into(),
                tenant_cookie: "tg_tenant".into(),
                cookie_secure: true,
                trusted_domains: Vec::new(),
                refresh_grace: Duration::from_secs(10),
                assertion_algorithm: crate::assertion::AssertionAlgorithm::EdDsa,
                assertion_key_file: PathBuf::new(),
                assertion_secret: empty(),
                assertion_ttl: Duration::from_secs(60),
                health_check_interval: Duration::from_secs(2),
                trusted_proxies: Vec::new(),
                verify_listen: None,
                identity_header_prefixes: Vec::new(),
                dns_resolver: Vec::new(),
                runtime_dir: PathBuf::from("var/run"),
                tls: super::TlsSettings::default(),
                upgrade_socket: PathBuf::new(),
                pid_file: PathBuf::new(),
            },
            portal: PortalSettings { product_name: String::new(), logo_url: None, primary_color: Colour::default() },
            metrics: super::MetricsSettings { tenant_labels: 50 },
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
