//! RabbitMQ: the wire types of queued jobs, the topology both binaries declare, a
//! publisher that waits for broker confirms, and the outbox relay.
//!
//! Invariants: every message is persistent and carries its id and schema version;
//! nothing here logs a message body (it may hold a one-time token or an address).

mod message;
mod publisher;
mod relay;
mod topology;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

pub use message::{
    notification_channel, templates, AuthEvent, AuthEventKind, EmailJob, Envelope, Job, NotificationMessage,
    SCHEMA_VERSION,
};
pub use publisher::{properties, Pending, Publisher, ATTEMPT_HEADER};
pub use relay::{relay_once, run_relay};
pub use topology::{declare, JobQueue, Topology};

use crate::config::Settings;

/// Errors from the queue layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The broker could not be reached, or an AMQP operation failed; `context` says
    /// which.
    #[error("RabbitMQ {context} failed")]
    Amqp {
        /// The operation (`connect`, `declare`, `publish`...).
        context: &'static str,
        /// The client's error.
        #[source]
        source: lapin::Error,
    },
    /// The broker did not answer in time.
    #[error("RabbitMQ {0} timed out")]
    Timeout(&'static str),
    /// The broker refused to take responsibility for a message (a `basic.nack`).
    #[error("RabbitMQ refused message {0}")]
    Nacked(uuid::Uuid),
    /// The broker returned a message no queue was bound for (topology missing).
    #[error("RabbitMQ could not route message {id} to queue {queue}")]
    Unroutable {
        /// The message id.
        id: uuid::Uuid,
        /// The routing key it was published with.
        queue: String,
    },
    /// A message could not be serialized (a bug).
    #[error("message could not be encoded")]
    Encode(#[source] serde_json::Error),
    /// The database refused a step of the outbox relay.
    #[error("outbox database step failed")]
    Db(#[from] crate::db::Error),
}

impl Error {
    pub(crate) fn amqp(context: &'static str) -> impl FnOnce(lapin::Error) -> Error {
        move |source| Error::Amqp { context, source }
    }

    /// Whether the broker connection is probably gone (as opposed to one message
    /// being refused), so the caller should reconnect.
    pub fn is_connection_error(&self) -> bool {
        matches!(self, Error::Amqp { .. } | Error::Timeout(_))
    }
}

/// What a process needs to talk to the broker: where it is, the queue names, and
/// how the outbox relay paces itself.
#[derive(Debug, Clone)]
pub struct Config {
    /// `RABBITMQ_URL`.
    pub url: SecretString,
    /// Queue names and retry schedule.
    pub topology: Topology,
    /// Outbox rows published per transaction.
    pub outbox_batch: u32,
    /// How often the relay polls when no notification woke it.
    pub outbox_poll_interval: Duration,
}

impl Config {
    /// The broker settings of `settings` (`RABBITMQ_URL` and the `QUEUE_*`
    /// variables); `None` without a `RABBITMQ_URL` (single-node mode).
    pub fn from_settings(settings: &Settings) -> Option<Config> {
        Some(Config {
            url: settings.rabbitmq.url.clone()?,
            topology: Topology::new(&settings.queue),
            outbox_batch: settings.queue.outbox_batch,
            outbox_poll_interval: settings.queue.outbox_poll_interval,
        })
    }
}

/// Opens a connection to the broker, naming it `name` in the management UI. No
/// automatic recovery: callers reconnect themselves (see [`Backoff`]), which keeps
/// the state after an outage easy to reason about.
///
/// # Errors
/// [`Error::Amqp`] when the broker is unreachable or refuses the credentials.
pub async fn connect(url: &SecretString, name: &str) -> Result<lapin::Connection, Error> {
    let properties = lapin::ConnectionProperties::default().with_connection_name(name.into());
    let connect = lapin::Connection::connect(url.expose_secret(), properties);
    // A broker that accepts TCP but never answers must not hang the caller forever.
    match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Ok(result) => result.map_err(Error::amqp("connect")),
        Err(_) => Err(Error::Timeout("connect")),
    }
}

/// Exponential backoff for reconnect loops: 200 ms doubling up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    /// Starts at `min`, doubles on each [`Backoff::next_delay`], never above `max`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { next: min, min, max }
    }

    /// The wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// Back to the shortest wait, after a success.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_millis(200), Duration::from_secs(5))
    }
}
