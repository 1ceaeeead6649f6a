//! `worker dead-letters list|show|replay`: inspect and requeue dead letters,
//! filtered by id, job type or reason.
//!
//! Listing takes messages with `basic.get` without acknowledging them and closes the
//! channel, which hands them all back in order. Replaying publishes each one to its
//! queue as attempt 1 (with confirms) and only then acknowledges the dead copy.
//!
//! In single-node mode (no RabbitMQ) dead letters are outbox rows with `dead_at`
//! set ([`crate::in_process`]); the `*_outbox` functions read and revive those.

use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::types::{AMQPValue, FieldTable};
use shared::db::{self, outbox};
use shared::queue::{self, JobQueue, Publisher};
use sqlx::PgPool;

use crate::consumer::{attempt_of, DEAD_AT_HEADER, DEAD_REASON_HEADER};

/// One dead letter, without its body.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The queue it died on.
    pub queue: JobQueue,
    /// The message id.
    pub id: String,
    /// The job type.
    pub kind: String,
    /// Attempts made.
    pub attempts: u32,
    /// Why it died (`x-tg-dead-reason`, or the broker's reason, such as
    /// `delivery_limit` for a job that kept crashing the worker).
    pub reason: String,
    /// When (Unix seconds), if known.
    pub dead_at: Option<i64>,
}

/// Which dead letters a command applies to; every given part must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only the message with this id.
    pub id: Option<String>,
    /// Only jobs of this type (`send-verification`, `auth-event`...).
    pub kind: Option<String>,
    /// Only letters whose reason contains this text (any case).
    pub reason: Option<String>,
}

impl Filter {
    /// Whether `letter` passes.
    pub fn matches(&self, letter: &DeadLetter) -> bool {
        self.id.as_ref().is_none_or(|id| *id == letter.id)
            && self.kind.as_ref().is_none_or(|kind| *kind == letter.kind)
            && self.reason.as_ref().is_none_or(|text| letter.reason.to_lowercase().contains(&text.to_lowercase()))
    }
}

fn header<'a>(headers: &'a Option<FieldTable>, key: &str) -> Option<&'a AMQPValue> {
    headers.as_ref().and_then(|h| h.inner().get(key))
}

