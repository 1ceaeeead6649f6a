//! The gateway's Prometheus metrics, registered in a per-process [`Registry`].
//! Cache metrics are registered by `shared::cache` into the same registry.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use http::{Method, StatusCode};

use crate::tenant_labels::TenantLabels;
use crate::tls::TlsMeters;

/// `METRICS_TENANT_LABELS`' default.
const DEFAULT_TENANT_LABELS: usize = 50;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Every metric the gateway exports.
#[derive(Clone)]
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// Requests by route, method and status.
    pub requests: IntCounterVec,
    /// Whole-request duration by route.
    pub duration: HistogramVec,
    /// Time from sending a request upstream to its response header, by route.
    pub upstream_duration: HistogramVec,
    /// Requests refused for authentication or authorization, by reason.
    pub auth_failures: IntCounterVec,
    /// Route-file reloads by result (`ok`, `error`).
    pub route_reloads: IntCounterVec,
    /// 1 when the last route reload succeeded.
    pub route_reload_success: IntGauge,
    /// Routes in the live table.
    pub routes_loaded: IntGauge,
    /// 1 per healthy upstream, by route and address.
    pub upstream_healthy: IntGaugeVec,
    /// 1 while subscribed to cache invalidations.
    pub invalidation_subscribed: IntGauge,
    /// Client-sent identity or override headers stripped, by canonical name (or
    /// the matched prefix): operators see probing.
    pub spoofed_headers: IntCounterVec,
    /// Open streams closed because their user's access ended.
    pub streams_ended: IntCounter,
    /// 1 when this gateway runs in single-node mode (no `REDIS_URL`): two such
    /// gateways in one deployment do not hear each other's invalidations.
    pub single_node: IntGauge,
    /// Outbox rows by state (`waiting`: not yet relayed or run; `dead`: given up
    /// on, single-node mode), sampled every few seconds.
    pub outbox_rows: IntGaugeVec,
    /// Decision memo lookups by result.
    pub memo: MemoCounters,
    /// The HTTPS listener's handshakes and certificates.
    pub tls: TlsMeters,
    /// Which tenants keep their slug as a label.
    pub tenants: Arc<TenantLabels>,
    /// The tenant label of requests that named no tenant.
    pub no_tenant: Arc<str>,
    /// Each route's request metrics, resolved on its first request.
    routes: Arc<RwLock<MetersByRoute>>,
}

/// Each route's [`RouteMeters`], by route name.
type MetersByRoute = HashMap<Arc<str>, Arc<RouteMeters>, ahash::RandomState>;

/// One route's request metrics, resolved once per route name (names outlive
/// reloads, so a reloaded route keeps its series): the proxied path records a
/// request without hashing label strings three times.
pub struct RouteMeters {
    /// `tenantgate_http_request_duration_seconds{route}`.
    pub duration: Histogram,
    /// `tenantgate_upstream_response_duration_seconds{route}`.
    pub upstream_duration: Histogram,
    requests: IntCounterVec,
    route: Arc<str>,
    /// `tenantgate_http_requests_total{route, method, status, tenant}` by method,
    /// status and tenant label.
    by_answer: RwLock<HashMap<AnswerKey, IntCounter, ahash::RandomState>>,
}

