//! The access decision for a proxied request: who is calling (a user's JWT,
//! checked in memory, or a tenant API key), which tenant the request is for (by
//! the route's `tenant_from` order; an API key's own tenant when it names none)
//! and whether the caller's role there is enough. With warm caches this does no
//! network I/O.

use std::sync::Arc;

use edge::credentials::{self, Presented};
use http::{header, HeaderMap, StatusCode};
use shared::cache::{Cache, CachedApiKey, CachedTenant, CachedUser, Principal, Stamp};
use shared::domain::{DomainName, Role, Slug, TenantId};
use shared::jwt::AccessTokens;

use super::identity_headers::{self, HeaderBlock};
use super::key_guard::KeyGuard;
use crate::error_code::ErrorCode;
use crate::key_uses::KeyUses;
use crate::memo::{DecisionMemo, Inputs};
use crate::metrics::MemoCounters;
use crate::routes::{tenant, Requirement, Route, TenantSource};

/// Who is calling, for which tenant, with which role.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The authenticated user.
    pub user: Option<Arc<CachedUser>>,
    /// The API key that authenticated the request instead (never both).
    pub api_key: Option<Arc<CachedApiKey>>,
    /// The resolved tenant.
    pub tenant: Option<Arc<CachedTenant>>,
    /// The user's role in it.
    pub role: Option<Role>,
    /// The access token came (also) in the gateway's cookie: the CSRF check applies.
    pub via_cookie: bool,
    /// The gateway's token came in `Authorization`: it is removed before
    /// forwarding unless the route forwards credentials.
    pub via_header: bool,
    /// An API key came in `X-Api-Key`: removed likewise.
    pub via_api_key_header: bool,
    /// When the access token (or API key) expires (Unix seconds), if one
    /// authenticated; `i64::MAX` for a key without expiry.
    pub expires_at: Option<i64>,
    /// The identity headers the route's app receives, built once per decision
    /// (and kept with it in the memo).
    pub headers: HeaderBlock,
}

/// Why a request is refused: the status, the error code (also the metrics reason)
/// and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Error code (and with it the status).
    pub code: ErrorCode,
    /// Human text.
    pub message: &'static str,
    /// Seconds for `Retry-After` (429 only).
    pub retry_after: Option<u64>,
    /// Send `Connection: close` (after an upstream failure).
    pub close_connection: bool,
    /// The tenant the refused request was for, when it exists (metrics only).
    pub tenant: Option<Arc<str>>,
}

impl Refusal {
    /// `code` with its own message, without `Retry-After`.
    pub const fn new(code: ErrorCode, message: &'static str) -> Refusal {
        Refusal { code, message, retry_after: None, close_connection: false, tenant: None }
    }

    /// `code` with its default message.
    pub const fn of(code: ErrorCode) -> Refusal {
        Refusal::new(code, code.message())
    }

    /// The same refusal, counted for `tenant` in the metrics.
    #[must_use]
    pub fn for_tenant(self, tenant: &CachedTenant) -> Refusal {
        Refusal { tenant: Some(Arc::from(tenant.slug.as_str())), ..self }
    }

    /// 429 with the wait rounded up to whole seconds.
    #[must_use]
    pub fn rate_limited(wait: std::time::Duration) -> Refusal {
        let mut refusal = Refusal::new(ErrorCode::RateLimited, "too many requests; slow down");
        refusal.retry_after = Some(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
        refusal
    }

    /// The HTTP status: the code's.
    #[must_use]
    pub const fn status(&self) -> StatusCode {
        self.code.status()
    }
}

const UNAVAILABLE: Refusal = Refusal::new(ErrorCode::ServiceUnavailable, "authorization data is unavailable; retry");

/// The outcome.
#[derive(Debug)]
pub enum Decision {
    /// Forward, with this identity.
    Allow(Identity),
    /// Refuse.
    Deny(Refusal),
}

/// The request facts the decision needs, read before identity headers are stripped.
#[derive(Debug, Default)]
pub struct RequestFacts<'a> {
    /// Host, without port, lowercase.
    pub host: &'a str,
    /// A slug from a `/t/{slug}/` path prefix, when the route resolves by path.
    pub path_slug: Option<&'a Slug>,
    /// `X-Tenant-Id`, as sent.
    pub header_tenant_id: Option<&'a str>,
    /// `X-Tenant-Slug`, as sent.
    pub header_tenant_slug: Option<&'a str>,
    /// The tenant chosen in the login portal (its cookie), for a cookie-authenticated
    /// request to a route that resolves tenants by header but sent none. Tried
    /// after every other source.
    pub remembered_tenant: Option<&'a str>,
    /// The client's address (for [`KeyGuard`]; not an input of the decision).
    pub client_ip: Option<std::net::IpAddr>,
}

