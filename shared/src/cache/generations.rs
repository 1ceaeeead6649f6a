//! Generation counters that let a value derived from cache entries (the proxy's
//! decision memo) know it is still current, in a few atomic loads and without
//! knowing which entries it came from.
//!
//! Every eviction bumps `evictions`, then the slot of each user and tenant it
//! concerns (`Role` bumps its user's slot), or `flush` when it cannot say whom it
//! concerns (slug and domain mappings, a cleared tier). A value derived from the
//! cache records `evictions` before its lookups ([`Generations::begin`]) and the
//! slots after them ([`Generations::stamp`]); if `evictions` moved in between,
//! an eviction raced the lookups and no stamp is given. The proof that a stamp
//! never vouches for data an eviction removed:
//!
//! - the eviction order is: L1 entries removed, `evictions` bumped, slot bumped;
//! - a lookup that read a removed entry read it before the removal, so after the
//!   deriver's `begin`; if the `evictions` bump came before the deriver's check,
//!   the check fails; if after, the slot bump comes after the stamp read the slot,
//!   so the stamp holds the old slot value and is not current once the eviction
//!   has finished.
//!
//! Slots are shared by hash (4096 of them): a collision only costs an extra miss.

use std::sync::atomic::{AtomicU64, Ordering};

use uuid::Uuid;

use super::keys::Key;
use crate::domain::{TenantId, UserId};

const SLOTS: usize = 4096;

/// The counters. One per cache.
pub(super) struct Generations {
    evictions: AtomicU64,
    flush: AtomicU64,
    slots: Box<[AtomicU64]>,
}

/// The generations a derived value was made at, for the user and tenant it was
/// derived for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    flush: u64,
    user: Option<(u16, u64)>,
    tenant: Option<(u16, u64)>,
}

/// Taken before the lookups a value is derived from; see [`Generations`].
#[derive(Debug, Clone, Copy)]
pub struct Begun(u64);

fn slot(id: &Uuid) -> u16 {
    // Uuid v4/v7 low bits are random.
    (id.as_u128() as u16) & (SLOTS as u16 - 1)
}

/// The slot of an API key, by its public id (random base62: its bytes are
/// spread enough for a sum).
fn key_slot(public_id: &str) -> u16 {
    let sum = public_id.bytes().fold(0u32, |acc, b| acc.wrapping_mul(31).wrapping_add(u32::from(b)));
    (sum as u16) & (SLOTS as u16 - 1)
}

/// Whose entries a derived value was made from: a user's, or an API key's.
#[derive(Debug, Clone, Copy)]
pub enum Principal<'a> {
    /// A user (their `User` and `Role` entries).
    User(UserId),
    /// An API key (its `ApiKey` entry), by public id.
    ApiKey(&'a str),
}

