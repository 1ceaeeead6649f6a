//! Clients that present API keys which are not keys: each one costs a lookup in
//! Redis and Postgres (a made-up public id is not in any cache), so a client
//! (an IP address, IPv6 by /64) gets [`FAILURES_PER_MINUTE`] failed keys a
//! minute; past that its key requests are refused (429) without a lookup until
//! its allowance refills. Counted only on failures: a client whose keys work is
//! never slowed. The check runs on the decision's miss path only, so a warm
//! request never pays for it.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Failed API keys a client may present per minute (in a burst, then one every
/// two seconds).
pub const FAILURES_PER_MINUTE: u32 = 30;

/// Clients currently refused, at most (the oldest are forgotten first).
const BLOCKED_CAPACITY: usize = 100_000;

/// Failures between two sweeps of the limiter's idle clients.
const SWEEP_EVERY: u64 = 4096;

/// The per-client allowance of failed API keys.
pub struct KeyGuard {
    failures: DefaultKeyedRateLimiter<IpAddr>,
    blocked: quick_cache::sync::Cache<IpAddr, Instant>,
    failed: AtomicU64,
}

impl Default for KeyGuard {
    fn default() -> KeyGuard {
        let per_minute = NonZeroU32::new(FAILURES_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
        KeyGuard {
            failures: RateLimiter::keyed(Quota::per_minute(per_minute)),
            blocked: quick_cache::sync::Cache::new(BLOCKED_CAPACITY),
            failed: AtomicU64::new(0),
        }
    }
}

impl KeyGuard {
    /// `Err` with the wait when `client` has used up its failures.
    ///
    /// # Errors
    /// How long until it may try again.
    pub fn admit(&self, client: Option<IpAddr>) -> Result<(), Duration> {
        let Some(client) = client.map(edge::client_ip::limit_key) else { return Ok(()) };
        match self.blocked.get(&client) {
            Some(until) => match until.checked_duration_since(Instant::now()) {
                Some(wait) if !wait.is_zero() => Err(wait),
                _ => {
                    self.blocked.remove(&client);
                    Ok(())
                }
            },
            None => Ok(()),
        }
    }

    /// Counts a failed key from `client`; once over the allowance, it is refused
    /// until the allowance has room again.
    pub fn failed(&self, client: Option<IpAddr>) {
        let Some(client) = client.map(edge::client_ip::limit_key) else { return };
        if let Err(not_until) = self.failures.check_key(&client) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            self.blocked.insert(client, Instant::now() + wait);
        }
        if self.failed.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.failures.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_refused_after_its_failures_and_others_are_not() {
        let guard = KeyGuard::default();
        let (prober, other): (IpAddr, IpAddr) = ("203.0.113.7".parse().unwrap(), "198.51.100.1".parse().unwrap());
        for _ in 0..FAILURES_PER_MINUTE {
            assert!(guard.admit(Some(prober)).is_ok());
            guard.failed(Some(prober));
        }
        assert!(guard.admit(Some(prober)).is_ok(), "the allowance itself is not refused");
        guard.failed(Some(prober));
        let wait = guard.admit(Some(prober)).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(2), "{wait:?}");
        assert!(guard.admit(Some(other)).is_ok());
        // IPv6 clients are one per /64.
        let (a, b): (IpAddr, IpAddr) = ("2001:db8::1".parse().unwrap(), "2001:db8::ffff".parse().unwrap());
        for _ in 0..=FAILURES_PER_MINUTE {
            guard.failed(Some(a));
        }
        assert!(guard.admit(Some(b)).is_err());
        assert!(guard.admit(None).is_ok(), "no address, nothing to count");
    }
}
