//! The worker's Prometheus metrics, registered in a per-process [`Registry`] (or,
//! when the gateway runs the jobs in single-node mode, in the gateway's).

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use shared::queue::JobQueue;

/// The `outcome` labels of the jobs counter.
pub const OUTCOMES: [&str; 3] = ["ok", "retried", "dead"];

/// The `table` labels of the purged-rows counter (the retention job's tables).
pub const PURGED_TABLES: [&str; 2] = ["outbox", "processed_messages"];

/// Every metric the worker exports.
#[derive(Clone)]
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// Jobs settled, by queue and outcome (`ok`, `retried`, `dead`).
    pub jobs: IntCounterVec,
    /// Time from delivery to settlement, by queue.
    pub duration: HistogramVec,
    /// SMTP failures, by kind (`transient`, `permanent`, `connection`).
    pub smtp_errors: IntCounterVec,
    /// 1 while a consumer is attached to the queue (or, in single-node mode, while
    /// the gateway runs its jobs from the outbox), else 0.
    pub consumer_up: IntGaugeVec,
    /// Rows deleted past `QUEUE_RETENTION`, by table.
    pub purged: IntCounterVec,
}

/// Job duration buckets from 1 ms to 30 s.
const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

impl Metrics {
    /// Creates the metrics in a registry of their own, with every label
    /// combination at zero.
    ///
    /// # Errors
    /// [`prometheus::Error`] when a name is registered twice (a bug).
    pub fn new() -> Result<Metrics, prometheus::Error> {
        Metrics::registered_in(Registry::new())
    }

    /// Creates the metrics in `registry` (the gateway's, in single-node mode).
    ///
    /// # Errors
    /// [`prometheus::Error`] when a name is already registered there.
    pub fn registered_in(registry: Registry) -> Result<Metrics, prometheus::Error> {
        let jobs = IntCounterVec::new(
            Opts::new("tenantgate_worker_jobs_total", "Jobs settled, by queue and outcome (ok, retried, dead)."),
            &["queue", "outcome"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new("tenantgate_worker_job_duration_seconds", "Time from delivery to settlement of a job.")
                .buckets(BUCKETS.to_vec()),
            &["queue"],
        )?;
        let smtp_errors = IntCounterVec::new(
            Opts::new(
                "tenantgate_worker_smtp_errors_total",
                "Failed SMTP sends, by kind (transient, permanent, connection).",
            ),
            &["kind"],
        )?;
        let consumer_up = IntGaugeVec::new(
            Opts::new("tenantgate_worker_consumer_up", "1 while a consumer is attached to the queue, else 0."),
            &["queue"],
        )?;
        let purged = IntCounterVec::new(
            Opts::new(
                "tenantgate_worker_purged_rows_total",
                "Rows deleted because they were older than QUEUE_RETENTION, by table.",
            ),
            &["table"],
        )?;
        registry.register(Box::new(jobs.clone()))?;
        registry.register(Box::new(purged.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(smtp_errors.clone()))?;
        registry.register(Box::new(consumer_up.clone()))?;
        for queue in JobQueue::ALL {
            for outcome in OUTCOMES {
                jobs.with_label_values(&[queue.as_str(), outcome]);
            }
            duration.with_label_values(&[queue.as_str()]);
            consumer_up.with_label_values(&[queue.as_str()]).set(0);
        }
        for kind in ["transient", "permanent", "connection"] {
            smtp_errors.with_label_values(&[kind]);
        }
        for table in PURGED_TABLES {
            purged.with_label_values(&[table]);
        }
        Ok(Metrics { registry, jobs, duration, smtp_errors, consumer_up, purged })
    }

    /// Counts a settled job: `outcome` is one of [`OUTCOMES`].
    pub fn record(&self, queue: JobQueue, outcome: &str, seconds: f64) {
        self.jobs.with_label_values(&[queue.as_str(), outcome]).inc();
        self.duration.with_label_values(&[queue.as_str()]).observe(seconds);
    }
}
