//! What a route (or a rule) demands of a request, in the words route files use:
//! [`Requirement`]s, where the tenant comes from, rate limits, what an
//! unauthenticated request gets, what to do with encoded slashes.

use std::num::NonZeroU32;
use std::time::Duration;

use serde::Deserialize;

/// How much a route demands of a request: used for both `auth` and `tenant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Requirement {
    /// The request is refused without it (401 for auth, 400 `tenant_required`).
    Required,
    /// Used when present; the request goes on without it.
    Optional,
    /// Not looked at: no token check, or no tenant resolution.
    None,
}

impl Requirement {
    /// The name route files use.
    pub const fn as_str(self) -> &'static str {
        match self {
            Requirement::Required => "required",
            Requirement::Optional => "optional",
            Requirement::None => "none",
        }
    }
}

/// Where a route looks for the tenant, tried in the configured order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantSource {
    /// The Host equals a tenant's own domain.
    Domain,
    /// The Host is `{slug}.{base_domain}`; see [`super::tenant::subdomain_slug`].
    Subdomain,
    /// The path starts with `/t/{slug}/`; see [`super::tenant::path_slug`].
    Path,
    /// `X-Tenant-Id` (uuid) or `X-Tenant-Slug`.
    Header,
}

impl TenantSource {
    /// The name route files use.
    pub const fn as_str(self) -> &'static str {
        match self {
            TenantSource::Domain => "domain",
            TenantSource::Subdomain => "subdomain",
            TenantSource::Path => "path",
            TenantSource::Header => "header",
        }
    }
}

/// What a rate limit counts requests by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitKey {
    /// The client IP.
    Ip,
    /// The authenticated user (the route needs `auth != "none"`).
    User,
    /// The resolved tenant (the route needs `tenant != "none"`).
    Tenant,
}

/// What an unauthenticated request to an `auth = "required"` route gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum OnUnauthenticated {
    /// A redirect to the login page (browser apps).
    #[serde(rename = "redirect")]
    Redirect,
    /// 401 with `WWW-Authenticate: Bearer` (APIs; the default).
    #[serde(rename = "401")]
    Unauthorized,
}

/// A per-route limit: at most `requests` per `window` for each key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub(super) requests: NonZeroU32,
    pub(super) window: Duration,
    pub(super) key: RateLimitKey,
}

impl RateLimit {
    /// How many requests one key may make per window (at least one).
    pub fn requests(&self) -> NonZeroU32 {
        self.requests
    }

    /// The window length (never zero).
    pub fn window(&self) -> Duration {
        self.window
    }

    /// What requests are counted by.
    pub fn key(&self) -> RateLimitKey {
        self.key
    }
}
/// What a route does with an encoded slash (`%2F`) in a request path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodedSlashes {
    /// 400 `ambiguous_path` (the default): many servers decode `%2F` into `/`
    /// before routing, so the app could act on another path than the one
    /// authorized.
    #[default]
    Reject,
    /// Forwarded as `%2F`, for apps that treat it as data (object stores, some
    /// APIs). Accepted only when reading the encoded slashes as separators gives
    /// no dot or empty segment and selects the same route.
    Keep,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_ones_route_files_use() {
        use serde::de::value::{Error, StrDeserializer};
        for r in [Requirement::Required, Requirement::Optional, Requirement::None] {
            assert_eq!(Requirement::deserialize(StrDeserializer::<Error>::new(r.as_str())), Ok(r));
        }
        for t in [TenantSource::Domain, TenantSource::Subdomain, TenantSource::Path, TenantSource::Header] {
            assert_eq!(TenantSource::deserialize(StrDeserializer::<Error>::new(t.as_str())), Ok(t));
        }
    }
}
