//! The two-tier cache behind every proxied request: moka in process (L1), Redis
//! shared between gateways (L2), Postgres behind both.
//!
//! A warm lookup is one in-memory hash probe. A cold one asks Redis, then Postgres,
//! writes Redis back, and fills L1; concurrent misses on one key share that single
//! load (moka's `try_get_with`). Facts that do not exist (not a member, unknown slug)
//! are cached too, briefly. If Redis is down the tier is skipped; if Postgres is down
//! cold lookups fail with [`Error::Unavailable`] and warm ones keep working. Without
//! Redis at all (single-node mode) there is no L2: L1 is filled from Postgres and
//! evicted by this process's own invalidations.

mod generations;
mod invalidation;
mod keys;
mod redis_tier;

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache as Moka;
use moka::Expiry;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

pub use generations::{Begun, Principal, Stamp};
pub use invalidation::{channel, run_subscriber, Invalidation, Invalidator};
pub use keys::Key;

pub use redis_tier::{Error as RedisError, RedisTier};

use crate::db;
use axum::http::HeaderValue;

use crate::domain::{ApiKeyId, Email, Role, Slug, TenantId, UserId};

/// Errors from a lookup.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The fact was not cached and Postgres could not be asked: fail closed.
    #[error("cache miss and the database is unavailable: {0}")]
    Unavailable(String),
}

/// What the proxy needs to know about a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedUser {
    /// The id.
    pub id: UserId,
    /// Current address.
    pub email: Email,
    /// Whether it is verified.
    pub email_verified: bool,
    /// Access tokens with another version are revoked.
    pub token_version: i32,
    /// `X-User-Id` and `X-User-Email`, built on first use.
    #[serde(skip)]
    pub headers: Derived<Option<[HeaderValue; 2]>>,
}

impl CachedUser {
    /// The values of `X-User-Id` and `X-User-Email`, built once per cached entry
    /// and shared by every request that finds it (a clone is a reference count);
    /// `None` only if one could not be a header value (a parsed email can).
    pub fn header_values(&self) -> Option<&[HeaderValue; 2]> {
        self.headers.get_or_init(|| header_pair(&self.id.to_string(), self.email.as_str())).as_ref()
    }
}

/// What the proxy needs to know about a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedTenant {
    /// The id.
    pub id: TenantId,
    /// Slug.
    pub slug: Slug,
    /// Display name.
    pub name: String,
    /// Whether its traffic is allowed.
    pub is_active: bool,
    /// `X-Tenant-Id` and `X-Tenant-Slug`, built on first use.
    #[serde(skip)]
    pub headers: Derived<Option<[HeaderValue; 2]>>,
}

impl CachedTenant {
    /// The values of `X-Tenant-Id` and `X-Tenant-Slug`, built once per cached
    /// entry (see [`CachedUser::header_values`]).
    pub fn header_values(&self) -> Option<&[HeaderValue; 2]> {
        self.headers.get_or_init(|| header_pair(&self.id.to_string(), self.slug.as_str())).as_ref()
    }
}

/// What the proxy needs to check a presented API key: only live (unrevoked)
/// keys are cached; expiry is checked on every use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedApiKey {
    /// The id (`X-Api-Key-Id`).
    pub id: ApiKeyId,
    /// The public id it was found by.
    pub public_id: String,
    /// The one tenant it acts in.
    pub tenant_id: TenantId,
    /// Its role there.
    pub role: Role,
    /// SHA-256 of its secret.
    pub secret_hash: [u8; 32],
    /// Unix second from which it no longer works.
    pub expires_at: Option<i64>,
    /// `X-Api-Key-Id`'s value, built on first use.
    #[serde(skip)]
    pub header: Derived<Option<HeaderValue>>,
    /// The last Unix second this process reported a use of it (see
    /// [`CachedApiKey::report_use`]).
    #[serde(skip)]
    pub reported: Reported,
}

impl CachedApiKey {
    /// Whether it works at Unix second `now`.
    pub fn is_live_at(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }

