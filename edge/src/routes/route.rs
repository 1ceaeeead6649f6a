//! A route as the proxy uses it. Every field has been checked by the loader, so the
//! hooks read it without re-validating: a [`Route`] is only built by
//! [`super::RouteTable::load`] or [`super::RouteTable::parse`].

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use shared::domain::Role;

use super::host::HostPattern;
use super::identity::IdentityHeaders;
use super::lookup::PathLookup;
use super::policy::{EncodedSlashes, OnUnauthenticated, RateLimit, Requirement, TenantSource};
use super::prefix::PathPrefix;
use super::rule::Rule;
use super::upstream::{Upstream, UpstreamTls};

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