impl Generations {
    pub(super) fn new() -> Generations {
        Generations {
            evictions: AtomicU64::new(0),
            flush: AtomicU64::new(0),
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub(super) fn begin(&self) -> Begun {
        Begun(self.evictions.load(Ordering::SeqCst))
    }

    /// The stamp for a value derived since `begun` about `user` and `tenant`, or
    /// `None` when an eviction raced the derivation.
    pub(super) fn stamp(&self, begun: Begun, who: Option<Principal<'_>>, tenant: Option<TenantId>) -> Option<Stamp> {
        let flush = self.flush.load(Ordering::SeqCst);
        let read = |i: u16| (i, self.slots[usize::from(i)].load(Ordering::SeqCst));
        let who = who.map(|p| match p {
            Principal::User(u) => slot(&u.as_uuid()),
            Principal::ApiKey(public_id) => key_slot(public_id),
        });
        let stamp = Stamp { flush, user: who.map(read), tenant: tenant.map(|t| read(slot(&t.as_uuid()))) };
        (self.evictions.load(Ordering::SeqCst) == begun.0).then_some(stamp)
    }

    /// Whether nothing `stamp` vouches for has been evicted since.
    pub(super) fn is_current(&self, stamp: &Stamp) -> bool {
        let same =
            |s: Option<(u16, u64)>| s.is_none_or(|(i, g)| self.slots[usize::from(i)].load(Ordering::SeqCst) == g);
        self.flush.load(Ordering::SeqCst) == stamp.flush && same(stamp.user) && same(stamp.tenant)
    }

    /// Records the eviction of `keys` (after their L1 entries are gone).
    pub(super) fn evicted(&self, keys: &[Key]) {
        self.evictions.fetch_add(1, Ordering::SeqCst);
        for key in keys {
            match key {
                Key::User { user } | Key::Role { user, .. } => self.bump(&user.as_uuid()),
                Key::Tenant { tenant } => self.bump(&tenant.as_uuid()),
                Key::ApiKey { public_id } => {
                    self.slots[usize::from(key_slot(public_id))].fetch_add(1, Ordering::SeqCst);
                }
                Key::Slug { .. } | Key::Domain { .. } => {
                    self.flush.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    /// Records that anything may have changed (after the L1 tier is cleared).
    pub(super) fn flushed(&self) {
        self.evictions.fetch_add(1, Ordering::SeqCst);
        self.flush.fetch_add(1, Ordering::SeqCst);
    }

    fn bump(&self, id: &Uuid) {
        self.slots[usize::from(slot(id))].fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_ends_with_an_eviction_of_its_user_tenant_or_a_flush_and_only_then() {
        let g = Generations::new();
        let (u, t, other) = (UserId::new(), TenantId::new(), UserId::new());
        let fresh = |g: &Generations| g.stamp(g.begin(), Some(Principal::User(u)), Some(t)).unwrap();

        let s = fresh(&g);
        assert!(g.is_current(&s));
        if slot(&other.as_uuid()) != slot(&u.as_uuid()) {
            g.evicted(&[Key::User { user: other }]);
            assert!(g.is_current(&s), "another user's eviction leaves it");
        }
        g.evicted(&[Key::Role { user: u, tenant: TenantId::new() }]);
        assert!(!g.is_current(&s), "a role change of its user ends it");

        let s = fresh(&g);
        g.evicted(&[Key::Tenant { tenant: t }]);
        assert!(!g.is_current(&s), "a tenant change ends it");

        let s = fresh(&g);
        g.evicted(&[Key::Slug { slug: "acme".into() }]);
        assert!(!g.is_current(&s), "a slug change ends every stamp");

        let s = fresh(&g);
        g.flushed();
        assert!(!g.is_current(&s));
    }

    #[test]
    fn a_key_stamp_ends_with_an_eviction_of_its_key_or_tenant() {
        let g = Generations::new();
        let t = TenantId::new();
        let fresh = |g: &Generations| g.stamp(g.begin(), Some(Principal::ApiKey("AbCdEf123456")), Some(t)).unwrap();
        let s = fresh(&g);
        if key_slot("ZZZZZZ999999") != key_slot("AbCdEf123456") {
            g.evicted(&[Key::ApiKey { public_id: "ZZZZZZ999999".into() }]);
            assert!(g.is_current(&s), "another key's eviction leaves it");
        }
        g.evicted(&[Key::ApiKey { public_id: "AbCdEf123456".into() }]);
        assert!(!g.is_current(&s), "its revocation ends it");
        let s = fresh(&g);
        g.evicted(&[Key::Tenant { tenant: t }]);
        assert!(!g.is_current(&s), "a tenant change ends it");
    }

    #[test]
    fn an_eviction_during_the_derivation_gives_no_stamp() {
        let g = Generations::new();
        let begun = g.begin();
        g.evicted(&[Key::User { user: UserId::new() }]);
        assert_eq!(g.stamp(begun, None, None), None);
        assert!(g.stamp(g.begin(), None, None).is_some());
    }
}