    /// The value of `X-Api-Key-Id`.
    pub fn header_value(&self) -> Option<&HeaderValue> {
        self.header.get_or_init(|| HeaderValue::from_str(&self.id.to_string()).ok()).as_ref()
    }

    /// Whether a use at Unix second `now` should be reported: the first one this
    /// entry sees, then at most one per `every` seconds (one atomic load on the
    /// way out).
    pub fn report_use(&self, now: i64, every: i64) -> bool {
        let last = self.reported.0.load(std::sync::atomic::Ordering::Relaxed);
        now - last >= every
            && self
                .reported
                .0
                .compare_exchange(last, now, std::sync::atomic::Ordering::Relaxed, std::sync::atomic::Ordering::Relaxed)
                .is_ok()
    }
}

/// When a cache entry last reported a use; compares equal whatever it holds.
#[derive(Default)]
pub struct Reported(std::sync::atomic::AtomicI64);

impl Clone for Reported {
    fn clone(&self) -> Reported {
        Reported(std::sync::atomic::AtomicI64::new(self.0.load(std::sync::atomic::Ordering::Relaxed)))
    }
}

impl PartialEq for Reported {
    fn eq(&self, _: &Reported) -> bool {
        true
    }
}

impl Eq for Reported {}

impl std::fmt::Debug for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reported")
    }
}

fn header_pair(a: &str, b: &str) -> Option<[HeaderValue; 2]> {
    Some([HeaderValue::from_str(a).ok()?, HeaderValue::from_str(b).ok()?])
}

/// A value derived from a cache entry on first use: never serialized, and equal
/// whatever its state, so entries compare by what they describe.
#[derive(Clone, Default)]
pub struct Derived<T>(std::sync::OnceLock<T>);

impl<T> Derived<T> {
    /// The value, computing it with `make` the first time.
    pub fn get_or_init(&self, make: impl FnOnce() -> T) -> &T {
        self.0.get_or_init(make)
    }
}

impl<T> PartialEq for Derived<T> {
    fn eq(&self, _: &Derived<T>) -> bool {
        true
    }
}

impl<T> Eq for Derived<T> {}

impl<T> std::fmt::Debug for Derived<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() { "Derived(built)" } else { "Derived(not yet)" })
    }
}

/// Time-to-live of each kind of entry, in both tiers (L1 never outlives L2).
#[derive(Debug, Clone)]
pub struct Ttls {
    /// `user:{id}`.
    pub user: Duration,
    /// `tenant:{id}`, and the slug and domain lookups.
    pub tenant: Duration,
    /// `user:{id}:tenant:{id}:role`.
    pub role: Duration,
    /// Facts that do not exist.
    pub negative: Duration,
}

// API keys live as long as roles: both are grants, and both are evicted
// everywhere when revoked.

impl Default for Ttls {
    /// Our design's TTLs: user 5 min, tenant 1 h, role 10 min; negatives 30 s.
    fn default() -> Ttls {
        Ttls {
            user: Duration::from_secs(300),
            tenant: Duration::from_secs(3600),
            role: Duration::from_secs(600),
            negative: Duration::from_secs(30),
        }
    }
}

/// Sizing of the in-process tier.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// TTLs.
    pub ttls: Ttls,
    /// Entries per cache (users, tenants, roles, slugs, domains) at most.
    pub max_entries: u64,
    /// Prefix of every Redis key and channel.
    pub prefix: String,
}

/// The secondary ways to find a tenant.
#[derive(Clone, Copy)]
enum TenantIndex {
    Slug,
    Domain,
}

/// Gives absent values the negative TTL.
struct TtlPolicy {
    positive: Duration,
    negative: Duration,
}

impl<K, V> Expiry<K, Option<V>> for TtlPolicy {
    fn expire_after_create(&self, _: &K, value: &Option<V>, _: Instant) -> Option<Duration> {
        Some(if value.is_some() { self.positive } else { self.negative })
    }
}

type Tier<K, V> = Moka<K, Option<Arc<V>>>;

