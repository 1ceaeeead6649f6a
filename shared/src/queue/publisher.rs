//! Publishing with publisher confirms: a publish returns only once the broker has
//! taken responsibility for the message (written it to its queue), or fails.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection};
use lapin::{Confirmation, PublisherConfirm};
use uuid::Uuid;

use super::{Envelope, Error};

/// The header carrying the attempt number of a delivery (1 for the first).
pub const ATTEMPT_HEADER: &str = "x-tg-attempt";

/// Properties for a message: persistent, JSON, with its id, `type` and attempt.
pub fn properties(id: Uuid, kind: &str, attempt: u32, mut headers: FieldTable) -> BasicProperties {
    headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongLongInt(i64::from(attempt)));
    let now = chrono::Utc::now().timestamp();
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id(id.to_string().into())
        .with_type(kind.into())
        .with_timestamp(u64::try_from(now).unwrap_or_default())
        .with_headers(headers)
}

/// A channel in confirm mode. Cheap to clone (channels are handles).
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
}

/// A publish the broker has not confirmed yet.
pub struct Pending {
    id: Uuid,
    queue: String,
    confirm: PublisherConfirm,
}

impl Publisher {
    /// Opens a channel on `connection` and switches it to confirm mode.
    ///
    /// # Errors
    /// [`Error::Amqp`] when the connection is gone.
    pub async fn open(connection: &Connection) -> Result<Publisher, Error> {
        let channel = connection.create_channel().await.map_err(Error::amqp("open channel"))?;
        channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(Error::amqp("confirm select"))?;
        Ok(Publisher { channel })
    }

    /// The underlying channel (to declare the topology on it, for instance).
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Publishes `envelope` to `queue` (a full queue name from the topology) as
    /// attempt 1 and waits for the broker's confirm.
    ///
    /// # Errors
    /// [`Error::Amqp`] when the connection fails, [`Error::Nacked`] or
    /// [`Error::Unroutable`] when the broker refuses the message.
    pub async fn publish(&self, queue: &str, envelope: &Envelope) -> Result<(), Error> {
        let body = serde_json::to_vec(envelope).map_err(Error::Encode)?;
        let props = properties(envelope.id, envelope.job.kind(), 1, FieldTable::default());
        let pending = self.start(queue, envelope.id, &body, props).await?;
        Publisher::finish(pending).await
    }

    /// Sends one message without waiting for its confirm; pass the result to
    /// [`Publisher::finish`]. Sending a batch first and then awaiting every confirm
    /// costs one round trip instead of one per message.
    ///
    /// # Errors
    /// [`Error::Amqp`] when the connection fails.
    pub async fn start(&self, queue: &str, id: Uuid, body: &[u8], props: BasicProperties) -> Result<Pending, Error> {
        // Mandatory: a message no queue takes comes back instead of vanishing.
        let options = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
        let confirm = self
            .channel
            .basic_publish(ShortString::from(""), queue.into(), options, body, props)
            .await
            .map_err(Error::amqp("publish"))?;
        Ok(Pending { id, queue: queue.to_owned(), confirm })
    }

    /// Waits for the broker's verdict on a started publish.
    ///
    /// # Errors
    /// As [`Publisher::publish`].
    pub async fn finish(pending: Pending) -> Result<(), Error> {
        let Pending { id, queue, confirm } = pending;
        let confirmation = tokio::time::timeout(std::time::Duration::from_secs(30), confirm)
            .await
            .map_err(|_| Error::Timeout("publisher confirm"))?
            .map_err(Error::amqp("publisher confirm"))?;
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) => Err(Error::Unroutable { id, queue }),
            Confirmation::Nack(_) => Err(Error::Nacked(id)),
            // Only reachable on a channel not in confirm mode, which `open` prevents.
            Confirmation::NotRequested => Ok(()),
        }
    }
}
