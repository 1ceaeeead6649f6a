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

use super::rule::Rule;
use super::table::PathLookup;
use super::upstream::{Upstream, UpstreamTls};
use super::IdentityHeaders;
use crate::path::RequestPath;

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

/// A path prefix that matches whole segments: `/api` matches `/api`, `/api/` and
/// `/api/x` but not `/apix`. Written in the canonical wire form requests are
/// normalized to; matched against a request's decoded view
/// ([`crate::path::RequestPath::view`]), ignoring case unless the route is
/// `case_sensitive`. Never ends with `/` except the root `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathPrefix {
    /// As written (the wire form).
    wire: Box<str>,
    /// Decoded once, as apps see it.
    view: Box<str>,
    /// The view lowercased (Unicode), for case-insensitive matching.
    folded: Box<str>,
    /// How many segments it has (0 for the root).
    segments: usize,
}

impl PathPrefix {
    /// Parses a prefix. A trailing `/` is dropped (`/api/` means `/api`).
    ///
    /// # Errors
    /// A sentence when `raw` does not start with `/`, is not in the canonical form
    /// requests are normalized to (no `.`/`..` segments, no `//`, `%XX` only for
    /// reserved characters, in uppercase), or holds what a request path may not
    /// (an encoded slash, a `;`, a `\`...).
    pub fn parse(raw: &str) -> Result<PathPrefix, String> {
        if !raw.starts_with('/') {
            return Err(format!("path_prefix {raw:?} must start with '/'"));
        }
        let parsed = RequestPath::parse(raw).map_err(|e| format!("path_prefix {raw:?}: {e}"))?;
        if parsed.has_encoded_slash() {
            return Err(format!("path_prefix {raw:?} may not contain an encoded slash (%2F)"));
        }
        if parsed.wire() != raw {
            return Err(format!(
                "path_prefix {raw:?} is not normalized; requests are matched on the normalized path, write {:?}",
                parsed.wire()
            ));
        }
        let trim = |s: &str| -> Box<str> {
            if s.len() > 1 {
                s.trim_end_matches('/').into()
            } else {
                s.into()
            }
        };
        let view = trim(parsed.view());
        Ok(PathPrefix {
            wire: trim(raw),
            folded: view.to_lowercase().into(),
            segments: view.split('/').filter(|s| !s.is_empty()).count(),
            view,
        })
    }

    /// The prefix as written.
    pub fn as_str(&self) -> &str {
        &self.wire
    }

    /// The prefix decoded, lowercased: two prefixes with the same folded form
    /// collide for case-insensitive routes.
    pub fn folded(&self) -> &str {
        &self.folded
    }

    /// How many path segments the prefix spans.
    pub fn segments(&self) -> usize {
        self.segments
    }

    /// Whether every path `other` matches is one this prefix matches too (it is
    /// this prefix or lies under it), compared as a route with `case_sensitive`
    /// compares.
    pub fn covers(&self, other: &PathPrefix, case_sensitive: bool) -> bool {
        self.matches(&other.view, Some(&other.folded), case_sensitive)
    }

    /// Whether the prefix matches whole segments of a request `path` (a view).
    /// `folded` is the view lowercased, needed only when it is not ASCII.
    pub fn matches(&self, view: &str, folded: Option<&str>, case_sensitive: bool) -> bool {
        if self.segments == 0 {
            return true;
        }
        match (case_sensitive, folded) {
            (true, _) => segment_prefix(view, &self.view, false),
            (false, None) => segment_prefix(view, &self.view, true),
            (false, Some(folded)) => segment_prefix(folded, &self.folded, false),
        }
    }
}

/// Whether `prefix` (no trailing `/`) is `path` or a run of its leading segments.
fn segment_prefix(path: &str, prefix: &str, ascii_case_insensitive: bool) -> bool {
    let Some(head) = path.get(..prefix.len()) else { return false };
    let same = if ascii_case_insensitive { head.eq_ignore_ascii_case(prefix) } else { head == prefix };
    same && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/'))
}

impl fmt::Display for PathPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.wire)
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

/// One route from a route file. Read-only: the table hands out `Arc<Route>`.
#[derive(Debug, Clone)]
pub struct Route {
    pub(super) name: Arc<str>,
    pub(super) origin: String,
    pub(super) hosts: Vec<HostPattern>,
    pub(super) path_prefix: PathPrefix,
    pub(super) upstreams: Vec<Upstream>,
    pub(super) upstream_tls: Option<Arc<UpstreamTls>>,
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
    pub(super) audience: Option<String>,
    pub(super) case_sensitive: bool,
    pub(super) encoded_slashes: EncodedSlashes,
    pub(super) forward_credentials: bool,
    pub(super) identity_headers: IdentityHeaders,
    pub(super) id: u64,
    /// The id of the route as written, shared by its rules' variants.
    pub(super) base_id: u64,
    /// One variant per `[[route.rule]]`, in file order (empty on variants).
    pub(super) rules: Box<[Arc<Route>]>,
    /// The rule this variant applies; `None` for the route's own policy.
    pub(super) rule: Option<Arc<Rule>>,
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

