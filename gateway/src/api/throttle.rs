//! Abuse limits of the auth API: per-account and per-IP attempt counters for
//! login, forgot-password, sign-up, tenant creation, invitations and mail sent on
//! request, counted in Redis so every gateway instance shares them.
//!
//! Each action has its own counters and quota (`RATE_LIMIT_*`), so exhausting the
//! login limit (a lockout) never blocks a password reset. Keys are built from
//! typed values only: an address is the parsed [`Email`], lowercased whole (the
//! database compares addresses so) and stored as a keyed hash, never as typed; an
//! account is its [`UserId`]; an IPv6 client counts per /64. When Redis is
//! unavailable the limit fails open with a warning: an outage of the cache must not
//! lock everyone out. In single-node mode (no Redis) the counters live in process.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::cache::{RedisError, RedisTier};
use shared::config::{Quota, RateLimitSettings};
use shared::domain::{Email, UserId};
use shared::telemetry::error_chain;
use shared::tokens::TokenHasher;

use super::error::ApiError;

/// What is being limited; each action counts separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `POST /auth/login`.
    Login,
    /// `POST /auth/forgot-password`.
    ForgotPassword,
    /// `POST /auth/register`.
    Register,
    /// `POST /auth/tenants`.
    CreateTenant,
    /// `POST /auth/tenants/{id}/invitations`, by the inviter.
    Invite,
    /// A mail sent on someone's request: to the address it goes to (invitations,
    /// verification resends), and verification resends per IP.
    Mail,
}

impl Action {
    /// The name in counter keys and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Login => "login",
            Action::ForgotPassword => "forgot-password",
            Action::Register => "register",
            Action::CreateTenant => "tenant-create",
            Action::Invite => "invite",
            Action::Mail => "mail",
        }
    }
}

/// Who an attempt is counted against.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// An address (signing in, signing up, or receiving mail).
    Address(&'a Email),
    /// A signed-in account.
    Account(UserId),
    /// The client.
    Ip(IpAddr),
}

/// Fixed-window counters, one quota per action.
#[derive(Clone)]
pub struct Throttle {
    counters: Counters,
    prefix: String,
    hasher: TokenHasher,
    limits: RateLimitSettings,
}

/// Where the counts are kept.
#[derive(Clone)]
enum Counters {
    /// Shared by every gateway.
    Redis(RedisTier),
    /// This process only (single-node mode).
    Local(LocalWindows),
}

impl Counters {
    async fn incr_window(&self, key: &str, window: Duration) -> Result<(u64, Duration), RedisError> {
        match self {
            Counters::Redis(redis) => redis.incr_window(key, window).await,
            Counters::Local(local) => Ok(local.incr(key, window, Instant::now())),
        }
    }
}

/// The most windows kept in process; past it the least recently used go first.
const LOCAL_WINDOWS: u64 = 250_000;

/// In-process fixed windows: a count and the instant its window ends, dropped
/// when it ends. What Redis's `INCR` + `EXPIRE NX` does, for one instance.
#[derive(Clone)]
struct LocalWindows {
    windows: moka::sync::Cache<String, Arc<Window>>,
}

struct Window {
    count: AtomicU64,
    ends: Instant,
}

/// Each window is forgotten when it ends.
struct UntilItEnds;

impl moka::Expiry<String, Arc<Window>> for UntilItEnds {
    fn expire_after_create(&self, _key: &String, window: &Arc<Window>, created_at: Instant) -> Option<Duration> {
        Some(window.ends.saturating_duration_since(created_at))
    }
}

impl LocalWindows {
    fn new() -> LocalWindows {
        LocalWindows {
            windows: moka::sync::Cache::builder().max_capacity(LOCAL_WINDOWS).expire_after(UntilItEnds).build(),
        }
    }

