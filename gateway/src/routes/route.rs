//! A route as the proxy uses it. Every field has been checked by the loader, so the
//! hooks read it without re-validating: a [`Route`] is only built by
//! [`super::RouteTable::load`] or [`super::RouteTable::parse`].

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use serde::Deserialize;
use shared::domain::Role;

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

/// A host a route answers for: an exact name (`app.example.com`) or one leading
/// wildcard label (`*.app.example.com`, which matches `x.app.example.com` but neither
/// `app.example.com` nor `a.b.app.example.com`). Stored lowercase, without a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPattern {
    wildcard: bool,
    /// The exact name, or the part after `*.`.
    name: Box<str>,
}

impl HostPattern {
    /// Parses a pattern: DNS labels of `a-z0-9-` (case-insensitive), optionally
    /// preceded by `*.`; no port, no trailing dot.
    ///
    /// # Errors
    /// A sentence saying what is wrong with `raw`.
    pub fn parse(raw: &str) -> Result<HostPattern, String> {
        let (wildcard, name) = match raw.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        if name.contains(':') {
            return Err(format!("host {raw:?} must not have a port (hosts match whatever the port)"));
        }
        if name.contains('*') {
            return Err(format!("host {raw:?} may only have one wildcard, as its whole first label (*.example.com)"));
        }
        if name.is_empty() || name.len() > 253 {
            return Err(format!("host {raw:?} must be a DNS name of 1 to 253 characters"));
        }
        for label in name.split('.') {
            let valid = (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !valid {
                return Err(format!(
                    "host {raw:?} has an invalid label {label:?}: labels are 1 to 63 letters, digits or '-', \
                     not starting or ending with '-'"
                ));
            }
        }
        Ok(HostPattern { wildcard, name: name.to_ascii_lowercase().into() })
    }

    /// True for `*.example.com` patterns.
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// The exact host, or for a wildcard the suffix after `*.`; lowercase.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `host` (already without its port) matches, ignoring ASCII case.
    pub fn matches(&self, host: &str) -> bool {
        if !self.wildcard {
            return host.eq_ignore_ascii_case(&self.name);
        }
        match host.split_once('.') {
            Some((label, parent)) => !label.is_empty() && parent.eq_ignore_ascii_case(&self.name),
            None => false,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.name)
    }
}

/// A normalized path prefix that matches whole segments: `/api` matches `/api`,
/// `/api/` and `/api/x` but not `/apix`. Never ends with `/` except the root `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathPrefix(Box<str>);

impl PathPrefix {
    /// Parses a prefix. A trailing `/` is dropped (`/api/` means `/api`).
    ///
    /// # Errors
    /// A sentence when `raw` does not start with `/` or is not in the normalized form
    /// requests are matched in (no `.`/`..` segments, no `//`, `%XX` only for
    /// reserved characters, in uppercase).
    pub fn parse(raw: &str) -> Result<PathPrefix, String> {
        if !raw.starts_with('/') {
            return Err(format!("path_prefix {raw:?} must start with '/'"));
        }
        let normalized = super::normalize::normalize(raw).map_err(|e| format!("path_prefix {raw:?}: {e}"))?;
        if normalized != raw {
            return Err(format!(
                "path_prefix {raw:?} is not normalized; requests are matched on the normalized path, write {normalized:?}"
            ));
        }
        let trimmed = if raw.len() > 1 { raw.trim_end_matches('/') } else { raw };
        Ok(PathPrefix(trimmed.into()))
    }

    /// The prefix text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The rest of `path` after this prefix, if the prefix matches whole segments of
    /// it: `/api` on `/api/x` gives `/x`, on `/api` gives `/`, on `/apix` gives
    /// `None`. The root prefix gives the whole path. Never allocates.
    pub fn strip<'p>(&self, path: &'p str) -> Option<&'p str> {
        if &*self.0 == "/" {
            return Some(path);
        }
        let rest = path.strip_prefix(&*self.0)?;
        if rest.is_empty() {
            Some("/")
        } else if rest.starts_with('/') {
            Some(rest)
        } else {
            None
        }
    }
}

impl fmt::Display for PathPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An upstream address as `host:port` (an IPv4 address, a `[v6]` address or a DNS
/// name, and a non-zero port), in the form Pingora's `HttpPeer::new` and
/// `LoadBalancer::try_from_iter` take.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Upstream {
    addr: Box<str>,
    port: u16,
}

impl Upstream {
    /// # Errors
    /// A sentence when `raw` is not `host:port`.
    pub fn parse(raw: &str) -> Result<Upstream, String> {
        let bad = |why: &str| Err(format!("upstream {raw:?} {why}"));
        if raw.contains("://") {
            return bad("must be host:port, without a scheme");
        }
        let Some((host, port)) = raw.rsplit_once(':') else {
            return bad("must be host:port (a port is required)");
        };
        let port = match port.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return bad("has an invalid port (1 to 65535)"),
        };
        if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            if v6.parse::<std::net::Ipv6Addr>().is_err() {
                return bad("has an invalid IPv6 address");
            }
        } else if host.contains(':') {
            return bad("must put an IPv6 address in brackets ([::1]:3000)");
        } else if host.parse::<std::net::Ipv4Addr>().is_err()
            && HostPattern::parse(host).map(|h| h.wildcard) != Ok(false)
        {
            return bad("has an invalid host name");
        }
        Ok(Upstream { addr: raw.into(), port })
    }

    /// `host:port`, as written.
    pub fn as_str(&self) -> &str {
        &self.addr
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.addr)
    }
}