    /// How its upstreams' TLS is checked: `Some` exactly when they are `https://`
    /// (a route's upstreams share one scheme).
    pub fn upstream_tls(&self) -> Option<&UpstreamTls> {
        self.upstream_tls.as_deref()
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

    /// The `aud` of the route's assertions: its `audience`, or its name.
    pub fn assertion_audience(&self) -> &str {
        self.audience.as_deref().unwrap_or(&self.name)
    }

    /// Whether the path prefix is compared case-sensitively (default: no, `/ADMIN`
    /// is `/admin` to the matcher, as it is to many apps).
    pub fn case_sensitive(&self) -> bool {
        self.case_sensitive
    }

    /// What the route does with `%2F` in a request path.
    pub fn encoded_slashes(&self) -> EncodedSlashes {
        self.encoded_slashes
    }

    /// Whether the gateway's own credentials (its bearer token, its cookies) are
    /// forwarded to the app (default: no, they stay at the edge).
    pub fn forward_credentials(&self) -> bool {
        self.forward_credentials
    }

    /// The identity headers its app receives (default: all six).
    pub fn identity_headers(&self) -> IdentityHeaders {
        self.identity_headers
    }

    /// A number no other route built by this process has, a reload's included,
    /// and no other policy either: each rule's variant has its own. What is
    /// remembered per decision is keyed by it, so a reloaded route starts with
    /// nothing remembered, and two policies of one route never share an entry.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The [`Route::id`] of the route as written, the same for each of its
    /// rules' variants: for what belongs to the route whatever the policy (its
    /// upstreams' TLS settings). New on every load, like the id.
    pub fn base_id(&self) -> u64 {
        self.base_id
    }

    /// The route's `[[route.rule]]` entries in file order, each as the route it
    /// makes (the route with the rule's policy, its own [`Route::id`], the same
    /// name and everything else). Empty on those variants.
    pub fn rules(&self) -> &[Arc<Route>] {
        &self.rules
    }

    /// The rule this route is the variant of; `None` for the route's own policy.
    pub fn rule(&self) -> Option<&Rule> {
        self.rule.as_deref()
    }

    /// The first rule that applies to a request with `method` and `path` (the
    /// path the route matched: its view, after a `/t/{slug}` prefix on routes that
    /// resolve tenants by path), as its variant; `None` when none does and the
    /// route's own policy applies. A route without rules answers after one
    /// branch; rules are tried in order, without allocating.
    #[inline]
    pub fn rule_for(&self, method: &Method, path: PathLookup<'_>) -> Option<&Arc<Route>> {
        if self.rules.is_empty() {
            return None;
        }
        self.first_rule(method, path)
    }

    fn first_rule(&self, method: &Method, path: PathLookup<'_>) -> Option<&Arc<Route>> {
        self.rules
            .iter()
            .find(|variant| variant.rule.as_ref().is_some_and(|rule| rule.applies(method, path, self.case_sensitive)))
    }

    /// The route whose policy decides a request with `method` and `path`: the
    /// first rule's variant that applies ([`Route::rule_for`]), else this route.
    pub fn for_request<'a>(self: &'a Arc<Route>, method: &Method, path: PathLookup<'_>) -> &'a Arc<Route> {
        self.rule_for(method, path).unwrap_or(self)
    }
}

/// The source of [`Route::id`].
pub(super) fn next_route_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
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
    fn prefixes_match_whole_segments_ignoring_case_unless_asked() {
        let api = PathPrefix::parse("/api/").unwrap();
        assert_eq!(api.as_str(), "/api");
        assert_eq!(api.segments(), 1);
        for (path, matches) in [("/api", true), ("/api/", true), ("/api/v1/x", true), ("/apix", false), ("/ap", false)]
        {
            assert_eq!(api.matches(path, None, false), matches, "{path}");
        }
        assert!(api.matches("/API/x", None, false));
        assert!(api.matches("/Api", None, false));
        assert!(!api.matches("/API/x", None, true));
        let root = PathPrefix::parse("/").unwrap();
        assert!(root.matches("/anything", None, true));
        assert_eq!(root.segments(), 0);
        for bad in ["api", "", "/a/../b", "/a//b", "/%7euser", "/a/./b", "/a%2Fb", "/a;b", "/a\\b", "/a%2fb"] {
            assert!(PathPrefix::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn encoded_prefixes_match_decoded_views_and_fold_unicode_case() {
        let p = PathPrefix::parse("/caf%C3%A9/a%20b").unwrap();
        assert_eq!(p.as_str(), "/caf%C3%A9/a%20b");
        assert!(p.matches("/café/a b/x", None, false));
        // A non-ASCII view is compared in its lowercased form.
        assert!(p.matches("/CAFÉ/A B", Some("/café/a b"), false));
        assert!(!p.matches("/CAFÉ/A B", Some("/café/a b"), true));
        assert!(!p.matches("/cafe/a b", None, false));
    }
}