fn text(value: Option<&AMQPValue>) -> Option<String> {
    match value {
        Some(AMQPValue::LongString(s)) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        Some(AMQPValue::ShortString(s)) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn describe(queue: JobQueue, delivery: &lapin::message::Delivery) -> DeadLetter {
    let props = &delivery.properties;
    let headers = props.headers();
    let reason = text(header(headers, DEAD_REASON_HEADER))
        .or_else(|| text(header(headers, "x-first-death-reason")).map(|r| format!("broker: {r}")))
        .unwrap_or_else(|| "unknown".into());
    let dead_at = match header(headers, DEAD_AT_HEADER) {
        Some(AMQPValue::LongLongInt(t)) => Some(*t),
        _ => None,
    };
    DeadLetter {
        queue,
        id: props.message_id().as_ref().map(|s| s.to_string()).unwrap_or_default(),
        kind: props.kind().as_ref().map(|s| s.to_string()).unwrap_or_default(),
        attempts: attempt_of(props),
        reason,
        dead_at,
    }
}

/// Lists up to `limit` dead letters per queue that pass `filter`, oldest first,
/// leaving them in place.
///
/// # Errors
/// [`queue::Error`] when the broker is unreachable.
pub async fn list(
    broker: &queue::Config,
    queues: &[JobQueue],
    limit: usize,
    filter: &Filter,
) -> Result<Vec<DeadLetter>, queue::Error> {
    Ok(scan(broker, queues, limit, filter).await?.into_iter().map(|(letter, _)| letter).collect())
}

/// The dead letter with `id` and its body, one-time tokens (`token` fields)
/// redacted, pretty-printed when it is JSON; `None` when no queue holds it.
///
/// # Errors
/// [`queue::Error`] when the broker is unreachable.
pub async fn show(
    broker: &queue::Config,
    queues: &[JobQueue],
    id: &str,
) -> Result<Option<(DeadLetter, String)>, queue::Error> {
    let filter = Filter { id: Some(id.to_owned()), ..Filter::default() };
    let found = scan(broker, queues, usize::MAX, &filter).await?.into_iter().next();
    Ok(found.map(|(letter, body)| (letter, redacted(&body))))
}

/// The body as text for an operator's terminal: JSON pretty-printed with every
/// `token` value replaced (they open accounts); anything else only by its size,
/// since a secret in it could not be found to redact.
fn redacted(body: &[u8]) -> String {
    fn redact(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    if key == "token" && v.is_string() {
                        *v = serde_json::Value::String("[redacted]".into());
                    } else {
                        redact(v);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
            _ => {}
        }
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(mut value) => {
            redact(&mut value);
            serde_json::to_string_pretty(&value).unwrap_or_default()
        }
        Err(_) => format!("({} bytes that are not JSON; not shown, they may hold a token)", body.len()),
    }
}

/// Up to `limit` letters per queue passing `filter`, with their bodies, taken
/// without acknowledging: closing the connection hands every one back in order.
async fn scan(
    broker: &queue::Config,
    queues: &[JobQueue],
    limit: usize,
    filter: &Filter,
) -> Result<Vec<(DeadLetter, Vec<u8>)>, queue::Error> {
    let connection = queue::connect(&broker.url, "tenantgate dead-letters").await?;
    let channel = connection.create_channel().await.map_err(amqp("open channel"))?;
    queue::declare(&channel, &broker.topology).await?;
    let mut out = Vec::new();
    for &queue in queues {
        let name = broker.topology.dead_letter_queue(queue);
        let mut found = 0;
        while found < limit {
            match channel.basic_get(name.as_str().into(), BasicGetOptions { no_ack: false }).await {
                Ok(Some(message)) => {
                    let letter = describe(queue, &message.delivery);
                    if filter.matches(&letter) {
                        found += 1;
                        out.push((letter, message.delivery.data));
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(amqp("get")(e)),
            }
        }
    }
    // Unacknowledged gets go back to their queue when the connection closes.
    let _ = connection.close(200, "listed".into()).await;
    Ok(out)
}

/// Moves up to `limit` dead letters per queue that pass `filter` back to their
/// queue as attempt 1; returns those moved.
///
/// # Errors
/// [`queue::Error`] when the broker is unreachable or refuses a publish; letters
/// not yet moved stay dead.
pub async fn replay(
    broker: &queue::Config,
    queues: &[JobQueue],
    limit: usize,
    filter: &Filter,
) -> Result<Vec<DeadLetter>, queue::Error> {
    let connection = queue::connect(&broker.url, "tenantgate dead-letters").await?;
    let publisher = Publisher::open(&connection).await?;
    queue::declare(publisher.channel(), &broker.topology).await?;
    let channel = connection.create_channel().await.map_err(amqp("open channel"))?;
    let mut moved = Vec::new();
    for &queue in queues {
        let name = broker.topology.dead_letter_queue(queue);
        let mut seen = 0;
        while seen < limit {
            let Some(message) = channel
                .basic_get(name.as_str().into(), BasicGetOptions { no_ack: false })
                .await
                .map_err(amqp("get"))?
            else {
                break;
            };
            let letter = describe(queue, &message.delivery);
            if !filter.matches(&letter) {
                // Left unacknowledged: it returns to the dead-letter queue on close.
                continue;
            }
            seen += 1;
            let id = uuid::Uuid::parse_str(&letter.id).unwrap_or_else(|_| uuid::Uuid::nil());
            let props = queue::properties(id, &letter.kind, 1, FieldTable::default());
            let pending = publisher.start(&broker.topology.queue(queue), id, &message.delivery.data, props).await?;
            Publisher::finish(pending).await?;
            message.delivery.acker.ack(BasicAckOptions::default()).await.map_err(amqp("ack"))?;
            moved.push(letter);
        }
    }
    let _ = connection.close(200, "replayed".into()).await;
    Ok(moved)
}

impl DeadLetter {
    fn from_row(row: &outbox::Dead) -> Option<DeadLetter> {
        Some(DeadLetter {
            queue: JobQueue::parse(&row.queue)?,
            id: row.id.to_string(),
            kind: row.kind.clone(),
            attempts: u32::try_from(row.attempts).unwrap_or(0),
            reason: row.last_error.clone().unwrap_or_else(|| "unknown".into()),
            dead_at: Some(row.dead_at.timestamp()),
        })
    }
}

/// Single-node mode: the dead outbox rows on `queues` that pass `filter`, with
/// their rows, up to `limit` per queue, oldest death first.
async fn scan_outbox(
    pool: &PgPool,
    queues: &[JobQueue],
    limit: usize,
    filter: &Filter,
) -> Result<Vec<(DeadLetter, outbox::Dead)>, db::Error> {
    let mut per_queue = [0usize; JobQueue::ALL.len()];
    let mut out = Vec::new();
    for row in outbox::list_dead(pool).await? {
        let Some(letter) = DeadLetter::from_row(&row) else { continue };
        let Some(slot) = JobQueue::ALL.iter().position(|q| *q == letter.queue) else { continue };
        if queues.contains(&letter.queue) && filter.matches(&letter) && per_queue[slot] < limit {
            per_queue[slot] += 1;
            out.push((letter, row));
        }
    }
    Ok(out)
}

/// [`list`] for single-node mode, from the outbox.
///
/// # Errors
/// [`db::Error`] when Postgres is unreachable.
pub async fn list_outbox(
    pool: &PgPool,
    queues: &[JobQueue],
    limit: usize,
    filter: &Filter,
) -> Result<Vec<DeadLetter>, db::Error> {
    Ok(scan_outbox(pool, queues, limit, filter).await?.into_iter().map(|(letter, _)| letter).collect())
}

/// [`show`] for single-node mode, from the outbox.
///
/// # Errors
/// [`db::Error`] when Postgres is unreachable.
pub async fn show_outbox(pool: &PgPool, id: &str) -> Result<Option<(DeadLetter, String)>, db::Error> {
    let filter = Filter { id: Some(id.to_owned()), ..Filter::default() };
    let found = scan_outbox(pool, &JobQueue::ALL, usize::MAX, &filter).await?.into_iter().next();
    Ok(found.map(|(letter, row)| (letter, redacted(row.payload.to_string().as_bytes()))))
}

/// [`replay`] for single-node mode: the rows get a fresh set of attempts, due now.
///
/// # Errors
/// [`db::Error`] when Postgres is unreachable.
pub async fn replay_outbox(
    pool: &PgPool,
    queues: &[JobQueue],
    limit: usize,
    filter: &Filter,
) -> Result<Vec<DeadLetter>, db::Error> {
    let found = scan_outbox(pool, queues, limit, filter).await?;
    let ids: Vec<uuid::Uuid> = found.iter().map(|(_, row)| row.id).collect();
    outbox::revive(pool, &ids).await?;
    Ok(found.into_iter().map(|(letter, _)| letter).collect())
}

fn amqp(context: &'static str) -> impl FnOnce(lapin::Error) -> queue::Error {
    move |source| queue::Error::Amqp { context, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_bodies_never_carry_a_token() {
        let body =
            br#"{"type":"send-verification","data":{"token":"s3cret","nested":[{"token":"also"}],"name":"Ada"}}"#;
        let shown = redacted(body);
        assert!(!shown.contains("s3cret") && !shown.contains("also"), "{shown}");
        assert!(shown.contains("[redacted]") && shown.contains("Ada"), "{shown}");
        let shown = redacted(b"not json \"token\":\"s3cret\"");
        assert!(!shown.contains("s3cret") && shown.contains("bytes that are not JSON"), "{shown}");
    }
}
