//! The `tenant` label of the request and refusal metrics, under a cardinality
//! guard: the `METRICS_TENANT_LABELS` tenants with the most traffic keep their
//! slug, every other tenant counts as `other`, and a request that named no
//! tenant has an empty label. The ranking is redone every [`WINDOW`] from the
//! traffic of the last one; a tenant that has its label keeps it on a tie, so
//! labels do not flap between equals.
//!
//! The labelled tenants, the hot case, are counted with an atomic add on a
//! snapshot; the others in a small map under a mutex, capped (a tenant past the
//! cap replaces the least-seen one, as the space-saving algorithm does), so no
//! traffic pattern grows it without bound. Only tenants that exist reach this
//! (resolved by the access decision), never a slug a client made up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

/// How often the labelled set is recomputed.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// The first ranking comes sooner, so a fresh gateway's busiest tenants are
/// labelled within seconds.
const FIRST_WINDOW: Duration = Duration::from_secs(10);

/// The label of the tenants past the limit. Not a valid slug (reserved).
pub(crate) const OTHER: &str = "other";

/// Which tenants have a label of their own, and the traffic that decides it.
pub(crate) struct TenantLabels {
    limit: usize,
    labelled: ArcSwap<HashMap<Arc<str>, AtomicU64>>,
    others: Mutex<HashMap<Arc<str>, u64>>,
    other: Arc<str>,
    next_ranking: Mutex<Instant>,
}

impl TenantLabels {
    /// At most `limit` tenants get their own label (0: none does).
    pub(crate) fn new(limit: usize) -> TenantLabels {
        TenantLabels {
            limit,
            labelled: ArcSwap::from_pointee(HashMap::new()),
            others: Mutex::new(HashMap::new()),
            other: Arc::from(OTHER),
            next_ranking: Mutex::new(Instant::now() + FIRST_WINDOW),
        }
    }

    /// The label for one request of `slug`'s (counting it for the ranking).
    pub(crate) fn label(&self, slug: &str) -> Arc<str> {
        let labelled = self.labelled.load();
        if let Some((name, traffic)) = labelled.get_key_value(slug) {
            traffic.fetch_add(1, Ordering::Relaxed);
            return name.clone();
        }
        if self.limit > 0 {
            self.count_other(slug);
        }
        self.other.clone()
    }

    fn count_other(&self, slug: &str) {
        let Ok(mut others) = self.others.lock() else { return };
        if let Some(count) = others.get_mut(slug) {
            *count += 1;
            return;
        }
        let cap = 16 * self.limit + 256;
        let mut inherited = 0;
        if others.len() >= cap {
            // Space-saving: the newcomer takes the least-seen entry's place and count.
            if let Some(least) = others.iter().min_by_key(|(_, n)| **n).map(|(k, _)| k.clone()) {
                inherited = others.remove(&least).unwrap_or(0);
            }
        }
        others.insert(Arc::from(slug), inherited + 1);
    }

    /// Ranks the last window's traffic anew once it is due (a [`WINDOW`] after
    /// the last ranking); returns whether it did.
    pub(crate) fn rotate_if_due(&self, now: Instant) -> bool {
        let Ok(mut next) = self.next_ranking.lock() else { return false };
        if now < *next {
            return false;
        }
        *next = now + WINDOW;
        self.rotate();
        true
    }

    /// Keeps the `limit` tenants with the most traffic in the window that ended.
    pub(crate) fn rotate(&self) {
        let others = match self.others.lock() {
            Ok(mut others) => std::mem::take(&mut *others),
            Err(_) => return,
        };
        let current = self.labelled.load();
        // Already labelled first, so the stable sort keeps them on a tie.
        let mut ranked: Vec<(Arc<str>, u64)> =
            current.iter().map(|(name, n)| (name.clone(), n.load(Ordering::Relaxed))).collect();
        ranked.extend(others);
        ranked.sort_by_key(|(_, traffic)| std::cmp::Reverse(*traffic));
        let next: HashMap<Arc<str>, AtomicU64> =
            ranked.into_iter().take(self.limit).map(|(name, _)| (name, AtomicU64::new(0))).collect();
        self.labelled.store(Arc::new(next));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traffic(labels: &TenantLabels, slug: &str, times: usize) -> Arc<str> {
        (0..times).map(|_| labels.label(slug)).last().unwrap()
    }

    #[test]
    fn the_busiest_tenants_keep_their_slug_and_the_rest_are_other() {
        let labels = TenantLabels::new(2);
        assert_eq!(&*traffic(&labels, "acme", 5), "other", "nobody is labelled before the first ranking");
        traffic(&labels, "globex", 9);
        traffic(&labels, "initech", 1);
        labels.rotate();
        assert_eq!(&*labels.label("globex"), "globex");
        assert_eq!(&*labels.label("acme"), "acme");
        assert_eq!(&*labels.label("initech"), "other");
        // Next window: initech overtakes acme; globex keeps its place.
        traffic(&labels, "initech", 10);
        traffic(&labels, "globex", 3);
        traffic(&labels, "acme", 2);
        labels.rotate();
        assert_eq!(&*labels.label("initech"), "initech");
        assert_eq!(&*labels.label("globex"), "globex");
        assert_eq!(&*labels.label("acme"), "other");
    }

    #[test]
    fn a_tie_keeps_the_labelled_tenant() {
        let labels = TenantLabels::new(1);
        traffic(&labels, "acme", 1);
        labels.rotate();
        traffic(&labels, "acme", 3);
        traffic(&labels, "globex", 3);
        labels.rotate();
        assert_eq!(&*labels.label("acme"), "acme");
        assert_eq!(&*labels.label("globex"), "other");
    }

    #[test]
    fn no_labels_at_zero_and_the_candidates_stay_bounded() {
        let none = TenantLabels::new(0);
        traffic(&none, "acme", 3);
        none.rotate();
        assert_eq!(&*none.label("acme"), "other");
        let labels = TenantLabels::new(1);
        for i in 0..10_000 {
            labels.label(&format!("tenant-{i}"));
        }
        assert!(labels.others.lock().unwrap().len() <= 16 + 256);
        traffic(&labels, "busy", 50);
        labels.rotate();
        assert_eq!(&*labels.label("busy"), "busy", "a busy newcomer still surfaces");
    }

    #[test]
    fn rotation_waits_for_the_window() {
        let labels = TenantLabels::new(1);
        let start = Instant::now();
        assert!(!labels.rotate_if_due(start));
        assert!(labels.rotate_if_due(start + FIRST_WINDOW));
        assert!(!labels.rotate_if_due(start + FIRST_WINDOW + Duration::from_secs(1)));
        assert!(labels.rotate_if_due(start + FIRST_WINDOW + WINDOW));
    }
}
