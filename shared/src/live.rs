//! Live notifications: the worker's job publishes each stored notification on its
//! user's channel, and the gateway's `/auth/notifications/stream` forwards what it
//! hears there.
//!
//! Between processes the channel is Redis pub/sub
//! (`{REDIS_KEY_PREFIX}notifications:user:{id}`). In single-node mode (no
//! `REDIS_URL`) it is a broadcast inside the process, which reaches the gateway's
//! streams because the gateway then runs the jobs itself. Either way the stream is
//! live delivery only: every notification is stored first, and a client that was
//! away lists what it missed.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::broadcast;

use crate::domain::UserId;
use crate::queue::notification_channel;

/// How long opening a Redis subscription may take.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Notifications (of every user) an in-process subscriber may fall behind by; one
/// that falls further behind ends, and its client reconnects and lists what it
/// missed, rather than skipping some silently.
const LOCAL_BACKLOG: usize = 1024;

/// Errors from the live feed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `REDIS_URL` does not parse.
    #[error("invalid REDIS_URL")]
    Url(#[source] redis::RedisError),
    /// Redis did not take the command, or the connection broke.
    #[error("Redis command failed")]
    Command(#[source] redis::RedisError),
    /// Redis did not answer in time.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
}

/// Publishes and subscribes to users' notification channels. Cheap to clone.
#[derive(Clone)]
pub struct LiveFeed {
    transport: Transport,
    prefix: String,
}

#[derive(Clone)]
enum Transport {
    Redis { client: redis::Client, conn: ConnectionManager },
    Local(broadcast::Sender<Arc<(UserId, String)>>),
}

impl LiveFeed {
    /// Redis pub/sub at `url` when there is one, the in-process broadcast
    /// otherwise; channels are named under `prefix`. Connects lazily.
    ///
    /// # Errors
    /// [`Error::Url`] on a malformed `REDIS_URL`.
    pub fn new(url: Option<&SecretString>, prefix: &str) -> Result<LiveFeed, Error> {
        let transport = match url {
            Some(url) => {
                let client = redis::Client::open(url.expose_secret()).map_err(Error::Url)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(SUBSCRIBE_TIMEOUT))
                    .set_response_timeout(Some(SUBSCRIBE_TIMEOUT))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_secs(1));
                let conn = ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(Error::Url)?;
                Transport::Redis { client, conn }
            }
            None => Transport::Local(broadcast::channel(LOCAL_BACKLOG).0),
        };
        Ok(LiveFeed { transport, prefix: prefix.to_owned() })
    }

    /// Whether this feed reaches only this process (single-node mode).
    pub fn is_local(&self) -> bool {
        matches!(self.transport, Transport::Local(_))
    }

    /// Publishes `payload` (a notification's JSON) to `user`'s channel; returns how
    /// many subscribers received it.
    ///
    /// # Errors
    /// [`Error::Command`] when Redis is unreachable; never in single-node mode.
    pub async fn publish(&self, user: UserId, payload: &str) -> Result<usize, Error> {
        match &self.transport {
            Transport::Redis { conn, .. } => {
                let channel = notification_channel(&self.prefix, user);
                let mut conn = conn.clone();
                redis::cmd("PUBLISH").arg(channel).arg(payload).query_async(&mut conn).await.map_err(Error::Command)
            }
            // No receiver is no error: nobody is watching right now.
            Transport::Local(sender) => Ok(sender.send(Arc::new((user, payload.to_owned()))).unwrap_or(0)),
        }
    }

    /// `user`'s notifications from now on, as their JSON; the subscription is in
    /// place when this returns.
    ///
    /// # Errors
    /// [`Error`] when Redis cannot be reached within two seconds.
    pub async fn subscribe(&self, user: UserId) -> Result<BoxStream<'static, String>, Error> {
        match &self.transport {
            Transport::Redis { client, .. } => {
                let mut pubsub = tokio::time::timeout(SUBSCRIBE_TIMEOUT, client.get_async_pubsub())
                    .await
                    .map_err(|_| Error::Timeout(SUBSCRIBE_TIMEOUT))?
                    .map_err(Error::Command)?;
                pubsub.subscribe(notification_channel(&self.prefix, user)).await.map_err(Error::Command)?;
                Ok(pubsub.into_on_message().filter_map(|msg| async move { msg.get_payload::<String>().ok() }).boxed())
            }
            Transport::Local(sender) => {
                let receiver = sender.subscribe();
                Ok(futures::stream::unfold(receiver, move |mut receiver| async move {
                    loop {
                        match receiver.recv().await {
                            Ok(message) if message.0 == user => return Some((message.1.clone(), receiver)),
                            Ok(_) => {}
                            Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => {
                                return None
                            }
                        }
                    }
                })
                .boxed())
            }
        }
    }

    /// `PING` for readiness; always fine in single-node mode.
    ///
    /// # Errors
    /// [`Error::Command`] when Redis does not answer.
    pub async fn ping(&self) -> Result<(), Error> {
        match &self.transport {
            Transport::Redis { conn, .. } => {
                let mut conn = conn.clone();
                redis::cmd("PING").query_async::<String>(&mut conn).await.map(|_| ()).map_err(Error::Command)
            }
            Transport::Local(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_process_feed_delivers_only_the_users_own_notifications() {
        let feed = LiveFeed::new(None, "tg:").unwrap();
        assert!(feed.is_local());
        let (ann, bob) = (UserId::new(), UserId::new());
        let mut stream = feed.subscribe(ann).await.unwrap();
        assert_eq!(feed.publish(bob, "for bob").await.unwrap(), 1, "one subscriber hears the channel");
        assert_eq!(feed.publish(ann, "for ann").await.unwrap(), 1);
        assert_eq!(stream.next().await.as_deref(), Some("for ann"), "bob's message is not ann's");
        drop(stream);
        assert_eq!(feed.publish(ann, "nobody listens").await.unwrap(), 0, "publishing to nobody is no error");
        feed.ping().await.unwrap();
    }
}
