//! The consume loop: one per queue. Connects (and reconnects after an outage),
//! declares the topology, consumes with manual acks and a prefetch equal to the
//! concurrency, runs [`Jobs::handle`] on each delivery in its own task, and settles
//! the delivery according to the [`Outcome`]:
//!
//! - `Ack`: acknowledge.
//! - `Retry`: publish a copy (attempt + 1) to the retry queue for this attempt's
//!   backoff, wait for the broker's confirm, then acknowledge; on the last attempt,
//!   dead-letter instead.
//! - `DeadLetter`: publish a copy with the reason to the dead-letter queue, wait for
//!   the confirm, then acknowledge.
//!
//! Nothing is ever rejected with requeue, so no message can loop. A settle that
//! fails leaves the delivery unacknowledged: the broker hands it out again when the
//! channel closes, and the job's idempotency makes that harmless.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use shared::queue::{self, Backoff, JobQueue, Publisher, Topology, ATTEMPT_HEADER};
use shared::telemetry::error_chain;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::jobs::{Incoming, Jobs, Outcome};

/// Header naming why a message was dead-lettered.
pub const DEAD_REASON_HEADER: &str = "x-tg-dead-reason";
/// Header naming the queue a dead letter came from.
pub const DEAD_QUEUE_HEADER: &str = "x-tg-queue";
/// Header with the Unix time a message was dead-lettered.
pub const DEAD_AT_HEADER: &str = "x-tg-dead-at";

/// What a consumer needs besides the jobs.
#[derive(Clone)]
pub struct ConsumerConfig {
    /// Broker URL and topology.
    pub broker: queue::Config,
    /// Jobs in flight at once (the prefetch).
    pub concurrency: u16,
    /// How long in-flight jobs get after a stop request.
    pub grace: Duration,
}

/// Why a consumer returned.
#[derive(Debug)]
pub enum Stopped {
    /// A stop was requested; in-flight jobs finished (or the grace ran out, then
    /// `abandoned` jobs were cut off and their messages return to the queue).
    Drained {
        /// Jobs cut off at the deadline.
        abandoned: usize,
    },
}

/// Consumes `queue` until `stop` turns true, reconnecting as needed.
pub async fn run(queue: JobQueue, jobs: Arc<Jobs>, config: ConsumerConfig, mut stop: watch::Receiver<bool>) -> Stopped {
    let up = jobs.metrics.consumer_up.with_label_values(&[queue.as_str()]);
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let mut in_flight: JoinSet<()> = JoinSet::new();
    loop {
        if stopping(&stop) {
            return drain(in_flight, config.grace).await;
        }
        let session = tokio::select! {
            session = Session::open(queue, &config) => session,
            () = stop_requested(&mut stop) => continue,
        };
        let mut session = match session {
            Ok(session) => session,
            Err(e) => {
                tracing::warn!(%queue, error = %error_chain(&e), "cannot consume; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                    () = stop_requested(&mut stop) => {}
                }
                continue;
            }
        };
        backoff.reset();
        up.set(1);
        tracing::info!(%queue, queue_name = %config.broker.topology.queue(queue), "consuming");
        let ended = loop {
            while in_flight.try_join_next().is_some() {}
            tokio::select! {
                () = stop_requested(&mut stop) => break "stop requested",
                delivery = session.consumer.next() => match delivery {
                    Some(Ok(delivery)) => {
                        let jobs = jobs.clone();
                        let publisher = session.publisher.clone();
                        let topology = config.broker.topology.clone();
                        in_flight.spawn(async move { process(queue, &jobs, &publisher, &topology, delivery).await });
                    }
                    Some(Err(e)) => {
                        tracing::warn!(%queue, error = %error_chain(&e), "consumer failed; reconnecting");
                        break "consumer failed";
                    }
                    None => break "consumer cancelled by the broker",
                },
            }
        };
        up.set(0);
        if stopping(&stop) {
            // Stop taking new deliveries; the channel stays open so in-flight jobs
            // can still acknowledge theirs.
            let _ = session.channel.basic_cancel(session.consumer.tag(), BasicCancelOptions::default()).await;
            let stopped = drain(in_flight, config.grace).await;
            // Closing the connection hands every unacknowledged delivery back.
            let _ = session.connection.close(200, "shutdown".into()).await;
            return stopped;
        }
        tracing::warn!(%queue, reason = ended, "consumer ended; reconnecting");
        let _ = session.connection.close(200, "reconnecting".into()).await;
    }
}

/// Whether a stop was requested (or whoever could request one is gone).
fn stopping(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

/// Resolves once a stop is requested.
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn drain(mut in_flight: JoinSet<()>, grace: Duration) -> Stopped {
    let deadline = tokio::time::sleep(grace);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = in_flight.join_next() => if next.is_none() {
                return Stopped::Drained { abandoned: 0 };
            },
            () = &mut deadline => {
                let abandoned = in_flight.len();
                in_flight.abort_all();
                return Stopped::Drained { abandoned };
            }
        }
    }
}

struct Session {
    connection: lapin::Connection,
    channel: lapin::Channel,
    consumer: lapin::Consumer,
    publisher: Publisher,
}