/// One route from a route file. Read-only: the table hands out `Arc<Route>`.
#[derive(Debug, Clone)]
pub struct Route {
    pub(super) name: Arc<str>,
    pub(super) origin: String,
    pub(super) hosts: Vec<HostPattern>,
    pub(super) path_prefix: PathPrefix,
    pub(super) upstreams: Vec<Upstream>,
    pub(super) auth: Requirement,
    pub(super) tenant: Requirement,
    pub(super) tenant_from: Vec<TenantSource>,
    pub(super) min_role: Option<Role>,
    pub(super) strip_prefix: bool,
    pub(super) methods: Option<Vec<Method>>,
    pub(super) connect_timeout: Option<Duration>,
    pub(super) read_timeout: Option<Duration>,
    pub(super) require_verified_email: bool,
    pub(super) rate_limit: Option<RateLimit>,
    pub(super) headers: Vec<(HeaderName, HeaderValue)>,
    pub(super) on_unauthenticated: Option<OnUnauthenticated>,
    pub(super) signed_assertion: bool,
}

impl Route {
    /// The unique route name, shared cheaply for logs and metrics labels
    /// (`RequestCtx::route`).
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Where the route is defined, as `file:line`, for log messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The hosts it answers for; empty means any host.
    pub fn hosts(&self) -> &[HostPattern] {
        &self.hosts
    }

    /// The path prefix it owns.
    pub fn path_prefix(&self) -> &PathPrefix {
        &self.path_prefix
    }

    /// The upstreams to balance over (at least one).
    pub fn upstreams(&self) -> &[Upstream] {
        &self.upstreams
    }

    /// Whether a valid access token is needed (default `Required`).
    pub fn auth(&self) -> Requirement {
        self.auth
    }

    /// Whether a tenant must be resolved (default `None`).
    pub fn tenant(&self) -> Requirement {
        self.tenant
    }

    /// Where to look for the tenant, in order. Non-empty exactly when
    /// [`Route::tenant`] is not `None`.
    pub fn tenant_from(&self) -> &[TenantSource] {
        &self.tenant_from
    }

    /// The lowest role the user needs in the resolved tenant. Only set on routes that
    /// authenticate and resolve a tenant.
    pub fn min_role(&self) -> Option<Role> {
        self.min_role
    }

    /// Whether the upstream gets the path without the route's prefix.
    pub fn strip_prefix(&self) -> bool {
        self.strip_prefix
    }

    /// The allowed methods, if the route restricts them (uppercase; `HEAD` is not
    /// implied by `GET`).
    pub fn methods(&self) -> Option<&[Method]> {
        self.methods.as_deref()
    }

    /// Whether `method` may use this route; the proxy answers 405 otherwise.
    pub fn allows_method(&self, method: &Method) -> bool {
        self.methods.as_ref().is_none_or(|allowed| allowed.contains(method))
    }

    /// Connect timeout for this route's upstreams, if set (never zero).
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout
    }

    /// Read timeout for this route's upstreams, if set (never zero).
    pub fn read_timeout(&self) -> Option<Duration> {
        self.read_timeout
    }

    /// Whether the user's email must be verified (the route authenticates).
    pub fn require_verified_email(&self) -> bool {
        self.require_verified_email
    }

    /// The per-route rate limit, if any.
    pub fn rate_limit(&self) -> Option<&RateLimit> {
        self.rate_limit.as_ref()
    }

    /// Extra headers to set on the upstream request. Never an identity header
    /// (`x-user-*`, `x-tenant-*`, `x-tenantgate-*`, `x-request-id`) nor a hop-by-hop
    /// one: the loader refuses those.
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// What an unauthenticated request gets, if the route says (only on routes with
    /// `auth = "required"`); `None` means the gateway's default.
    pub fn on_unauthenticated(&self) -> Option<OnUnauthenticated> {
        self.on_unauthenticated
    }

    /// Whether to send an `X-Tenantgate-Assertion` JWT upstream.
    pub fn signed_assertion(&self) -> bool {
        self.signed_assertion
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        let exact = HostPattern::parse("App.Example.com").unwrap();
        assert_eq!(exact.to_string(), "app.example.com");
        assert!(exact.matches("APP.example.COM"));
        assert!(!exact.matches("x.app.example.com"));
        let wild = HostPattern::parse("*.example.com").unwrap();
        assert!(wild.matches("acme.Example.com"));
        assert!(!wild.matches("example.com"));
        assert!(!wild.matches("a.b.example.com"));
        assert!(!wild.matches(".example.com"));
        for bad in ["", "example.com:80", "*.*.example.com", "a.*.com", "-a.com", "a..com", "a_b.com", "*"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn prefixes_match_whole_segments() {
        let api = PathPrefix::parse("/api/").unwrap();
        assert_eq!(api.as_str(), "/api");
        assert_eq!(api.strip("/api"), Some("/"));
        assert_eq!(api.strip("/api/"), Some("/"));
        assert_eq!(api.strip("/api/v1/x"), Some("/v1/x"));
        assert_eq!(api.strip("/apix"), None);
        assert_eq!(api.strip("/ap"), None);
        let root = PathPrefix::parse("/").unwrap();
        assert_eq!(root.strip("/anything"), Some("/anything"));
        for bad in ["api", "", "/a/../b", "/a//b", "/%7euser", "/a/./b"] {
            assert!(PathPrefix::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn upstreams_are_host_port() {
        for ok in ["127.0.0.1:3000", "localhost:80", "app.internal:8080", "[::1]:3000"] {
            assert_eq!(Upstream::parse(ok).unwrap().as_str(), ok);
        }
        for bad in ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:99999", "http://a:1", "::1:3000", "[zz]:1", ":80", "a b:1"] {
            assert!(Upstream::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