    /// Counts one attempt under `key` at `now`; returns the count in the current
    /// window and the time left in it (at least one second, as `Retry-After`).
    fn incr(&self, key: &str, length: Duration, now: Instant) -> (u64, Duration) {
        let fresh = || Arc::new(Window { count: AtomicU64::new(0), ends: now + length });
        let mut window = self.windows.get_with_by_ref(key, fresh);
        if window.ends <= now {
            // Ended, and not yet swept: a new window starts with this attempt.
            window = fresh();
            self.windows.insert(key.to_owned(), window.clone());
        }
        let count = window.count.fetch_add(1, Ordering::Relaxed) + 1;
        let left = window.ends.saturating_duration_since(now).max(Duration::from_secs(1));
        (count, Duration::from_secs(left.as_secs_f64().ceil() as u64))
    }
}

impl Throttle {
    /// Counters under `{prefix}ratelimit:` in `redis`, or in process without it;
    /// `hasher` hides addresses in key names.
    pub fn new(redis: Option<RedisTier>, prefix: String, hasher: TokenHasher, limits: RateLimitSettings) -> Throttle {
        let counters = match redis {
            Some(redis) => Counters::Redis(redis),
            None => Counters::Local(LocalWindows::new()),
        };
        Throttle { counters, prefix, hasher, limits }
    }

    fn quota(&self, action: Action) -> Quota {
        match action {
            Action::Login | Action::ForgotPassword => self.limits.credentials(),
            Action::Register => self.limits.register,
            Action::CreateTenant => self.limits.tenant_create,
            Action::Invite => self.limits.invitations,
            Action::Mail => self.limits.mail,
        }
    }

    /// The counter key of `subject` for `action`.
    fn key(&self, action: Action, subject: Subject<'_>) -> String {
        let action = action.as_str();
        match subject {
            Subject::Address(email) => {
                let digest = self.hasher.hash(&format!("ratelimit:{}", email.as_str().to_lowercase()));
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                format!("{}ratelimit:{action}:address:{hex}", self.prefix)
            }
            Subject::Account(id) => format!("{}ratelimit:{action}:account:{id}", self.prefix),
            Subject::Ip(ip) => format!("{}ratelimit:{action}:ip:{}", self.prefix, edge::client_ip::limit_key(ip)),
        }
    }

    /// Counts one attempt at `action` against each of `subjects`.
    ///
    /// # Errors
    /// 429 `rate_limited` with the wait until the fullest window ends, when any
    /// counter is over the action's quota.
    pub async fn hit(&self, action: Action, subjects: &[Option<Subject<'_>>]) -> Result<(), ApiError> {
        let quota = self.quota(action);
        let mut wait: Option<Duration> = None;
        for subject in subjects.iter().flatten() {
            match self.counters.incr_window(&self.key(action, *subject), quota.window).await {
                Ok((count, remaining)) if count > u64::from(quota.max) => {
                    wait = Some(wait.map_or(remaining, |w| w.max(remaining)));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %error_chain(&e), action = action.as_str(), "rate limit unavailable; allowing");
                    return Ok(());
                }
            }
        }
        match wait {
            Some(wait) => {
                tracing::info!(action = action.as_str(), "attempt rate limited");
                Err(ApiError::rate_limited(wait))
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_windows_count_until_the_window_ends_then_start_again() {
        let windows = LocalWindows::new();
        let start = Instant::now();
        let minute = Duration::from_secs(60);
        assert_eq!(windows.incr("a", minute, start), (1, minute));
        assert_eq!(windows.incr("a", minute, start + Duration::from_millis(30_500)), (2, Duration::from_secs(30)));
        assert_eq!(windows.incr("b", minute, start).0, 1, "keys count apart");
        // The last second still says one second, never zero.
        assert_eq!(windows.incr("a", minute, start + Duration::from_millis(59_900)), (3, Duration::from_secs(1)));
        assert_eq!(windows.incr("a", minute, start + minute), (1, minute), "a new window once the old one ended");
    }
}