impl Session {
    async fn open(queue: JobQueue, config: &ConsumerConfig) -> Result<Session, queue::Error> {
        let connection = queue::connect(&config.broker.url, &format!("tenantgate worker ({queue})")).await?;
        let publisher = Publisher::open(&connection).await?;
        queue::declare(publisher.channel(), &config.broker.topology).await?;
        let channel = connection.create_channel().await.map_err(amqp("open channel"))?;
        channel.basic_qos(config.concurrency, BasicQosOptions::default()).await.map_err(amqp("qos"))?;
        let consumer = channel
            .basic_consume(
                config.broker.topology.queue(queue).as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(amqp("consume"))?;
        Ok(Session { connection, channel, consumer, publisher })
    }
}

fn amqp(context: &'static str) -> impl FnOnce(lapin::Error) -> queue::Error {
    move |source| queue::Error::Amqp { context, source }
}

/// The attempt number a delivery carries (1 when the header is missing).
pub fn attempt_of(properties: &lapin::BasicProperties) -> u32 {
    let value = properties.headers().as_ref().and_then(|h| h.inner().get(ATTEMPT_HEADER).cloned());
    let n = match value {
        Some(AMQPValue::LongLongInt(n)) => n,
        Some(AMQPValue::LongInt(n)) => i64::from(n),
        Some(AMQPValue::LongUInt(n)) => i64::from(n),
        Some(AMQPValue::ShortInt(n)) => i64::from(n),
        _ => 1,
    };
    u32::try_from(n).unwrap_or(1).max(1)
}

async fn process(queue: JobQueue, jobs: &Jobs, publisher: &Publisher, topology: &Topology, delivery: Delivery) {
    let started = Instant::now();
    let attempt = attempt_of(&delivery.properties);
    let incoming = Incoming { queue, body: &delivery.data, attempt, redelivered: delivery.redelivered };
    let outcome = jobs.handle(&incoming).await;
    let message_id = delivery.properties.message_id().as_ref().map(|id| id.to_string()).unwrap_or_default();
    let settled = match &outcome {
        Outcome::Ack => Ok(outcome.clone()),
        Outcome::Retry(reason) if attempt < topology.max_attempts() => {
            let delay = topology.retry_delay(attempt);
            tracing::warn!(%queue, %message_id, attempt, retry_in = ?delay, reason = %reason, "job failed; will retry");
            republish(publisher, &topology.retry_queue(queue, delay), &delivery, attempt + 1, FieldTable::default())
                .await
                .map(|()| outcome.clone())
        }
        Outcome::Retry(reason) | Outcome::DeadLetter(reason) => {
            let reason = if matches!(outcome, Outcome::Retry(_)) {
                format!("gave up after {attempt} attempts: {reason}")
            } else {
                reason.clone()
            };
            tracing::error!(%queue, %message_id, attempt, reason = %reason, "job dead-lettered");
            let mut headers = FieldTable::default();
            headers
                .insert(DEAD_REASON_HEADER.into(), AMQPValue::LongString(LongString::from(reason.as_bytes().to_vec())));
            headers.insert(
                DEAD_QUEUE_HEADER.into(),
                AMQPValue::LongString(LongString::from(queue.as_str().as_bytes().to_vec())),
            );
            headers.insert(DEAD_AT_HEADER.into(), AMQPValue::LongLongInt(chrono::Utc::now().timestamp()));
            republish(publisher, &topology.dead_letter_queue(queue), &delivery, attempt, headers)
                .await
                .map(|()| Outcome::DeadLetter(reason))
        }
    };
    let settled = match settled {
        Ok(outcome) => delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .map(|_| outcome)
            .map_err(|e| queue::Error::Amqp { context: "ack", source: e }),
        Err(e) => Err(e),
    };
    match settled {
        Ok(outcome) => jobs.metrics.record(queue, outcome.label(), started.elapsed().as_secs_f64()),
        // Left unacknowledged: the broker redelivers it after the channel closes.
        Err(e) => tracing::warn!(%queue, %message_id, error = %error_chain(&e), "could not settle a delivery"),
    }
}

async fn republish(
    publisher: &Publisher,
    queue_name: &str,
    delivery: &Delivery,
    attempt: u32,
    extra_headers: FieldTable,
) -> Result<(), queue::Error> {
    let id_text = delivery.properties.message_id().as_ref().map(|id| id.to_string()).unwrap_or_default();
    let id = uuid::Uuid::parse_str(&id_text).unwrap_or_else(|_| uuid::Uuid::nil());
    let kind = delivery.properties.kind().as_ref().map(|k| k.to_string()).unwrap_or_default();
    let mut properties = queue::properties(id, &kind, attempt, extra_headers);
    if id.is_nil() {
        // A message published by hand without an id keeps whatever it had.
        properties = match delivery.properties.message_id() {
            Some(original) => properties.with_message_id(original.clone()),
            None => properties,
        };
    }
    let pending = publisher.start(queue_name, id, &delivery.data, properties).await?;
    Publisher::finish(pending).await
}
