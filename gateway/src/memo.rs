//! The decision memo: for a warm (token, route, tenant facts), the access
//! decision and the ready-made identity header block, found with one hash lookup
//! instead of a token check and three to five cache lookups.
//!
//! Correctness first. An entry is used only while
//! - its token is still accepted (its expiry is checked on every hit),
//! - no cache entry it was derived from has been evicted since
//!   ([`shared::cache::Stamp`]: role changes, removals, tenant changes, logout-all,
//!   slug and domain changes, on this instance or announced by another), and
//! - its route is the one in force (the key holds the route's id, which a reload
//!   renews, and which each of a route's rules has its own of: the key has no
//!   method or path, so two policies of one route must never share it), and
//! - it is younger than [`TTL`], so it never outlives the cache entries behind it
//!   by more than that when an invalidation could not be delivered.
//!
//! The key is every input of the decision, byte for byte: the route, where the
//! token came from, the token, the Host, the path's tenant slug, the tenant
//! headers and the remembered tenant. Only allowed decisions are kept, so only
//! tokens that verified are ever stored.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use edge::credentials::Presented;
use http::{HeaderMap, HeaderName, HeaderValue};
use quick_cache::sync::Cache;
use shared::domain::Slug;

/// How long an entry lives at most.
pub const TTL: Duration = Duration::from_secs(10);

/// Inputs longer than this in all are not remembered (a token is ~300-600
/// bytes, a host at most 254): the memo's memory is bounded by its entry count
/// times this, whatever a client sends.
pub const MAX_KEY: usize = 2048;

/// Headers written on every request an entry serves: shared, never copied.
pub type HeaderBlock = Arc<[(HeaderName, HeaderValue)]>;

/// The inputs of one decision.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inputs<'a> {
    /// [`edge::routes::Route::id`].
    pub route: u64,
    /// The access token, where it came from.
    pub token: Option<&'a Presented<'a>>,
    /// Host, without port, lowercase.
    pub host: &'a str,
    /// A `/t/{slug}/` prefix's slug.
    pub path_slug: Option<&'a Slug>,
    /// `X-Tenant-Id`, as sent.
    pub header_tenant_id: Option<&'a str>,
    /// `X-Tenant-Slug`, as sent.
    pub header_tenant_slug: Option<&'a str>,
    /// The portal's tenant cookie.
    pub remembered_tenant: Option<&'a str>,
}

impl Inputs<'_> {
    /// Bytes of text in all.
    fn len(&self) -> usize {
        let text = |t: Option<&str>| t.map_or(0, str::len);
        text(self.token.map(|p| p.token))
            + self.host.len()
            + text(self.path_slug.map(Slug::as_str))
            + text(self.header_tenant_id)
            + text(self.header_tenant_slug)
            + text(self.remembered_tenant)
    }
}

/// What is remembered.
struct Remembered<T> {
    /// The decision's value (for the proxy: the identity, header block included,
    /// and the [`shared::cache::Stamp`] it was derived at).
    value: T,
    /// The last Unix second it may be used: its token's last accepted second,
    /// or [`TTL`] after it was made if that comes first.
    until: i64,
}

/// The memo: a `quick_cache` (CLOCK-Pro eviction, a read lock per shard, no
/// bookkeeping on a hit: a warm request's lookup is a hash and a compare). Entries
/// carry their own deadline. Cheap to share.
pub struct DecisionMemo<T> {
    entries: Cache<Box<[u8]>, Arc<Remembered<T>>>,
}

/// A looked-up key, kept for the insert after a miss.
pub struct Key(Box<[u8]>);

thread_local! {
    /// The key of the lookup in progress: a warm request builds it here, without
    /// allocating.
    static KEY: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
}

