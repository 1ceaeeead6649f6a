//! Cross-instance invalidation: writers delete the Redis keys and publish the keys on
//! `{prefix}cache:invalidate`; every gateway evicts its in-process entries. Without
//! Redis (single-node mode) the writer's own eviction is the whole of it.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::keys::Key;
use super::redis_tier::{self, RedisTier};
use super::Cache;

/// The message on the invalidation channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Invalidation {
    /// What changed.
    pub keys: Vec<Key>,
}

/// The channel name under `prefix`.
pub fn channel(prefix: &str) -> String {
    format!("{prefix}cache:invalidate")
}

/// A loader that read Postgres just before a change committed may write the old
/// value back to Redis after our delete; a second delete this much later removes it.
const SECOND_DELETE_AFTER: Duration = Duration::from_millis(500);

/// Publishes invalidations. Cheap to clone.
#[derive(Clone)]
pub struct Invalidator {
    redis: Option<RedisTier>,
    prefix: String,
    local: Option<Cache>,
}

impl Invalidator {
    /// An invalidator writing through `redis` under `prefix` (`None` in single-node
    /// mode); `local` is this process's cache, evicted at once without waiting for
    /// the round trip.
    pub fn new(redis: Option<RedisTier>, prefix: impl Into<String>, local: Option<Cache>) -> Invalidator {
        Invalidator { redis, prefix: prefix.into(), local }
    }

    /// Call after the change has committed: evicts locally, deletes the Redis keys and
    /// publishes them (and does both again shortly after, see
    /// `SECOND_DELETE_AFTER`).
    ///
    /// # Errors
    /// When Redis is unreachable; the change itself stands, and other instances fall
    /// back to their TTLs, so callers log this rather than fail the request.
    pub async fn invalidate(&self, keys: Vec<Key>) -> Result<(), redis_tier::Error> {
        if let Some(local) = &self.local {
            local.evict_local(&keys).await;
        }
        self.delete_and_publish(&keys).await?;
        let again = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(SECOND_DELETE_AFTER).await;
            // A load that read Postgres before the change may also have filled the
            // local tier after our eviction (single-node mode has no other copy).
            if let (None, Some(local)) = (&again.redis, &again.local) {
                local.evict_local(&keys).await;
            }
            if let Err(e) = again.delete_and_publish(&keys).await {
                tracing::warn!(error = %e, "second cache invalidation failed");
            }
        });
        Ok(())
    }

    async fn delete_and_publish(&self, keys: &[Key]) -> Result<(), redis_tier::Error> {
        let Some(redis) = &self.redis else { return Ok(()) };
        let redis_keys: Vec<String> = keys.iter().map(|k| k.redis_key(&self.prefix)).collect();
        redis.del(&redis_keys).await?;
        let message = serde_json::to_string(&Invalidation { keys: keys.to_vec() }).unwrap_or_default();
        redis.publish(&channel(&self.prefix), &message).await
    }
}

/// Listens on the invalidation channel and evicts `cache`'s local entries until
/// `shutdown` resolves. Reconnects by itself; after every (re)subscription it clears
/// the whole local tier, since invalidations sent while disconnected were missed.
/// `on_subscribed(true/false)` reports the subscription state (for a gauge).
pub async fn run_subscriber(
    redis: RedisTier,
    prefix: String,
    cache: Cache,
    on_subscribed: impl Fn(bool) + Send + Sync,
    shutdown: impl Future<Output = ()>,
) {
    let channel = channel(&prefix);
    let listen = async {
        let mut delay = Duration::from_millis(100);
        loop {
            match redis.client().get_async_pubsub().await {
                Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                    Ok(()) => {
                        cache.clear_local();
                        on_subscribed(true);
                        delay = Duration::from_millis(100);
                        let mut messages = pubsub.on_message();
                        while let Some(msg) = messages.next().await {
                            match msg.get_payload::<String>().map(|p| serde_json::from_str::<Invalidation>(&p)) {
                                Ok(Ok(inv)) => cache.evict_local(&inv.keys).await,
                                _ => tracing::warn!("unreadable cache invalidation message ignored"),
                            }
                        }
                        on_subscribed(false);
                        tracing::warn!("cache invalidation subscription lost; reconnecting");
                    }
                    Err(e) => tracing::warn!(error = %e, "subscribing to cache invalidations failed"),
                },
                Err(e) => tracing::debug!(error = %e, "redis pub/sub unavailable"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    };
    tokio::select! {
        () = listen => {}
        () = shutdown => {}
    }
}