/// A remembered decision: the identity and the generations it was made at.
pub type Memoized = (Identity, Stamp);

/// Everything the decision reads. Shared by all requests.
pub struct AccessControl {
    /// JWT verification.
    pub tokens: AccessTokens,
    /// Users, tenants and roles.
    pub cache: Cache,
    /// Cookie name an access token may come in.
    pub access_cookie: String,
    /// `{slug}.{base_domain}` subdomains resolve tenants; `None` (no
    /// `GATEWAY_BASE_DOMAIN`) disables that: no host is a tenant subdomain then.
    pub base_domain: Option<DomainName>,
    /// Allowed decisions of warm (token, route, tenant facts).
    pub memo: DecisionMemo<Memoized>,
    /// `tenantgate_decision_memo_total{result}`.
    pub memo_counters: MemoCounters,
    /// Uses of API keys, written off the request path.
    pub key_uses: Arc<KeyUses>,
    /// Failed API keys per client.
    pub key_guard: KeyGuard,
}

/// Who an accepted credential is.
#[derive(Debug, Clone, Default)]
enum Caller {
    /// Nobody (no credential, on a route that allows that).
    #[default]
    Anonymous,
    /// A user, by access token.
    User(Arc<CachedUser>),
    /// A tenant API key.
    ApiKey(Arc<CachedApiKey>),
}

/// An accepted credential: who, where it came from, until when.
#[derive(Debug, Clone, Default)]
struct Authenticated {
    caller: Caller,
    cookie: bool,
    header: bool,
    api_key_header: bool,
    expires_at: Option<i64>,
}

/// 401 for an API key that is not (or no longer) one: unknown, revoked or a
/// wrong secret, told apart to nobody.
const INVALID_API_KEY: Refusal = Refusal::new(ErrorCode::InvalidToken, "the API key is not valid");

/// 403 for an API key used for a tenant other than its own.
const FOREIGN_API_KEY: Refusal = Refusal::of(ErrorCode::ApiKeyWrongTenant);

/// 400 when the request names two different tenants.
pub const TENANT_CONFLICT: Refusal = Refusal::of(ErrorCode::TenantConflict);

/// 400 for a request whose credentials could be read two ways.
const AMBIGUOUS_CREDENTIALS: Refusal = Refusal::of(ErrorCode::AmbiguousCredentials);

impl AccessControl {
    /// Decides whether `route` may serve a request with `headers` and `facts`:
    /// from the memo when this (token, route, tenant facts) was allowed before and
    /// nothing it depends on changed since (see [`crate::memo`]), else from the
    /// cache, remembering an allow.
    pub async fn decide(&self, route: &Route, headers: &HeaderMap, facts: &RequestFacts<'_>) -> Decision {
        let presented = match self.presented(route, headers) {
            Ok(presented) => presented,
            Err(refusal) => return Decision::Deny(refusal),
        };
        let inputs = Inputs {
            route: route.id(),
            token: presented.as_ref(),
            host: facts.host,
            path_slug: facts.path_slug,
            header_tenant_id: facts.header_tenant_id,
            header_tenant_slug: facts.header_tenant_slug,
            remembered_tenant: facts.remembered_tenant,
        };
        let key = match self.memo.get(&inputs, |(_, stamp)| self.cache.is_current(stamp)) {
            Ok((identity, _)) => {
                self.memo_counters.hit.inc();
                return Decision::Allow(identity);
            }
            Err(key) => key,
        };
        self.memo_counters.miss.inc();
        let begun = self.cache.begin();
        // Boxed: the miss path's state (cache lookups) stays out of the future
        // every request moves, which a hit then never pays for.
        match Box::pin(self.try_decide(route, presented.as_ref(), facts)).await {
            Ok(identity) => {
                // Only a verified token's decisions are kept: anonymous ones cost
                // little to make, and must not let anyone fill the memo.
                let remembered = match (&identity.user, &identity.api_key, identity.expires_at) {
                    (Some(user), _, Some(exp)) => Some((Principal::User(user.id), shared::jwt::accepted_until(exp))),
                    // A key's last accepted second is the one before its expiry.
                    (_, Some(api_key), Some(exp)) => Some((Principal::ApiKey(&api_key.public_id), exp - 1)),
                    _ => None,
                };
                if let (Some(key), Some((who, until))) = (key, remembered) {
                    let tenant = identity.tenant.as_ref().map(|t| t.id);
                    if let Some(stamp) = self.cache.stamp(begun, Some(who), tenant) {
                        self.memo.insert(key, (identity.clone(), stamp), until);
                    }
                }
                Decision::Allow(identity)
            }
            Err(refusal) => Decision::Deny(refusal),
        }
    }