struct Inner {
    users: Tier<UserId, CachedUser>,
    tenants: Tier<TenantId, CachedTenant>,
    roles: Tier<(UserId, TenantId), Role>,
    slugs: Tier<String, TenantId>,
    domains: Tier<String, TenantId>,
    api_keys: Tier<String, CachedApiKey>,
    /// The shared tier; `None` in single-node mode.
    redis: Option<RedisTier>,
    pool: PgPool,
    config: CacheConfig,
    lookups: IntCounterVec,
    /// `lookups{cache, tier="l1", result="hit"}` per cache, in [`CACHE_NAMES`]
    /// order, resolved once: the warm path counts without hashing label values.
    l1_hits: [IntCounter; CACHE_NAMES.len()],
    /// Tells long-lived holders of a decision (open streams) what changed.
    evicted: tokio::sync::broadcast::Sender<Evicted>,
    /// Tells short-lived derived values (the decision memo) whether they are current.
    generations: generations::Generations,
}

/// What this process's tier just forgot, as [`Cache::evictions`] reports it.
#[derive(Debug, Clone)]
pub enum Evicted {
    /// These keys changed.
    Keys(Arc<[Key]>),
    /// Anything may have changed (the tier was cleared, or a listener fell
    /// behind).
    All,
}

impl Evicted {
    /// Whether this may concern `user` (as a user, or through `tenant`).
    pub fn concerns(&self, user: UserId, tenant: Option<TenantId>) -> bool {
        match self {
            Evicted::All => true,
            Evicted::Keys(keys) => keys.iter().any(|key| match key {
                Key::User { user: u } => *u == user,
                Key::Role { user: u, tenant: t } => *u == user && Some(*t) == tenant,
                Key::Tenant { tenant: t } => Some(*t) == tenant,
                Key::Slug { .. } | Key::Domain { .. } | Key::ApiKey { .. } => false,
            }),
        }
    }
}

impl Evicted {
    /// Whether this may concern the API key `public_id` (as itself, or through
    /// its tenant).
    pub fn concerns_key(&self, public_id: &str, tenant: TenantId) -> bool {
        match self {
            Evicted::All => true,
            Evicted::Keys(keys) => keys.iter().any(|key| match key {
                Key::ApiKey { public_id: p } => p == public_id,
                Key::Tenant { tenant: t } => *t == tenant,
                _ => false,
            }),
        }
    }
}

/// The `cache` label values.
const CACHE_NAMES: [&str; 6] = ["user", "tenant", "role", "slug", "domain", "api_key"];

/// The two-tier cache. Cheap to clone.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

fn tier<K, V>(max: u64, positive: Duration, negative: Duration) -> Tier<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    Moka::builder().max_capacity(max).expire_after(TtlPolicy { positive, negative }).build()
}

impl Cache {
    /// Builds the cache over `redis` (`None`: no shared tier, single-node mode) and
    /// registers `tenantgate_cache_lookups_total{cache, tier, result}` in `registry`.
    ///
    /// # Errors
    /// When the metric is already registered.
    pub fn new(
        pool: PgPool,
        redis: Option<RedisTier>,
        config: CacheConfig,
        registry: &Registry,
    ) -> Result<Cache, prometheus::Error> {
        let lookups = IntCounterVec::new(
            Opts::new(
                "tenantgate_cache_lookups_total",
                "Cache lookups by cache (user, tenant, role, slug, domain, api_key), tier (l1, l2, db) and result.",
            ),
            &["cache", "tier", "result"],
        )?;
        registry.register(Box::new(lookups.clone()))?;
        let l1_hits = CACHE_NAMES.map(|cache| lookups.with_label_values(&[cache, "l1", "hit"]));
        let t = &config.ttls;
        let n = config.max_entries;
        Ok(Cache {
            inner: Arc::new(Inner {
                users: tier(n, t.user, t.negative),
                tenants: tier(n, t.tenant, t.negative),
                roles: tier(n, t.role, t.negative),
                slugs: tier(n, t.tenant, t.negative),
                domains: tier(n, t.tenant, t.negative),
                api_keys: tier(n, t.role, t.negative),
                redis,
                pool,
                config,
                lookups,
                l1_hits,
                evicted: tokio::sync::broadcast::channel(1024).0,
                generations: generations::Generations::new(),
            }),
        })
    }

