//! Real-time delivery of notifications on Redis pub/sub.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::ExposeSecret;
use shared::config::RedisSettings;
use shared::domain::UserId;

/// Errors from Redis.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `REDIS_URL` does not parse.
    #[error("invalid REDIS_URL")]
    Url(#[source] redis::RedisError),
    /// Redis did not take the command.
    #[error("Redis command failed")]
    Command(#[source] redis::RedisError),
}

/// Publishes notification JSON on `{REDIS_KEY_PREFIX}notifications:user:{userId}`.
/// The connection is opened on first use and re-opened after an outage by the
/// connection manager.
#[derive(Clone)]
pub struct Notifier {
    redis: ConnectionManager,
    key_prefix: String,
}

impl Notifier {
    /// A notifier for `settings`; connects lazily.
    ///
    /// # Errors
    /// [`Error::Url`] on a malformed `REDIS_URL`.
    pub fn new(settings: &RedisSettings) -> Result<Notifier, Error> {
        let client = redis::Client::open(settings.url.expose_secret()).map_err(Error::Url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let redis = ConnectionManager::new_lazy_with_config(client, config).map_err(Error::Url)?;
        Ok(Notifier { redis, key_prefix: settings.key_prefix.clone() })
    }

    /// Publishes `payload` to `user`'s channel; returns the number of subscribers
    /// that received it.
    ///
    /// # Errors
    /// [`Error::Command`] when Redis is unreachable.
    pub async fn publish(&self, user: UserId, payload: &str) -> Result<usize, Error> {
        let channel = shared::queue::notification_channel(&self.key_prefix, user);
        let mut redis = self.redis.clone();
        redis::cmd("PUBLISH").arg(channel).arg(payload).query_async(&mut redis).await.map_err(Error::Command)
    }

    /// `PING`, for readiness.
    ///
    /// # Errors
    /// [`Error::Command`] when Redis does not answer.
    pub async fn ping(&self) -> Result<(), Error> {
        let mut redis = self.redis.clone();
        redis::cmd("PING").query_async::<String>(&mut redis).await.map(|_| ()).map_err(Error::Command)
    }
}