    /// Decides without the memo, remembering nothing: for a request decided again
    /// with a token it did not send (a silent refresh), whose inputs no later
    /// request repeats.
    pub async fn decide_once(&self, route: &Route, headers: &HeaderMap, facts: &RequestFacts<'_>) -> Decision {
        let presented = match self.presented(route, headers) {
            Ok(presented) => presented,
            Err(refusal) => return Decision::Deny(refusal),
        };
        match self.try_decide(route, presented.as_ref(), facts).await {
            Ok(identity) => Decision::Allow(identity),
            Err(refusal) => Decision::Deny(refusal),
        }
    }

    /// The access token the request presents, on a route that looks at one.
    fn presented<'h>(&'h self, route: &Route, headers: &'h HeaderMap) -> Result<Option<Presented<'h>>, Refusal> {
        if route.auth() == Requirement::None {
            return Ok(None);
        }
        credentials::access_token(headers, &self.access_cookie).map_err(|_| AMBIGUOUS_CREDENTIALS)
    }

    async fn try_decide(
        &self,
        route: &Route,
        presented: Option<&Presented<'_>>,
        facts: &RequestFacts<'_>,
    ) -> Result<Identity, Refusal> {
        let authenticated = self.authenticate(route, presented, facts.client_ip).await?;
        let tenant = match &authenticated.caller {
            // A key acts in its own tenant only; a request that names none is for it.
            Caller::ApiKey(key) => {
                let facts = RequestFacts { remembered_tenant: None, ..*facts };
                match self.requested_tenant(route, &facts).await? {
                    Some(named) if named.id != key.tenant_id => return Err(FOREIGN_API_KEY.for_tenant(&named)),
                    Some(named) => Some(named),
                    None => {
                        Some(self.cache.tenant(key.tenant_id).await.map_err(|_| UNAVAILABLE)?.ok_or(INVALID_API_KEY)?)
                    }
                }
            }
            _ => self.requested_tenant(route, facts).await?,
        };
        let tenant = match tenant {
            Some(tenant) if !tenant.is_active => return Err(Refusal::of(ErrorCode::TenantInactive)),
            None if route.tenant() == Requirement::Required => return Err(Refusal::of(ErrorCode::TenantRequired)),
            tenant => tenant,
        };
        let role = match (&authenticated.caller, &tenant) {
            (Caller::User(user), Some(tenant)) => self.cache.role(user.id, tenant.id).await.map_err(|_| UNAVAILABLE)?,
            (Caller::ApiKey(key), Some(_)) => Some(key.role),
            _ => None,
        };
        let authenticated_caller = !matches!(authenticated.caller, Caller::Anonymous);
        if let Some(min) = route.min_role() {
            match (authenticated_caller, &tenant, role) {
                (false, _, _) => return Err(Refusal::new(ErrorCode::MissingToken, "this route needs an access token")),
                (true, None, _) => return Err(Refusal::of(ErrorCode::TenantRequired)),
                (true, Some(t), None) => return Err(Refusal::of(ErrorCode::NotAMember).for_tenant(t)),
                (true, Some(t), Some(role)) if role < min => {
                    return Err(Refusal::of(ErrorCode::InsufficientRole).for_tenant(t))
                }
                _ => {}
            }
        } else if let (true, Some(t), None) = (authenticated_caller, &tenant, role) {
            // A tenant-scoped route without a minimum role still needs membership.
            return Err(Refusal::of(ErrorCode::NotAMember).for_tenant(t));
        }
        let (user, api_key) = match authenticated.caller {
            Caller::Anonymous => (None, None),
            Caller::User(user) => (Some(user), None),
            Caller::ApiKey(key) => (None, Some(key)),
        };
        let actor = match (&user, &api_key) {
            (Some(user), _) => Some(identity_headers::Actor::User(user)),
            (_, Some(key)) => Some(identity_headers::Actor::ApiKey(key)),
            _ => None,
        };
        let headers = identity_headers::block(actor, tenant.as_deref(), role, route.identity_headers())
            .ok_or(Refusal::new(ErrorCode::InternalError, "an identity value is not a valid header value"))?;
        Ok(Identity {
            user,
            api_key,
            tenant,
            role,
            via_cookie: authenticated.cookie,
            via_header: authenticated.header,
            via_api_key_header: authenticated.api_key_header,
            expires_at: authenticated.expires_at,
            headers,
        })
    }

