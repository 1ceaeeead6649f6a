//! Building the Pingora server from settings: the proxy service, the admin listener
//! and whatever background services the gateway needs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use edge::client_ip::TrustedProxies;
use edge::headers::HeaderRules;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server};
use pingora::services::background::background_service;
use shared::config::Settings;
use shared::domain::DomainName;
use shared::jwt::AccessTokens;
use shared::password::PasswordHasher;
use shared::telemetry::{admin_router, Check, Readiness};
use shared::tokens::TokenHasher;
use sqlx::PgPool;

use arc_swap::ArcSwap;
use secrecy::ExposeSecret;
use shared::assertion::{AssertionAlgorithm, Assertions};
use shared::cache::{Cache, CacheConfig, Invalidator, RedisTier, Ttls};
use shared::live::LiveFeed;

use crate::admin::AdminService;
use crate::api::tenants::domains::DomainRules;
use crate::api::throttle::Throttle;
use crate::api::{self, ApiState};
use crate::control::ControlPlane;
use crate::key_uses::KeyUses;
use crate::memo::DecisionMemo;
use crate::metrics::Metrics;
use crate::portal::render::Pages;
use crate::portal::{self, Portal};
use crate::proxy::access::AccessControl;
use crate::proxy::browser::Browser;
use crate::proxy::https::SchemePolicy;
use crate::proxy::key_guard::KeyGuard;
use crate::proxy::rate_limit::RateLimits;
use crate::proxy::upstreams::Pools;
use crate::proxy::Gateway;
use crate::relay::{InProcessJobs, OutboxRelay};
use crate::revocation::Revocations;
use crate::tls::CertStore;
use crate::web_session::cookies::CookiePolicy;
use crate::web_session::rotation::Sessions;
use crate::web_session::site::SitePolicy;

/// A gateway ready to run.
pub struct Application {
    server: Server,
    /// Runs what is not per-request: pool maintenance, cache listeners, refreshers.
    /// Pingora builds one runtime per service; this one lives as long as the process.
    support: tokio::runtime::Runtime,
    pid_file: PidFile,
}

/// Options that come from the command line rather than settings.
#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    /// Take over the listeners of a running gateway (Pingora's zero-downtime upgrade).
    pub upgrade: bool,
}