impl<T: Clone + Send + Sync + 'static> DecisionMemo<T> {
    /// A memo of at most `capacity` entries.
    pub fn new(capacity: u64) -> DecisionMemo<T> {
        DecisionMemo { entries: Cache::new(usize::try_from(capacity).unwrap_or(usize::MAX)) }
    }

    /// The remembered decision for `inputs` if there is one whose token is still
    /// accepted and that `current` says is current (the proxy asks the cache's
    /// generations); else `Err` with the key to [`insert`](Self::insert) under once
    /// decided (`None` for inputs too long to remember, see [`MAX_KEY`]).
    ///
    /// # Errors
    /// The key, on a miss.
    pub fn get(&self, inputs: &Inputs<'_>, current: impl FnOnce(&T) -> bool) -> Result<T, Option<Key>> {
        if inputs.len() > MAX_KEY {
            return Err(None);
        }
        KEY.with_borrow_mut(|key| {
            encode(inputs, key);
            match self.entries.get(key.as_slice()) {
                Some(hit) if hit.until >= unix_now() && current(&hit.value) => Ok(hit.value.clone()),
                Some(_) => {
                    self.entries.remove(key.as_slice());
                    Err(Some(Key(key.as_slice().into())))
                }
                None => Err(Some(Key(key.as_slice().into()))),
            }
        })
    }

    /// Remembers `value` under `key` until `accepted_until` (its token's last
    /// accepted Unix second) or for [`TTL`], whichever ends first.
    pub fn insert(&self, key: Key, value: T, accepted_until: i64) {
        // Whole seconds: the entry is used for at most TTL, at least TTL less one second.
        let until = accepted_until.min(unix_now().saturating_add(TTL.as_secs() as i64 - 1));
        self.entries.insert(key.0, Arc::new(Remembered { value, until }));
    }

    /// Forgets everything (not needed for correctness: for tests and tools).
    pub fn clear(&self) {
        self.entries.clear();
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Writes `block` on the upstream request's plain header map (see
/// `proxy::forward`): every identity header was stripped before, so each is
/// appended without a search for an old value, and each value is a reference
/// count on bytes built once.
pub fn write(headers: &mut HeaderMap, block: &[(HeaderName, HeaderValue)]) {
    for (name, value) in block {
        headers.append(name.clone(), value.clone());
    }
}

/// Every input, each field length-prefixed (or marked absent) so that no two
/// different inputs encode alike.
fn encode(inputs: &Inputs<'_>, key: &mut Vec<u8>) {
    key.clear();
    key.extend_from_slice(&inputs.route.to_le_bytes());
    let (token, source) = match inputs.token {
        Some(p) => (
            Some(p.token),
            1 | (u8::from(p.in_header) << 1) | (u8::from(p.in_cookie) << 2) | (u8::from(p.in_api_key) << 3),
        ),
        None => (None, 0),
    };
    key.push(source);
    for field in [
        token,
        Some(inputs.host),
        inputs.path_slug.map(Slug::as_str),
        inputs.header_tenant_id,
        inputs.header_tenant_slug,
        inputs.remembered_tenant,
    ] {
        match field {
            None => key.push(0),
            Some(text) => {
                key.push(1);
                key.extend_from_slice(&(text.len() as u64).to_le_bytes());
                key.extend_from_slice(text.as_bytes());
            }
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(inputs: &Inputs<'_>) -> Vec<u8> {
        let mut key = Vec::new();
        encode(inputs, &mut key);
        key
    }

    #[test]
    fn different_inputs_never_share_a_key() {
        let header = Presented { token: "a.b.c", in_header: true, in_cookie: false, in_api_key: false };
        let cookie = Presented { token: "a.b.c", in_header: false, in_cookie: true, in_api_key: false };
        let slug = Slug::parse("acme").unwrap();
        let base = Inputs { route: 7, token: Some(&header), host: "app.test", ..Inputs::default() };
        let variants = [
            base,
            Inputs { route: 8, ..base },
            Inputs { token: Some(&cookie), ..base },
            Inputs { token: None, ..base },
            Inputs { host: "app.tes", header_tenant_id: Some("t"), ..base },
            Inputs { path_slug: Some(&slug), ..base },
            Inputs { header_tenant_slug: Some("acme"), ..base },
            Inputs { remembered_tenant: Some("acme"), ..base },
            Inputs { header_tenant_id: Some(""), ..base },
        ];
        let keys: std::collections::HashSet<Vec<u8>> = variants.iter().map(bytes).collect();
        assert_eq!(keys.len(), variants.len());
    }

    #[test]
    fn a_hit_needs_an_accepted_token_and_a_current_value() {
        let memo: DecisionMemo<u32> = DecisionMemo::new(100);
        let token = Presented { token: "a.b.c", in_header: true, in_cookie: false, in_api_key: false };
        let inputs = Inputs { route: 1, token: Some(&token), host: "h", ..Inputs::default() };
        let key = memo.get(&inputs, |_| true).unwrap_err().unwrap();
        memo.insert(key, 5, unix_now() + 60);
        assert_eq!(memo.get(&inputs, |_| true).ok(), Some(5));
        assert!(memo.get(&Inputs { route: 2, ..inputs }, |_| true).is_err(), "another route");
        // Not current: a miss, and the entry is gone.
        assert!(memo.get(&inputs, |v| *v != 5).is_err());
        assert!(memo.get(&inputs, |_| true).is_err());
        // A token no longer accepted is a miss even before the entry expires.
        let key = memo.get(&inputs, |_| true).unwrap_err().unwrap();
        memo.insert(key, 6, unix_now() - 1);
        assert!(memo.get(&inputs, |_| true).is_err());
        // Inputs too long to remember are never looked up.
        let host = "h".repeat(MAX_KEY);
        assert!(memo.get(&Inputs { host: &host, ..inputs }, |_| true).unwrap_err().is_none());
    }
}
