//! Queue names and the retry schedule, and their idempotent declaration.
//!
//! For each job queue `Q` (with `QUEUE_PREFIX` `p`):
//! - `pQ`: a durable quorum queue the worker consumes. Its `x-delivery-limit`
//!   dead-letters a message that keeps coming back without being settled (a job that
//!   crashes the worker every time), so a crash cannot turn into a requeue loop.
//! - `pQ.retry.<ms>ms`: one durable queue per backoff step, no consumer; messages
//!   wait out the queue's TTL and are dead-lettered back to `pQ`. Named by delay so a
//!   changed schedule declares new queues instead of clashing with old arguments.
//! - `pQ.dead`: the dead-letter queue, inspected and replayed by
//!   `worker dead-letters`.
//!
//! Everything goes through the default exchange, routed by queue name.

use std::fmt;
use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::Channel;
use serde::{Deserialize, Serialize};

use super::Error;
use crate::config::QueueSettings;

/// The two job queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobQueue {
    /// Emails to send.
    Email,
    /// Auth events to store and publish.
    Notification,
}

impl JobQueue {
    /// Both queues.
    pub const ALL: [JobQueue; 2] = [JobQueue::Email, JobQueue::Notification];

    /// The unprefixed name (`email`, `notification`), also stored in `outbox.queue`.
    pub fn as_str(&self) -> &'static str {
        match self {
            JobQueue::Email => "email",
            JobQueue::Notification => "notification",
        }
    }

    /// The inverse of [`JobQueue::as_str`].
    pub fn parse(name: &str) -> Option<JobQueue> {
        JobQueue::ALL.into_iter().find(|q| q.as_str() == name)
    }
}

impl fmt::Display for JobQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Queue names and the retry schedule for one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
    max_attempts: u32,
    retry_base_delay: Duration,
    retry_max_delay: Duration,
}

impl Topology {
    /// The topology `QUEUE_*` describes.
    pub fn new(settings: &QueueSettings) -> Topology {
        Topology {
            prefix: settings.prefix.clone(),
            max_attempts: settings.max_attempts.max(1),
            retry_base_delay: settings.retry_base_delay,
            retry_max_delay: settings.retry_max_delay.max(settings.retry_base_delay),
        }
    }

    /// The name of the queue the worker consumes.
    pub fn queue(&self, queue: JobQueue) -> String {
        format!("{}{queue}", self.prefix)
    }

    /// The name of the dead-letter queue.
    pub fn dead_letter_queue(&self, queue: JobQueue) -> String {
        format!("{}{queue}.dead", self.prefix)
    }

    /// The name of the retry queue that holds messages for `delay`.
    pub fn retry_queue(&self, queue: JobQueue, delay: Duration) -> String {
        format!("{}{queue}.retry.{}ms", self.prefix, delay.as_millis())
    }

    /// Attempts before a job is dead-lettered (`QUEUE_MAX_ATTEMPTS`).
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The wait after failed attempt `attempt` (1-based): the base delay doubled per
    /// earlier attempt, capped at the maximum.
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        self.retry_base_delay.saturating_mul(1 << doublings).min(self.retry_max_delay)
    }

    /// The distinct delays of the retry schedule, shortest first.
    pub fn retry_delays(&self) -> Vec<Duration> {
        let mut delays: Vec<Duration> = (1..self.max_attempts).map(|a| self.retry_delay(a)).collect();
        delays.dedup();
        delays
    }

    /// Every queue name of this topology (for cleanup in tests and ops scripts).
    pub fn all_queue_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for queue in JobQueue::ALL {
            names.push(self.queue(queue));
            names.push(self.dead_letter_queue(queue));
            names.extend(self.retry_delays().into_iter().map(|d| self.retry_queue(queue, d)));
        }
        names
    }
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value.as_bytes().to_vec()))
}

/// Declares every queue of `topology` on `channel`. Idempotent: both binaries call
/// it at start (and after each reconnect); redeclaring with the same arguments is a
/// no-op for the broker.
///
/// # Errors
/// [`Error::Amqp`] when the broker is unreachable or an existing queue was declared
/// with other arguments (which closes the channel).
pub async fn declare(channel: &Channel, topology: &Topology) -> Result<(), Error> {
    let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    for queue in JobQueue::ALL {
        let dead = topology.dead_letter_queue(queue);
        channel
            .queue_declare(dead.as_str().into(), durable, FieldTable::default())
            .await
            .map_err(Error::amqp("declare"))?;

        let mut main = FieldTable::default();
        main.insert("x-queue-type".into(), text("quorum"));
        main.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongInt(i32::try_from(topology.max_attempts).unwrap_or(i32::MAX)),
        );
        main.insert("x-dead-letter-exchange".into(), text(""));
        main.insert("x-dead-letter-routing-key".into(), text(&dead));
        channel
            .queue_declare(topology.queue(queue).as_str().into(), durable, main)
            .await
            .map_err(Error::amqp("declare"))?;

        for delay in topology.retry_delays() {
            let mut retry = FieldTable::default();
            let ttl = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
            retry.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
            retry.insert("x-dead-letter-exchange".into(), text(""));
            retry.insert("x-dead-letter-routing-key".into(), text(&topology.queue(queue)));
            channel
                .queue_declare(topology.retry_queue(queue, delay).as_str().into(), durable, retry)
                .await
                .map_err(Error::amqp("declare"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology(max_attempts: u32, base_ms: u64, max_ms: u64) -> Topology {
        Topology::new(&QueueSettings {
            prefix: "t1.".into(),
            max_attempts,
            retry_base_delay: Duration::from_millis(base_ms),
            retry_max_delay: Duration::from_millis(max_ms),
            outbox_batch: 10,
            outbox_poll_interval: Duration::from_secs(1),
            retention: Duration::from_secs(86400),
            purge_interval: Duration::from_secs(3600),
        })
    }

    #[test]
    fn delays_double_and_cap() {
        let t = topology(8, 5_000, 60_000);
        let secs: Vec<u64> = (1..8).map(|a| t.retry_delay(a).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 60, 60, 60]);
        assert_eq!(t.retry_delays().len(), 5);
        assert_eq!(t.retry_queue(JobQueue::Email, Duration::from_secs(5)), "t1.email.retry.5000ms");
        assert_eq!(t.dead_letter_queue(JobQueue::Notification), "t1.notification.dead");
    }

    #[test]
    fn one_attempt_means_no_retry_queues() {
        let t = topology(1, 100, 100);
        assert!(t.retry_delays().is_empty());
        assert_eq!(t.all_queue_names().len(), 4);
        assert_eq!(t.retry_delay(u32::MAX), Duration::from_millis(100));
    }
}
