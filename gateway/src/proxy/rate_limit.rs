//! Per-route rate limits, in process (the proxied path does no network I/O): a GCRA
//! limiter per route (governor), keyed by client IP, user (or API key) or tenant, allowing
//! `requests` per `window` with bursts up to `requests`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::access::Identity;
use crate::routes::{RateLimit, RateLimitKey, Route, RouteTable};

struct Limiter {
    config: RateLimit,
    limiter: DefaultKeyedRateLimiter<String>,
}

/// The limiters of every route that has a `rate_limit`.
#[derive(Default)]
pub struct RateLimits {
    by_route: ArcSwap<HashMap<Arc<str>, Arc<Limiter>>>,
}

/// The verdict for one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit (or the route has none).
    Allow,
    /// Over the limit; retry after this long.
    Limited(Duration),
}

impl RateLimits {
    /// Checks and counts one request to `route` from `client_ip` with `identity`.
    pub fn check(&self, route: &Route, client_ip: Option<IpAddr>, identity: &Identity) -> Verdict {
        // Most routes have no limit: no map lookup for them.
        if route.rate_limit().is_none() {
            return Verdict::Allow;
        }
        let map = self.by_route.load();
        let Some(limiter) = map.get(route.name()) else {
            return Verdict::Allow;
        };
        // IPv6 clients are counted per /64: one subscriber holds a whole one.
        let ip = || client_ip.map(|ip| edge::client_ip::limit_key(ip).to_string()).unwrap_or_default();
        let key = match limiter.config.key() {
            RateLimitKey::Ip => ip(),
            // Anonymous callers of a user- or tenant-keyed route share the IP key.
            // An API key counts as its own caller.
            RateLimitKey::User => match (&identity.user, &identity.api_key) {
                (Some(user), _) => user.id.to_string(),
                (None, Some(key)) => key.id.to_string(),
                (None, None) => ip(),
            },
            RateLimitKey::Tenant => identity.tenant.as_ref().map_or_else(ip, |t| t.id.to_string()),
        };
        match limiter.limiter.check_key(&key) {
            Ok(()) => Verdict::Allow,
            Err(not_until) => Verdict::Limited(not_until.wait_time_from(DefaultClock::default().now())),
        }
    }

    /// Keeps the limiters of routes whose limit did not change (their counts
    /// survive a reload), builds the others, and forgets idle keys.
    pub fn refresh(&self, table: &RouteTable) {
        let current = self.by_route.load_full();
        let mut next = HashMap::new();
        for route in table.routes() {
            let Some(config) = route.rate_limit() else { continue };
            let limiter = match current.get(route.name()) {
                Some(existing) if existing.config == *config => existing.clone(),
                _ => Arc::new(Limiter { config: *config, limiter: RateLimiter::keyed(quota(config)) }),
            };
            limiter.limiter.retain_recent();
            next.insert(route.name().clone(), limiter);
        }
        self.by_route.store(Arc::new(next));
    }
}

fn quota(config: &RateLimit) -> Quota {
    let requests = config.requests();
    let period = config.window() / requests.get();
    Quota::with_period(period.max(Duration::from_nanos(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(requests)
}