/// Method label, status, tenant label.
type AnswerKey = (&'static str, u16, Arc<str>);

impl RouteMeters {
    /// Counts one request of `method` answered with `status`, for the tenant
    /// labelled `tenant` (see `tenant_labels`).
    pub fn count(&self, method: &Method, status: StatusCode, tenant: Arc<str>) {
        let key = (method_label(method), status.as_u16(), tenant);
        // The usual case: counted under the read lock, no handle cloned.
        if let Some(counter) = self.by_answer.read().ok().as_ref().and_then(|m| m.get(&key)) {
            counter.inc();
            return;
        }
        let counter = self.requests.with_label_values(&[&*self.route, key.0, status.as_str(), &key.2]);
        counter.inc();
        if let Ok(mut m) = self.by_answer.write() {
            m.insert(key, counter);
        }
    }
}

/// The `method` label: the standard methods by name, anything else `other`, so a
/// client cannot mint label values (series) with made-up methods.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// `tenantgate_decision_memo_total{result="hit"|"miss"}`, resolved once: the
/// warm path counts without hashing label values.
#[derive(Clone)]
pub struct MemoCounters {
    /// A remembered decision was used.
    pub hit: IntCounter,
    /// The decision was made from the cache.
    pub miss: IntCounter,
}

/// Latency buckets from 0.5 ms to 10 s.
const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

impl Metrics {
    /// Creates and registers the metrics.
    ///
    /// # Errors
    /// [`prometheus::Error`] when a name is registered twice (a bug).
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let histogram = |name: &str, help: &str| {
            HistogramVec::new(HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()), &["route"])
        };
        let metrics = Metrics {
            requests: IntCounterVec::new(
                Opts::new(
                    "tenantgate_http_requests_total",
                    "Requests handled, by route, method, status and tenant (the busiest METRICS_TENANT_LABELS \
                     tenants by slug, the others as other, none empty).",
                ),
                &["route", "method", "status", "tenant"],
            )?,
            duration: histogram(
                "tenantgate_http_request_duration_seconds",
                "Time from request to response, by route.",
            )?,
            upstream_duration: histogram(
                "tenantgate_upstream_response_duration_seconds",
                "Time from sending a request upstream to its response header, by route.",
            )?,
            auth_failures: IntCounterVec::new(
                Opts::new(
                    "tenantgate_auth_failures_total",
                    "Requests refused by authentication or authorization, by reason and tenant (as in \
                     tenantgate_http_requests_total; empty when the refusal named no known tenant).",
                ),
                &["reason", "tenant"],
            )?,
            route_reloads: IntCounterVec::new(
                Opts::new("tenantgate_route_reloads_total", "Route file reloads, by result."),
                &["result"],
            )?,
            route_reload_success: IntGauge::new(
                "tenantgate_route_last_reload_success",
                "1 if the last route reload succeeded, 0 if it kept the previous table.",
            )?,
            routes_loaded: IntGauge::new("tenantgate_routes", "Routes in the live route table.")?,
            upstream_healthy: IntGaugeVec::new(
                Opts::new("tenantgate_upstream_healthy", "1 if the upstream passed its last health check."),
                &["route", "upstream"],
            )?,
            invalidation_subscribed: IntGauge::new(
                "tenantgate_cache_invalidation_subscribed",
                "1 while this gateway listens for cache invalidations.",
            )?,
            spoofed_headers: IntCounterVec::new(
                Opts::new(
                    "tenantgate_spoofed_headers_total",
                    "Client-sent identity or override headers the gateway stripped, by canonical name.",
                ),
                &["header"],
            )?,
            single_node: IntGauge::new(
                "tenantgate_single_node",
                "1 when this gateway runs without Redis (single-node mode): its cache, limits and \
                 invalidations are its own, so it must be the only instance.",
            )?,
            outbox_rows: IntGaugeVec::new(
                Opts::new(
                    "tenantgate_outbox_rows",
                    "Outbox rows by state: waiting (not yet relayed to RabbitMQ, or run in single-node mode) \
                     and dead (given up on in single-node mode).",
                ),
                &["state"],
            )?,
            streams_ended: IntCounter::new(
                "tenantgate_streams_revoked_total",
                "Open streams (WebSockets, event streams) closed because their user's access ended.",
            )?,
            memo: {
                let vec = IntCounterVec::new(
                    Opts::new(
                        "tenantgate_decision_memo_total",
                        "Access decisions taken from the decision memo (hit) or made from the cache (miss).",
                    ),
                    &["result"],
                )?;
                registry.register(Box::new(vec.clone()))?;
                MemoCounters { hit: vec.with_label_values(&["hit"]), miss: vec.with_label_values(&["miss"]) }
            },
            tls: TlsMeters {
                handshakes: IntCounterVec::new(
                    Opts::new("tenantgate_tls_handshakes_total", "Completed TLS handshakes, by TLS version."),
                    &["version"],
                )?,
                expiry: IntGaugeVec::new(
                    Opts::new(
                        "tenantgate_tls_certificate_expiry_timestamp_seconds",
                        "When each certificate the HTTPS listener serves expires (Unix time), by certificate: \
                         default, a host name or *.domain.",
                    ),
                    &["certificate"],
                )?,
                reloads: IntCounterVec::new(
                    Opts::new("tenantgate_tls_reloads_total", "TLS certificate reloads, by result (ok, error)."),
                    &["result"],
                )?,
                certificates: IntGauge::new("tenantgate_tls_certificates", "Certificates the HTTPS listener serves.")?,
                refused: IntGauge::new(
                    "tenantgate_tls_certificate_files_refused",
                    "Certificate files the last load refused (invalid, expired, not naming their host); their \
                     hosts keep the certificate they had.",
                )?,
            },
            tenants: Arc::new(TenantLabels::new(DEFAULT_TENANT_LABELS)),
            no_tenant: Arc::from(""),
            routes: Arc::default(),
            registry,
        };
        let m = &metrics;
        m.registry.register(Box::new(m.requests.clone()))?;
        m.registry.register(Box::new(m.duration.clone()))?;
        m.registry.register(Box::new(m.upstream_duration.clone()))?;
        m.registry.register(Box::new(m.auth_failures.clone()))?;
        m.registry.register(Box::new(m.route_reloads.clone()))?;
        m.registry.register(Box::new(m.route_reload_success.clone()))?;
        m.registry.register(Box::new(m.routes_loaded.clone()))?;
        m.registry.register(Box::new(m.upstream_healthy.clone()))?;
        m.registry.register(Box::new(m.invalidation_subscribed.clone()))?;
        m.registry.register(Box::new(m.spoofed_headers.clone()))?;
        m.registry.register(Box::new(m.streams_ended.clone()))?;
        m.registry.register(Box::new(m.outbox_rows.clone()))?;
        m.registry.register(Box::new(m.single_node.clone()))?;
        m.registry.register(Box::new(m.tls.handshakes.clone()))?;
        m.registry.register(Box::new(m.tls.expiry.clone()))?;
        m.registry.register(Box::new(m.tls.reloads.clone()))?;
        m.registry.register(Box::new(m.tls.certificates.clone()))?;
        m.registry.register(Box::new(m.tls.refused.clone()))?;
        m.registry.register(Box::new(crate::tls::failures::FAILURES.clone()))?;
        m.route_reload_success.set(1);
        Ok(metrics)
    }

    /// The same metrics, with `limit` tenants labelled by slug (`METRICS_TENANT_LABELS`).
    #[must_use]
    pub fn with_tenant_labels(mut self, limit: usize) -> Metrics {
        self.tenants = Arc::new(TenantLabels::new(limit));
        self
    }

    /// The `tenant` label for a request of `slug`'s tenant (none: empty).
    pub fn tenant_label(&self, slug: Option<&str>) -> Arc<str> {
        match slug {
            Some(slug) => self.tenants.label(slug),
            None => self.no_tenant.clone(),
        }
    }

    /// The request metrics of the route named `route`.
    pub fn route(&self, route: &Arc<str>) -> Arc<RouteMeters> {
        if let Some(meters) = self.routes.read().ok().and_then(|m| m.get(route).cloned()) {
            return meters;
        }
        let meters = Arc::new(RouteMeters {
            duration: self.duration.with_label_values(&[route]),
            upstream_duration: self.upstream_duration.with_label_values(&[route]),
            requests: self.requests.clone(),
            route: route.clone(),
            by_answer: RwLock::default(),
        });
        match self.routes.write() {
            Ok(mut m) => m.entry(route.clone()).or_insert(meters).clone(),
            Err(_) => meters,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_meters_count_into_the_shared_series() {
        let metrics = Metrics::new().unwrap();
        let name: Arc<str> = Arc::from("app");
        let meters = metrics.route(&name);
        assert!(Arc::ptr_eq(&meters, &metrics.route(&name)), "resolved once per name");
        let none = metrics.tenant_label(None);
        meters.count(&Method::GET, StatusCode::OK, none.clone());
        meters.count(&Method::GET, StatusCode::OK, none.clone());
        meters.count(&Method::from_bytes(b"BREW").unwrap(), StatusCode::NOT_FOUND, none);
        meters.count(&Method::GET, StatusCode::OK, metrics.tenant_label(Some("acme")));
        meters.duration.observe(0.001);
        assert_eq!(metrics.requests.with_label_values(&["app", "GET", "200", ""]).get(), 2);
        assert_eq!(metrics.requests.with_label_values(&["app", "other", "404", ""]).get(), 1);
        assert_eq!(metrics.requests.with_label_values(&["app", "GET", "200", "other"]).get(), 1);
        assert_eq!(metrics.duration.with_label_values(&["app"]).get_sample_count(), 1);
    }
}
