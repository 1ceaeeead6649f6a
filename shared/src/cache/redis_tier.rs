//! The shared tier: a Redis connection that is established (and re-established) in
//! the background, with every command bounded by a short timeout, so a slow or
//! absent Redis costs a cold lookup a few milliseconds, never a hang.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;

/// How long one Redis command may take before the tier is skipped.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(250);

/// Errors from the Redis tier.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No connection yet (Redis down since start).
    #[error("redis is not connected")]
    NotConnected,
    /// The command did not answer within the timeout.
    #[error("redis command timed out")]
    Timeout,
    /// Redis answered with an error or the connection broke.
    #[error("redis command failed")]
    Command(#[from] redis::RedisError),
}

/// A handle on the shared tier. Cheap to clone.
#[derive(Clone)]
pub struct RedisTier {
    client: redis::Client,
    conn: Arc<RwLock<Option<ConnectionManager>>>,
}

impl RedisTier {
    /// A tier for `client`; call [`RedisTier::connect_in_background`] to connect.
    pub fn new(client: redis::Client) -> RedisTier {
        RedisTier { client, conn: Arc::new(RwLock::new(None)) }
    }

    /// The client, for pub/sub connections.
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// Connects on the current runtime, retrying with backoff until it succeeds; the
    /// connection manager then reconnects by itself after outages.
    pub fn connect_in_background(&self) {
        let tier = self.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(100);
            loop {
                match tier.client.get_connection_manager_with_config(Self::config()).await {
                    Ok(conn) => {
                        if let Ok(mut slot) = tier.conn.write() {
                            *slot = Some(conn);
                        }
                        tracing::info!("redis connected");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "redis unavailable");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
    }

    /// Connects now (one attempt), for callers that need Redis before going on, such
    /// as command-line tools and tests.
    ///
    /// # Errors
    /// [`Error::Command`] when Redis cannot be reached.
    pub async fn connect_now(&self) -> Result<(), Error> {
        let conn = self.client.get_connection_manager_with_config(Self::config()).await?;
        if let Ok(mut slot) = self.conn.write() {
            *slot = Some(conn);
        }
        Ok(())
    }

    fn config() -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2))
    }

    fn connection(&self) -> Result<ConnectionManager, Error> {
        self.conn.read().ok().and_then(|c| c.clone()).ok_or(Error::NotConnected)
    }

    async fn bounded<T>(fut: impl std::future::Future<Output = redis::RedisResult<T>>) -> Result<T, Error> {
        Ok(tokio::time::timeout(COMMAND_TIMEOUT, fut).await.map_err(|_| Error::Timeout)??)
    }

    /// `GET key`.
    ///
    /// # Errors
    /// [`Error`] when Redis is unreachable or slow.
    pub async fn get(&self, key: &str) -> Result<Option<String>, Error> {
        let mut conn = self.connection()?;
        Self::bounded(conn.get(key)).await
    }

    /// `SET key value EX ttl`.
    ///
    /// # Errors
    /// [`Error`] when Redis is unreachable or slow.
    pub async fn set_ex(&self, key: &str, value: &str, ttl: Duration) -> Result<(), Error> {
        let mut conn = self.connection()?;
        Self::bounded(conn.set_ex(key, value, ttl.as_secs().max(1))).await
    }

    /// `DEL keys...`.
    ///
    /// # Errors
    /// [`Error`] when Redis is unreachable or slow.
    pub async fn del(&self, keys: &[String]) -> Result<(), Error> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut conn = self.connection()?;
        Self::bounded(conn.del::<_, ()>(keys)).await
    }

    /// `PUBLISH channel message`.
    ///
    /// # Errors
    /// [`Error`] when Redis is unreachable or slow.
    pub async fn publish(&self, channel: &str, message: &str) -> Result<(), Error> {
        let mut conn = self.connection()?;
        Self::bounded(conn.publish::<_, _, ()>(channel, message)).await
    }

    /// `INCR key` and, on the first increment, `EXPIRE key ttl`; returns the count and
    /// the key's remaining time to live (for `Retry-After`).
    ///
    /// # Errors
    /// [`Error`] when Redis is unreachable or slow.
    pub async fn incr_window(&self, key: &str, ttl: Duration) -> Result<(u64, Duration), Error> {
        let mut conn = self.connection()?;
        let (count, remaining): (u64, i64) = Self::bounded(
            redis::pipe()
                .atomic()
                .incr(key, 1)
                .cmd("EXPIRE")
                .arg(key)
                .arg(ttl.as_secs().max(1))
                .arg("NX")
                .ignore()
                .ttl(key)
                .query_async(&mut conn),
        )
        .await?;
        Ok((count, Duration::from_secs(remaining.max(1) as u64)))
    }
}