impl Application {
    /// Builds every service. Binds the admin listener now so a busy port fails here.
    ///
    /// # Errors
    /// A bad database URL, an unusable admin address, or a metrics registration bug.
    pub fn build(settings: &Settings, options: &RunOptions) -> anyhow::Result<Application> {
        let support = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tg-support")
            .enable_all()
            .build()
            .context("starting the support runtime")?;
        let _context = support.enter();
        let pool = shared::db::pool(&settings.database).context("building the database pool")?;
        let metrics = Metrics::new().context("registering metrics")?.with_tenant_labels(settings.metrics.tenant_labels);
        let routes = crate::routes::load(&settings.gateway.routes)
            .with_context(|| format!("loading GATEWAY_ROUTES {}", settings.gateway.routes.display()))?;
        metrics.routes_loaded.set(routes.len() as i64);
        let routes = Arc::new(ArcSwap::from_pointee(routes));

        let redis = shared_tier(settings)?;
        metrics.single_node.set(i64::from(redis.is_none()));
        let live = LiveFeed::new(settings.redis.url.as_ref(), &settings.redis.key_prefix)
            .context("parsing REDIS_URL for live notifications")?;
        let cache_config = CacheConfig {
            ttls: Ttls { negative: settings.cache.negative_ttl, ..Ttls::default() },
            max_entries: settings.cache.l1_max_entries,
            prefix: settings.redis.key_prefix.clone(),
        };
        let cache = Cache::new(pool.clone(), redis.clone(), cache_config, &metrics.registry)
            .context("registering cache metrics")?;
        let invalidator = Invalidator::new(redis.clone(), settings.redis.key_prefix.clone(), Some(cache.clone()));

        let tokens = AccessTokens::new(&settings.jwt);
        let assertions = assertions(settings)?;
        let revocations = Revocations::new(cache.clone());
        let state = Arc::new(ApiState {
            pool: pool.clone(),
            tokens: tokens.clone(),
            opaque: TokenHasher::new(settings.jwt.refresh_secret.clone()),
            passwords: PasswordHasher::new(settings.hash_concurrency()).context("initialising argon2")?,
            refresh_ttl: settings.jwt.refresh_ttl,
            invalidator,
            throttle: Throttle::new(
                redis.clone(),
                settings.redis.key_prefix.clone(),
                TokenHasher::new(settings.jwt.refresh_secret.clone()),
                settings.rate_limit.clone(),
            ),
            live: live.clone(),
            domains: DomainRules::new(own_domains(settings), &settings.gateway.dns_resolver)
                .context("setting up the DNS resolver for domain verification")?,
            invitation_ttl: settings.tenants.invitation_ttl,
            assertions: assertions.clone(),
            revocations: revocations.clone(),
        });
        let api_router = api::router(state.clone(), settings);
        let sessions = Arc::new(Sessions::new(state, settings.gateway.refresh_grace));
        let cookies = CookiePolicy::new(settings);
        let site = SitePolicy::new(&settings.gateway);
        let portal = Arc::new(Portal {
            sessions: sessions.clone(),
            api: api_router.clone(),
            cookies: cookies.clone(),
            site: site.clone(),
            routes: routes.clone(),
            pages: Pages::new(settings).context("compiling the portal's templates")?,
        });
        let pools = Arc::new(Pools::default());
        let key_uses = Arc::new(KeyUses::default());
        let limits = Arc::new(RateLimits::default());
        let gateway = Gateway {
            api: api_router,
            portal: portal::router(portal, settings.gateway.body_limit),
            browser: Browser { sessions, cookies, site },
            body_limit: settings.gateway.body_limit,
            routes: routes.clone(),
            access: AccessControl {
                tokens,
                cache: cache.clone(),
                access_cookie: settings.gateway.access_cookie.clone(),
                base_domain: settings.gateway.base_domain.clone(),
                memo: DecisionMemo::new(settings.cache.l1_max_entries),
                memo_counters: metrics.memo.clone(),
                key_uses: key_uses.clone(),
                key_guard: KeyGuard::default(),
            },
            pools: pools.clone(),
            limits: limits.clone(),
            assertions: assertions.clone(),
            header_rules: HeaderRules::new(&settings.gateway.identity_header_prefixes)
                .map_err(|e| anyhow::anyhow!("GATEWAY_IDENTITY_HEADER_PREFIXES: {e}"))?,
            trusted_proxies: TrustedProxies::new(settings.gateway.trusted_proxies.clone()),
            verify_listen: settings.gateway.verify_listen,
            revocations,
            metrics: metrics.clone(),
            access_sample: settings.log.access_sample,
            scheme: SchemePolicy::new(&settings.gateway.tls),
        };
        let tls = match settings.gateway.tls.enabled() {
            true => Some(Arc::new(
                CertStore::load(&settings.gateway.tls, metrics.tls.clone()).context("loading the TLS certificates")?,
            )),
            false => None,
        };
        let control = ControlPlane {
            pool: pool.clone(),
            key_uses,
            cache,
            routes,
            routes_path: settings.gateway.routes.clone(),
            pools,
            limits,
            health_interval: settings.gateway.health_check_interval,
            assertions,
            metrics: metrics.clone(),
            tls: tls.clone().map(|store| (store, settings.gateway.tls.clone())),
        };

        private_dir(&settings.gateway.runtime_dir)
            .with_context(|| format!("GATEWAY_RUNTIME_DIR {}", settings.gateway.runtime_dir.display()))?;
        let conf = ServerConf {
            threads: settings.gateway_threads(),
            grace_period_seconds: Some(settings.gateway.shutdown_grace.as_secs()),
            graceful_shutdown_timeout_seconds: Some(5),
            upgrade_sock: runtime_file("GATEWAY_UPGRADE_SOCKET", &settings.upgrade_socket())?,
            pid_file: runtime_file("GATEWAY_PID_FILE", &settings.pid_file())?,
            ..ServerConf::default()
        };
        let opt = Opt { upgrade: options.upgrade, ..Opt::default() };
        let mut server = Server::new_with_opt_and_conf(opt, conf);
        // With --upgrade this waits until the running gateway hands its listeners
        // over; from then on this process is the gateway, and its pid file says so.
        server.bootstrap();
        let pid_file = PidFile::write(settings.pid_file())?;

        let mut proxy =
            pingora::proxy::http_proxy_service_with_name(&server.configuration, gateway, "tenantgate proxy");
        proxy.add_tcp(&settings.gateway.listen.to_string());
        if let Some(verify) = settings.gateway.verify_listen {
            proxy.add_tcp(&verify.to_string());
        }
        if let (Some(store), Some(addr)) = (&tls, settings.gateway.tls.listen) {
            let listener = store.listener().map_err(|e| anyhow::anyhow!("setting up GATEWAY_TLS_LISTEN: {e}"))?;
            proxy.add_tls_with_settings(&addr.to_string(), None, listener);
        }
        if settings.gateway.tls.h2c {
            let mut options = pingora::apps::HttpServerOptions::default();
            options.h2c = true;
            proxy.app_logic_mut().context("the proxy service has no app")?.server_options = Some(options);
        }
        server.add_service(proxy);

        match shared::queue::Config::from_settings(settings) {
            Some(config) => {
                let relay = OutboxRelay { pool: pool.clone(), config, backlog: metrics.outbox_rows.clone() };
                server.add_service(background_service("outbox relay", relay));
            }
            None => {
                tracing::info!("RABBITMQ_URL is not set: this gateway sends the email and runs the notification jobs itself, from the outbox");
                let jobs = worker::Jobs::build(
                    settings,
                    pool.clone(),
                    live,
                    worker::Metrics::registered_in(metrics.registry.clone()).context("registering job metrics")?,
                )?;
                let config = worker::in_process::Config::from_settings(settings);
                let jobs = InProcessJobs { jobs: Arc::new(jobs), config, backlog: metrics.outbox_rows.clone() };
                server.add_service(background_service("jobs", jobs));
            }
        }
        let admin_addr = settings.gateway.admin_listen;
        let admin_listener =
            crate::admin::bind(admin_addr).with_context(|| format!("binding GATEWAY_ADMIN_LISTEN {admin_addr}"))?;
        let admin = AdminService::new(admin_listener, admin_router(metrics.registry.clone(), readiness(pool)));
        server.add_service(background_service("admin", admin));
        server.add_service(background_service("control plane", control));

        Ok(Application { server, support, pid_file })
    }