    /// The caller, if any, and where the credential came from. A credential that
    /// is present but bad is refused even on `auth = "optional"` routes: silently
    /// downgrading it would hide the problem.
    async fn authenticate(
        &self,
        route: &Route,
        presented: Option<&Presented<'_>>,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<Authenticated, Refusal> {
        if route.auth() == Requirement::None {
            return Ok(Authenticated::default());
        }
        let Some(presented) = presented else {
            return match route.auth() {
                Requirement::Required => Err(Refusal::new(ErrorCode::MissingToken, "this route needs an access token")),
                _ => Ok(Authenticated::default()),
            };
        };
        let source = |caller, expires_at| Authenticated {
            caller,
            cookie: presented.in_cookie,
            header: presented.in_header,
            api_key_header: presented.in_api_key,
            expires_at: Some(expires_at),
        };
        if credentials::is_api_key(presented.token) {
            let key = self.api_key(presented, client_ip).await?;
            let expires_at = key.expires_at.unwrap_or(i64::MAX);
            return Ok(source(Caller::ApiKey(key), expires_at));
        }
        let claims = self.tokens.verify(presented.token).map_err(|e| match e {
            shared::jwt::Error::Expired => Refusal::new(ErrorCode::TokenExpired, "the access token has expired"),
            _ => Refusal::new(ErrorCode::InvalidToken, "the access token is not valid"),
        })?;
        let user = self.cache.user(claims.sub).await.map_err(|_| UNAVAILABLE)?;
        match user {
            Some(user) if user.token_version == claims.ver => {
                if route.require_verified_email() && !user.email_verified {
                    return Err(Refusal::of(ErrorCode::EmailNotVerified));
                }
                Ok(source(Caller::User(user), claims.exp))
            }
            _ => Err(Refusal::new(ErrorCode::TokenRevoked, "the access token has been revoked")),
        }
    }

    /// The live API key `presented` is: its public id finds it (cached like
    /// roles), its secret's hash must match in constant time, and it must not
    /// have expired. Keys are for machines: never taken from a cookie. A client
    /// that keeps presenting keys that are none is refused before the lookup
    /// ([`KeyGuard`]).
    async fn api_key(
        &self,
        presented: &Presented<'_>,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<Arc<CachedApiKey>, Refusal> {
        if presented.in_cookie {
            return Err(Refusal::new(ErrorCode::InvalidToken, "an API key is not accepted in a cookie"));
        }
        self.key_guard.admit(client_ip).map_err(Refusal::rate_limited)?;
        let failed = || {
            self.key_guard.failed(client_ip);
            INVALID_API_KEY
        };
        let parsed = shared::api_key::Presented::parse(presented.token).ok_or_else(failed)?;
        let key = self.cache.api_key(parsed.public_id).await.map_err(|_| UNAVAILABLE)?;
        let key = key.filter(|key| parsed.matches(&key.secret_hash)).ok_or_else(failed)?;
        if !key.is_live_at(chrono::Utc::now().timestamp()) {
            return Err(Refusal::new(ErrorCode::TokenExpired, "the API key has expired"));
        }
        Ok(key)
    }

