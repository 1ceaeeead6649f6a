//! Retention: every `QUEUE_PURGE_INTERVAL` the worker deletes published outbox rows
//! and records of processed messages older than `QUEUE_RETENTION`, in batches so a
//! large backlog never holds long locks. Unpublished outbox rows are never deleted.

use std::time::Duration;

use shared::db::{outbox, processed_messages};
use sqlx::PgPool;
use tokio::sync::watch;

use crate::metrics::Metrics;

/// Rows deleted per statement.
const BATCH: i64 = 5_000;

/// The tables this job keeps short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Published `outbox` rows.
    Outbox,
    /// `processed_messages`, the worker's guard against doing a job twice.
    ProcessedMessages,
}

impl Table {
    /// Both, in the order [`purge_once`] reports them.
    pub const ALL: [Table; 2] = [Table::Outbox, Table::ProcessedMessages];

    /// The table name (also the metric's `table` label).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Table::Outbox => "outbox",
            Table::ProcessedMessages => "processed_messages",
        }
    }

    async fn purge(self, pool: &PgPool, cutoff: chrono::DateTime<chrono::Utc>) -> Result<u64, shared::db::Error> {
        match self {
            Table::Outbox => outbox::purge_sent(pool, cutoff, BATCH).await,
            Table::ProcessedMessages => processed_messages::purge(pool, cutoff, BATCH).await,
        }
    }
}

/// What to keep and how often to look.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Rows older than this go.
    pub keep: Duration,
    /// The pause between two passes.
    pub every: Duration,
}

/// Runs a pass at once and then every `retention.every` until `stop` turns true.
/// A failed pass (Postgres down) is logged and retried at the next interval.
pub async fn run(pool: PgPool, retention: Retention, metrics: Metrics, mut stop: watch::Receiver<bool>) {
    loop {
        match purge_once(&pool, retention.keep, &metrics).await {
            Ok([0, 0]) => {}
            Ok([outbox, processed]) => tracing::info!(outbox, processed, "deleted rows past retention"),
            Err(e) => tracing::warn!(error = %shared::telemetry::error_chain(&e), "retention pass failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(retention.every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// One pass: deletes, batch by batch, what is older than `keep`; returns the rows
/// deleted per table (in [`Table::ALL`] order).
///
/// # Errors
/// [`shared::db::Error`] when a delete fails; rows deleted before it are counted.
pub async fn purge_once(pool: &PgPool, keep: Duration, metrics: &Metrics) -> Result<[u64; 2], shared::db::Error> {
    let cutoff = chrono::Utc::now() - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
    let mut deleted = [0u64; 2];
    for (i, table) in Table::ALL.into_iter().enumerate() {
        loop {
            let n = table.purge(pool, cutoff).await?;
            deleted[i] += n;
            metrics.purged.with_label_values(&[table.as_str()]).inc_by(n);
            if n < BATCH.unsigned_abs() {
                break;
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::Table;
    use crate::metrics::PURGED_TABLES;

    #[test]
    fn the_metric_knows_every_table() {
        assert_eq!(Table::ALL.map(Table::as_str), PURGED_TABLES);
    }
}