    /// Runs until SIGTERM (graceful: in-flight requests get `GATEWAY_SHUTDOWN_GRACE`)
    /// or SIGINT (fast), then returns.
    pub fn run_until_stopped(self) {
        self.server.run(RunArgs::default());
        self.support.shutdown_timeout(std::time::Duration::from_secs(2));
        self.pid_file.remove();
    }
}

/// `GATEWAY_PID_FILE`, written by this process once it owns the listeners
/// (Pingora writes one only when it daemonizes, which the gateway does not): what
/// `kill -QUIT $(cat gateway.pid)` needs for a zero-downtime upgrade.
struct PidFile {
    path: PathBuf,
    pid: String,
}

impl PidFile {
    fn write(path: PathBuf) -> anyhow::Result<PidFile> {
        let pid = std::process::id().to_string();
        std::fs::write(&path, format!("{pid}\n"))
            .with_context(|| format!("writing GATEWAY_PID_FILE {}", path.display()))?;
        Ok(PidFile { path, pid })
    }

    /// Removes the file, unless a newer gateway has written its own pid there.
    fn remove(&self) {
        if std::fs::read_to_string(&self.path).is_ok_and(|text| text.trim() == self.pid) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `dir`, created if missing, with mode 0700: only this user may reach the
/// upgrade socket (which hands over the listening sockets) or replace the pid
/// file. Changing the mode of an existing directory needs its owner, so one that
/// belongs to someone else is refused.
fn private_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).context("creating it")?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .context("making it private (mode 0700); is it another user's?")?;
    Ok(dir.to_owned())
}