    /// Whether `Authorization` carries a token this gateway issued, on a route that
    /// does not authenticate (where [`AccessControl::decide`] did not look): such a
    /// token is kept from the app all the same.
    pub fn is_own_bearer(&self, headers: &HeaderMap) -> bool {
        // Every value: an app may read any of several Authorization headers.
        let mut tokens = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(credentials::bearer);
        tokens.any(|token| {
            credentials::is_api_key(token) || (token.split('.').count() == 3 && self.tokens.verify(token).is_ok())
        })
    }

    /// The tenant the request names. Every source the route reads is looked at,
    /// and when two of them name different tenants the request is refused
    /// (`tenant_conflict`), never settled by order: an app that reads another
    /// source would act for another tenant. A source that names a tenant
    /// explicitly (subdomain, path, header) and names an unknown one is a 404; a
    /// Host that is no tenant's domain names none. The tenant remembered by the
    /// portal's cookie counts only when no source names one. Whether the route
    /// needs one, and whether it is active, is the caller's to check.
    async fn requested_tenant(
        &self,
        route: &Route,
        facts: &RequestFacts<'_>,
    ) -> Result<Option<Arc<CachedTenant>>, Refusal> {
        if route.tenant() == Requirement::None {
            return Ok(None);
        }
        let mut found: Option<Arc<CachedTenant>> = None;
        let mut agree = |tenant: Arc<CachedTenant>| match &found {
            Some(seen) if seen.id != tenant.id => Err(TENANT_CONFLICT),
            _ => {
                found = Some(tenant);
                Ok(())
            }
        };
        for source in route.tenant_from() {
            let named = match source {
                TenantSource::Domain => {
                    if let Some(tenant) = self.cache.tenant_by_domain(facts.host).await.map_err(|_| UNAVAILABLE)? {
                        agree(tenant)?;
                    }
                    continue;
                }
                TenantSource::Subdomain => self
                    .base_domain
                    .as_ref()
                    .and_then(|base| tenant::subdomain_slug(facts.host, base))
                    .map(|s| vec![Named::Slug(s)]),
                TenantSource::Path => facts.path_slug.map(|s| vec![Named::Slug(s.clone())]),
                TenantSource::Header => {
                    let id = facts.header_tenant_id.map(|id| TenantId::parse(id).map_or(Named::Unknown, Named::Id));
                    // A header that is no slug names no tenant (404), without a lookup.
                    let slug = facts
                        .header_tenant_slug
                        .map(|raw| Slug::parse(&raw.to_ascii_lowercase()).map_or(Named::Unknown, Named::Slug));
                    Some(id.into_iter().chain(slug).collect())
                }
            };
            for named in named.unwrap_or_default() {
                agree(self.named_tenant(named).await?)?;
            }
        }
        if found.is_none() && route.tenant_from().contains(&TenantSource::Header) {
            if let Some(slug) = &facts.remembered_tenant {
                // A remembered tenant that no longer exists is forgotten, not a 404.
                found = self.cache.tenant_by_slug(&slug.to_ascii_lowercase()).await.map_err(|_| UNAVAILABLE)?;
            }
        }
        Ok(found)
    }
}

/// A tenant the request names explicitly; unknown ones are a 404.
enum Named {
    Slug(Slug),
    Id(TenantId),
    Unknown,
}

impl AccessControl {
    async fn named_tenant(&self, named: Named) -> Result<Arc<CachedTenant>, Refusal> {
        let tenant = match named {
            Named::Slug(slug) => self.cache.tenant_by_slug(slug.as_str()).await,
            Named::Id(id) => self.cache.tenant(id).await,
            Named::Unknown => Ok(None),
        };
        tenant.map_err(|_| UNAVAILABLE)?.ok_or(Refusal::new(ErrorCode::TenantNotFound, "no such tenant"))
    }
}