    /// The Redis tier, `None` in single-node mode.
    pub fn redis(&self) -> Option<&RedisTier> {
        self.inner.redis.as_ref()
    }

    /// The Redis key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.config.prefix
    }

    /// The user, or `None` if there is no such user.
    ///
    /// # Errors
    /// [`Error::Unavailable`] on a miss while Postgres is down.
    pub async fn user(&self, id: UserId) -> Result<Option<Arc<CachedUser>>, Error> {
        let pool = &self.inner.pool;
        self.lookup(&self.inner.users, id, Key::User { user: id }, self.inner.config.ttls.user, || async move {
            Ok(db::users::find_by_id(pool, id).await?.map(|u| CachedUser {
                id: u.id,
                email: u.email,
                email_verified: u.email_verified_at.is_some(),
                token_version: u.token_version,
                headers: Derived::default(),
            }))
        })
        .await
    }

    /// The tenant, or `None` if there is no such tenant.
    ///
    /// # Errors
    /// [`Error::Unavailable`] on a miss while Postgres is down.
    pub async fn tenant(&self, id: TenantId) -> Result<Option<Arc<CachedTenant>>, Error> {
        let pool = &self.inner.pool;
        self.lookup(&self.inner.tenants, id, Key::Tenant { tenant: id }, self.inner.config.ttls.tenant, || async move {
            Ok(db::tenants::find_by_id(pool, id).await?.map(|t| CachedTenant {
                id: t.id,
                slug: t.slug,
                name: t.name,
                is_active: t.is_active,
                headers: Derived::default(),
            }))
        })
        .await
    }

    /// The tenant with this slug.
    ///
    /// # Errors
    /// [`Error::Unavailable`] on a miss while Postgres is down.
    pub async fn tenant_by_slug(&self, slug: &str) -> Result<Option<Arc<CachedTenant>>, Error> {
        self.tenant_by(TenantIndex::Slug, slug).await
    }

    /// The tenant with this custom domain.
    ///
    /// # Errors
    /// [`Error::Unavailable`] on a miss while Postgres is down.
    pub async fn tenant_by_domain(&self, domain: &str) -> Result<Option<Arc<CachedTenant>>, Error> {
        self.tenant_by(TenantIndex::Domain, domain).await
    }

    /// Slug or domain -> tenant id (cached on its own) -> tenant.
    async fn tenant_by(&self, index: TenantIndex, value: &str) -> Result<Option<Arc<CachedTenant>>, Error> {
        let value = value.to_ascii_lowercase();
        let pool = &self.inner.pool;
        let (tier, key) = match index {
            TenantIndex::Slug => (&self.inner.slugs, Key::Slug { slug: value.clone() }),
            TenantIndex::Domain => (&self.inner.domains, Key::Domain { domain: value.clone() }),
        };
        let lookup_value = value.clone();
        let id = self
            .lookup(tier, value, key, self.inner.config.ttls.tenant, || async move {
                match index {
                    TenantIndex::Slug => db::tenants::find_id_by_slug(pool, &lookup_value).await,
                    TenantIndex::Domain => db::tenants::find_id_by_domain(pool, &lookup_value).await,
                }
            })
            .await?;
        match id {
            Some(id) => self.tenant(*id).await,
            None => Ok(None),
        }
    }

    /// The user's role in the tenant, or `None` when not a member.
    ///
    /// # Errors
    /// [`Error::Unavailable`] on a miss while Postgres is down.
    pub async fn role(&self, user: UserId, tenant: TenantId) -> Result<Option<Role>, Error> {
        let pool = &self.inner.pool;
        let key = Key::Role { user, tenant };
        let role = self
            .lookup(&self.inner.roles, (user, tenant), key, self.inner.config.ttls.role, || async move {
                db::memberships::find_role(pool, user, tenant).await
            })
            .await?;
        Ok(role.map(|r| *r))
    }

    /// The live (unrevoked) API key with this public id, or `None`. Expiry is
    /// the caller's to check ([`CachedApiKey::is_live_at`]).
    ///
    /// # Errors
    /// [`Error::Unavailable`] on a miss while Postgres is down.
    pub async fn api_key(&self, public_id: &str) -> Result<Option<Arc<CachedApiKey>>, Error> {
        let pool = &self.inner.pool;
        let key = Key::ApiKey { public_id: public_id.to_owned() };
        self.lookup(&self.inner.api_keys, public_id.to_owned(), key, self.inner.config.ttls.role, || async move {
            let Some(row) = db::api_keys::find_credential(pool, public_id).await? else { return Ok(None) };
            let secret_hash = <[u8; 32]>::try_from(row.secret_hash.as_slice())
                .map_err(|_| db::Error::Corrupt(format!("api key {}: secret hash is not 32 bytes", row.id)))?;
            Ok(Some(CachedApiKey {
                id: row.id,
                public_id: public_id.to_owned(),
                tenant_id: row.tenant_id,
                role: row.role,
                secret_hash,
                expires_at: row.expires_at.map(|at| at.timestamp()),
                header: Derived::default(),
                reported: Reported::default(),
            }))
        })
        .await
    }

    /// Every later eviction from this process's tier. A receiver that falls more
    /// than 1024 evictions behind gets `Lagged`: treat it as [`Evicted::All`].
    pub fn evictions(&self) -> tokio::sync::broadcast::Receiver<Evicted> {
        self.inner.evicted.subscribe()
    }

    /// Evicts these keys from this process's tier, then tells
    /// [`evictions`](Self::evictions) listeners.
    pub async fn evict_local(&self, keys: &[Key]) {
        for key in keys {
            match key {
                Key::User { user } => self.inner.users.invalidate(user).await,
                Key::Tenant { tenant } => self.inner.tenants.invalidate(tenant).await,
                Key::Role { user, tenant } => self.inner.roles.invalidate(&(*user, *tenant)).await,
                Key::Slug { slug } => self.inner.slugs.invalidate(slug).await,
                Key::Domain { domain } => self.inner.domains.invalidate(domain).await,
                Key::ApiKey { public_id } => self.inner.api_keys.invalidate(public_id).await,
            }
        }
        self.inner.generations.evicted(keys);
        // No listener is fine: nothing long-lived is open.
        let _ = self.inner.evicted.send(Evicted::Keys(keys.into()));
    }

    /// Empties this process's tier.
    pub fn clear_local(&self) {
        self.inner.users.invalidate_all();
        self.inner.tenants.invalidate_all();
        self.inner.roles.invalidate_all();
        self.inner.slugs.invalidate_all();
        self.inner.domains.invalidate_all();
        self.inner.api_keys.invalidate_all();
        self.inner.generations.flushed();
        let _ = self.inner.evicted.send(Evicted::All);
    }

    /// Call before the lookups a derived value (a memoized decision) is made of;
    /// then [`Cache::stamp`] after them. See [`Stamp`].
    pub fn begin(&self) -> Begun {
        self.inner.generations.begin()
    }

    /// The stamp of a value derived since `begun` from the entries of `who` (a
    /// user or an API key) and `tenant` (and any slug or domain mapping), or
    /// `None` when an eviction raced the lookups: such a value must not be kept.
    pub fn stamp(&self, begun: Begun, who: Option<Principal<'_>>, tenant: Option<TenantId>) -> Option<Stamp> {
        self.inner.generations.stamp(begun, who, tenant)
    }

    /// Whether no entry `stamp` vouches for has been evicted since (on this
    /// instance: evictions from others arrive by [`run_subscriber`]).
    pub fn is_current(&self, stamp: &Stamp) -> bool {
        self.inner.generations.is_current(stamp)
    }

    fn count(&self, cache: &str, tier: &str, result: &str) {
        self.inner.lookups.with_label_values(&[cache, tier, result]).inc();
    }

    /// L1, else (one load per key at a time) L2, else Postgres via `load`. The
    /// miss path's state lives on the heap, so the futures of the proxy's hit path
    /// stay small (they are moved whole into each boxed hook future).
    async fn lookup<K, V, Load, Loading>(
        &self,
        l1: &Tier<K, V>,
        l1_key: K,
        key: Key,
        ttl: Duration,
        load: Load,
    ) -> Result<Option<Arc<V>>, Error>
    where
        K: Hash + Eq + Send + Sync + 'static,
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        Load: FnOnce() -> Loading,
        Loading: Future<Output = Result<Option<V>, db::Error>>,
    {
        let cache = key.cache_name();
        if let Some(hit) = l1.get(&l1_key).await {
            if let Some(counter) = CACHE_NAMES.iter().position(|c| *c == cache).map(|i| &self.inner.l1_hits[i]) {
                counter.inc();
            }
            return Ok(hit);
        }
        self.count(cache, "l1", "miss");
        Box::pin(l1.try_get_with(l1_key, self.load_shared_or_db(key, ttl, load()))).await.map_err(|e| (*e).clone())
    }

    async fn load_shared_or_db<V>(
        &self,
        key: Key,
        ttl: Duration,
        load: impl Future<Output = Result<Option<V>, db::Error>>,
    ) -> Result<Option<Arc<V>>, Error>
    where
        V: Serialize + DeserializeOwned,
    {
        let cache = key.cache_name();
        let redis_key = key.redis_key(&self.inner.config.prefix);
        if let Some(redis) = &self.inner.redis {
            match redis.get(&redis_key).await {
                Ok(Some(json)) => match serde_json::from_str::<Option<V>>(&json) {
                    Ok(value) => {
                        self.count(cache, "l2", "hit");
                        return Ok(value.map(Arc::new));
                    }
                    Err(_) => self.count(cache, "l2", "error"),
                },
                Ok(None) => self.count(cache, "l2", "miss"),
                Err(_) => self.count(cache, "l2", "error"),
            }
        }
        let value = match load.await {
            Ok(value) => value,
            Err(e) => {
                self.count(cache, "db", "error");
                tracing::warn!(error = %crate::telemetry::error_chain(&e), cache, "cache load failed");
                return Err(Error::Unavailable(e.to_string()));
            }
        };
        self.count(cache, "db", if value.is_some() { "hit" } else { "miss" });
        let ttl = if value.is_some() { ttl } else { self.inner.config.ttls.negative };
        if let (Some(redis), Ok(json)) = (&self.inner.redis, serde_json::to_string(&value)) {
            // Best effort: a Redis outage must not fail the request.
            let _ = redis.set_ex(&redis_key, &json, ttl).await;
        }
        Ok(value.map(Arc::new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> CachedUser {
        CachedUser {
            id: UserId::new(),
            email: Email::parse("Ann@Example.test").unwrap(),
            email_verified: true,
            token_version: 1,
            headers: Derived::default(),
        }
    }

    #[test]
    fn header_values_are_built_once_and_never_stored() {
        let u = user();
        let fresh = u.clone();
        let [id, email] = u.header_values().unwrap().clone();
        assert_eq!((id.to_str().unwrap(), email.to_str().unwrap()), (u.id.to_string().as_str(), "Ann@example.test"));
        // The same Bytes the second time: built once per entry.
        assert_eq!(u.header_values().unwrap()[1].as_bytes().as_ptr(), email.as_bytes().as_ptr());
        assert_eq!(u, fresh, "entries compare by what they describe");
        let json = serde_json::to_string(&u).unwrap();
        assert!(!json.contains("headers"), "{json}");
        let back: CachedUser = serde_json::from_str(&json).unwrap();
        assert_eq!(back, u);
    }
}
