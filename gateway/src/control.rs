//! The gateway's control plane, as one Pingora background service: the Redis
//! connection and the cache-invalidation subscriber (when there is a Redis), the
//! route-file and TLS certificate watchers, the loop that health-checks upstreams, refreshes rate
//! limiters and re-reads the assertion keys, and the writer of API key uses.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use shared::assertion::Assertions;
use shared::cache::{run_subscriber, Cache};
use shared::config::TlsSettings;

use crate::key_uses::{self, KeyUses};
use crate::metrics::Metrics;
use crate::proxy::rate_limit::RateLimits;
use crate::proxy::upstreams::Pools;
use crate::routes::{self, RouteTable};
use crate::tls::CertStore;

/// What the control plane keeps up to date.
pub struct ControlPlane {
    /// The database, for API key uses.
    pub pool: sqlx::PgPool,
    /// API key uses to write.
    pub key_uses: Arc<KeyUses>,
    /// The cache whose Redis tier it connects and whose L1 it evicts.
    pub cache: Cache,
    /// The live route table.
    pub routes: Arc<ArcSwap<RouteTable>>,
    /// Where the routes come from.
    pub routes_path: PathBuf,
    /// Upstream balancers.
    pub pools: Arc<Pools>,
    /// Rate limiters.
    pub limits: Arc<RateLimits>,
    /// How often upstreams are checked (and the assertion key file re-read).
    pub health_interval: Duration,
    /// The assertion keys, re-read when their file changes.
    pub assertions: Arc<Assertions>,
    /// Metrics.
    pub metrics: Metrics,
    /// The HTTPS listener's certificates and where they come from, re-read when
    /// their files change.
    pub tls: Option<(Arc<CertStore>, TlsSettings)>,
}

/// Resolves once the server begins shutting down (or the watch is gone).
pub async fn stopped(mut shutdown: ShutdownWatch) {
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

#[async_trait]
impl BackgroundService for ControlPlane {
    async fn start(&self, shutdown: ShutdownWatch) {
        tokio::join!(
            self.invalidations(shutdown.clone()),
            self.watch_routes(shutdown.clone()),
            self.watch_certificates(shutdown.clone()),
            self.write_key_uses(shutdown.clone()),
            self.refresh_loop(shutdown)
        );
    }
}

impl ControlPlane {
    /// Connects the Redis tier and listens for other instances' invalidations. In
    /// single-node mode there are no others: this instance's own evictions are
    /// all there is, so it counts as subscribed.
    async fn invalidations(&self, shutdown: ShutdownWatch) {
        let Some(redis) = self.cache.redis() else {
            self.metrics.invalidation_subscribed.set(1);
            return;
        };
        redis.connect_in_background();
        let subscribed = self.metrics.invalidation_subscribed.clone();
        run_subscriber(
            redis.clone(),
            self.cache.prefix().to_owned(),
            self.cache.clone(),
            move |up| subscribed.set(i64::from(up)),
            stopped(shutdown),
        )
        .await;
    }

    async fn watch_routes(&self, shutdown: ShutdownWatch) {
        let metrics = self.metrics.clone();
        let on_reload = move |result: Result<usize, &routes::LoadError>| match result {
            Ok(count) => {
                metrics.route_reloads.with_label_values(&["ok"]).inc();
                metrics.route_reload_success.set(1);
                metrics.routes_loaded.set(count as i64);
                tracing::info!(routes = count, "routes reloaded");
            }
            Err(e) => {
                metrics.route_reloads.with_label_values(&["error"]).inc();
                metrics.route_reload_success.set(0);
                tracing::error!(error = %e, "route reload refused; keeping the previous table");
            }
        };
        match routes::watch(&self.routes_path, self.routes.clone(), on_reload, stopped(shutdown)) {
            Ok(watcher) => watcher.await,
            Err(e) => tracing::error!(error = %e, "cannot watch the route files; edits need a restart"),
        }
    }

    async fn watch_certificates(&self, shutdown: ShutdownWatch) {
        let Some((store, settings)) = &self.tls else { return };
        match store.clone().watch(settings.clone(), stopped(shutdown)) {
            Ok(watcher) => watcher.await,
            Err((folder, e)) => tracing::error!(
                folder = %folder.display(),
                error = %e,
                "cannot watch the TLS certificates; renewed files need a restart"
            ),
        }
    }

    /// Writes API key uses every [`key_uses::FLUSH_EVERY`], and once more on the
    /// way out.
    async fn write_key_uses(&self, shutdown: ShutdownWatch) {
        let stop = stopped(shutdown);
        tokio::pin!(stop);
        loop {
            let stopping = tokio::select! {
                () = &mut stop => true,
                () = tokio::time::sleep(key_uses::FLUSH_EVERY) => false,
            };
            if let Err(e) = self.key_uses.flush(&self.pool).await {
                tracing::warn!(error = %shared::telemetry::error_chain(&e), "recording API key uses failed; will retry");
            }
            if stopping {
                return;
            }
        }
    }

    async fn refresh_loop(&self, shutdown: ShutdownWatch) {
        let stop = stopped(shutdown);
        tokio::pin!(stop);
        loop {
            let table = self.routes.load_full();
            self.metrics.routes_loaded.set(table.len() as i64);
            self.limits.refresh(&table);
            self.pools.refresh(&table, &self.metrics.upstream_healthy).await;
            self.reload_assertion_keys();
            self.metrics.tenants.rotate_if_due(std::time::Instant::now());
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(self.health_interval) => {}
            }
        }
    }

    fn reload_assertion_keys(&self) {
        match self.assertions.reload() {
            Ok(true) => tracing::info!(kid = ?self.assertions.signing_kid(), "assertion keys reloaded"),
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "assertion key file refused; keeping the previous keys"),
        }
    }
}
