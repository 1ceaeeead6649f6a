//! The gateway's Prometheus metrics, registered in a per-process [`Registry`].

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// Every metric the gateway exports.
#[derive(Clone)]
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// Requests by route, method and status.
    pub requests: IntCounterVec,
    /// Whole-request duration by route.
    pub duration: HistogramVec,
    /// Authentication failures by reason.
    pub auth_failures: IntCounterVec,
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
        let requests = IntCounterVec::new(
            Opts::new("tenantgate_http_requests_total", "Requests handled, by route, method and status."),
            &["route", "method", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new("tenantgate_http_request_duration_seconds", "Time from request to last response byte.")
                .buckets(BUCKETS.to_vec()),
            &["route"],
        )?;
        let auth_failures = IntCounterVec::new(
            Opts::new(
                "tenantgate_auth_failures_total",
                "Requests refused for authentication or authorization, by reason.",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(auth_failures.clone()))?;
        Ok(Metrics { registry, requests, duration, auth_failures })
    }
}