/// `path` as Pingora takes it, once its folder exists and is not writable by
/// group or others (no one else may swap the socket or the pid file).
fn runtime_file(var: &str, path: &Path) -> anyhow::Result<String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("{var} {}: creating its folder", path.display()))?;
    let mode = std::fs::metadata(dir).with_context(|| format!("{var} {}", path.display()))?.permissions().mode();
    if mode & 0o022 != 0 {
        anyhow::bail!("{var} {}: its folder is writable by group or others (mode {:o})", path.display(), mode & 0o777);
    }
    path.to_str().map(str::to_owned).with_context(|| format!("{var} {} is not UTF-8", path.display()))
}

/// The Redis tier `REDIS_URL` names, or none: single-node mode, said once at start.
fn shared_tier(settings: &Settings) -> anyhow::Result<Option<RedisTier>> {
    let Some(url) = &settings.redis.url else {
        tracing::warn!(
            "REDIS_URL is not set: single-node mode. The cache, rate limits, cache invalidations and live \
             notifications stay in this process, so run ONE gateway instance; set REDIS_URL to run several"
        );
        return Ok(None);
    };
    let client = redis::Client::open(url.expose_secret()).context("parsing REDIS_URL")?;
    Ok(Some(RedisTier::new(client)))
}

/// The assertion signer: Ed25519 keys from `GATEWAY_ASSERTION_KEY_FILE` (or one
/// made now, with a warning: other instances cannot verify what this one signs),
/// or HS256 with `GATEWAY_ASSERTION_SECRET` when chosen.
pub(crate) fn assertions(settings: &Settings) -> anyhow::Result<Arc<Assertions>> {
    let (issuer, ttl) = (&settings.jwt.issuer, settings.gateway.assertion_ttl);
    let assertions = match settings.gateway.assertion_algorithm {
        AssertionAlgorithm::Hs256 => {
            Assertions::hs256(settings.gateway.assertion_secret.expose_secret().as_bytes(), issuer, ttl)
        }
        AssertionAlgorithm::EdDsa => {
            let file = &settings.gateway.assertion_key_file;
            if file.as_os_str().is_empty() {
                tracing::warn!(
                    "GATEWAY_ASSERTION_KEY_FILE is not set: assertions are signed with a key made at start; \
                     instances behind one balancer must share a key file (`gateway assertion-key`)"
                );
                Assertions::ed25519(None, issuer, ttl)
            } else {
                Assertions::ed25519(Some(file), issuer, ttl)
            }
            .context("loading GATEWAY_ASSERTION_KEY_FILE")?
        }
    };
    Ok(Arc::new(assertions))
}

/// The names the gateway serves itself, which no tenant may claim: the base
/// domain, the trusted domains and the `APP_URL` host.
/// (An `APP_URL` on an IP address or a one-label name such as `localhost` covers
/// nothing a tenant could claim: claimed domains have two labels or more.)
fn own_domains(settings: &Settings) -> Vec<DomainName> {
    let app_host = DomainName::parse(settings.app.url.host()).ok();
    let gateway = &settings.gateway;
    gateway.base_domain.iter().chain(&gateway.trusted_domains).cloned().chain(app_host).collect()
}

fn readiness(pool: PgPool) -> Readiness {
    Arc::new(move || {
        let pool = pool.clone();
        Box::pin(async move {
            let postgres = tokio::time::timeout(std::time::Duration::from_secs(2), shared::db::ping(&pool)).await;
            let error = match postgres {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(shared::telemetry::error_chain(&e)),
                Err(_) => Some("timed out".to_owned()),
            };
            vec![Check { name: "postgres", error }]
        })
    })
}
