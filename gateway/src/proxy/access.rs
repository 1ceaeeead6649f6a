//! The access decision for a proxied request: who is calling (JWT, in memory), which
//! tenant the request is for (by the route's `tenant_from` order) and whether the
//! caller's role there is enough. With warm caches this does no network I/O.

use std::sync::Arc;

use http::{header, HeaderMap, StatusCode};
use shared::cache::{Cache, CachedTenant, CachedUser};
use shared::domain::{Role, Slug, TenantId};
use shared::jwt::AccessTokens;

use crate::routes::{tenant, Requirement, Route, TenantSource};

/// Who is calling, for which tenant, with which role.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The authenticated user.
    pub user: Option<Arc<CachedUser>>,
    /// The resolved tenant.
    pub tenant: Option<Arc<CachedTenant>>,
    /// The user's role in it.
    pub role: Option<Role>,
}

/// Why a request is refused: the status, the error code (also the metrics reason)
/// and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: StatusCode,
    /// Error code.
    pub code: &'static str,
    /// Human text.
    pub message: &'static str,
    /// Seconds for `Retry-After` (429 only).
    pub retry_after: Option<u64>,
    /// Send `Connection: close` (after an upstream failure).
    pub close_connection: bool,
}

impl Refusal {
    /// A refusal without `Retry-After`.
    pub const fn new(status: StatusCode, code: &'static str, message: &'static str) -> Refusal {
        Refusal { status, code, message, retry_after: None, close_connection: false }
    }

    fn unauthorized(code: &'static str, message: &'static str) -> Refusal {
        Refusal::new(StatusCode::UNAUTHORIZED, code, message)
    }
}

const UNAVAILABLE: Refusal =
    Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", "authorization data is unavailable; retry");

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
}

/// Everything the decision reads. Shared by all requests.
pub struct AccessControl {
    /// JWT verification.
    pub tokens: AccessTokens,
    /// Users, tenants and roles.
    pub cache: Cache,
    /// Cookie name an access token may come in.
    pub access_cookie: String,
    /// `{slug}.{base_domain}` subdomains resolve tenants; empty disables that.
    pub base_domain: String,
}

/// The access token from `Authorization: Bearer` or else the access cookie.
pub fn access_token<'h>(headers: &'h HeaderMap, cookie_name: &str) -> Option<&'h str> {
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find_map(|c| if c.name_raw() == Some(cookie_name) { c.value_raw() } else { None })
        .filter(|t| !t.is_empty())
}

impl AccessControl {
    /// Decides whether `route` may serve a request with `headers` and `facts`.
    pub async fn decide(&self, route: &Route, headers: &HeaderMap, facts: &RequestFacts<'_>) -> Decision {
        match self.try_decide(route, headers, facts).await {
            Ok(identity) => Decision::Allow(identity),
            Err(refusal) => Decision::Deny(refusal),
        }
    }

    async fn try_decide(
        &self,
        route: &Route,
        headers: &HeaderMap,
        facts: &RequestFacts<'_>,
    ) -> Result<Identity, Refusal> {
        let user = self.authenticate(route, headers).await?;
        let tenant = self.resolve_tenant(route, facts).await?;
        let role = match (&user, &tenant) {
            (Some(user), Some(tenant)) => self.cache.role(user.id, tenant.id).await.map_err(|_| UNAVAILABLE)?,
            _ => None,
        };
        if let Some(min) = route.min_role() {
            match (&user, &tenant, role) {
                (None, _, _) => return Err(Refusal::unauthorized("missing_token", "this route needs an access token")),
                (Some(_), None, _) => {
                    return Err(Refusal::new(StatusCode::BAD_REQUEST, "tenant_required", "no tenant in this request"))
                }
                (Some(_), Some(_), None) => {
                    return Err(Refusal::new(
                        StatusCode::FORBIDDEN,
                        "not_a_member",
                        "you are not a member of this tenant",
                    ))
                }
                (Some(_), Some(_), Some(role)) if role < min => {
                    return Err(Refusal::new(
                        StatusCode::FORBIDDEN,
                        "insufficient_role",
                        "your role is not enough here",
                    ))
                }
                _ => {}
            }
        } else if let (Some(_), Some(_), None) = (&user, &tenant, role) {
            // A tenant-scoped route without a minimum role still needs membership.
            return Err(Refusal::new(StatusCode::FORBIDDEN, "not_a_member", "you are not a member of this tenant"));
        }
        Ok(Identity { user, tenant, role })
    }

    /// The caller, if any. A token that is present but bad is refused even on
    /// `auth = "optional"` routes: silently downgrading it would hide the problem.
    async fn authenticate(&self, route: &Route, headers: &HeaderMap) -> Result<Option<Arc<CachedUser>>, Refusal> {
        if route.auth() == Requirement::None {
            return Ok(None);
        }
        let Some(token) = access_token(headers, &self.access_cookie) else {
            return match route.auth() {
                Requirement::Required => {
                    Err(Refusal::unauthorized("missing_token", "this route needs an access token"))
                }
                _ => Ok(None),
            };
        };
        let claims = self.tokens.verify(token).map_err(|e| match e {
            shared::jwt::Error::Expired => Refusal::unauthorized("token_expired", "the access token has expired"),
            _ => Refusal::unauthorized("invalid_token", "the access token is not valid"),
        })?;
        let user = self.cache.user(claims.sub).await.map_err(|_| UNAVAILABLE)?;
        match user {
            Some(user) if user.token_version == claims.ver => {
                if route.require_verified_email() && !user.email_verified {
                    return Err(Refusal::new(StatusCode::FORBIDDEN, "email_not_verified", "verify your email first"));
                }
                Ok(Some(user))
            }
            _ => Err(Refusal::unauthorized("token_revoked", "the access token has been revoked")),
        }
    }

    /// The tenant, trying the route's sources in order. A source that names a tenant
    /// explicitly (subdomain, path, header) and names an unknown one is a 404; a
    /// Host that is no tenant's domain just moves on to the next source.
    async fn resolve_tenant(
        &self,
        route: &Route,
        facts: &RequestFacts<'_>,
    ) -> Result<Option<Arc<CachedTenant>>, Refusal> {
        if route.tenant() == Requirement::None {
            return Ok(None);
        }
        let mut found = None;
        for source in route.tenant_from() {
            let named = match source {
                TenantSource::Domain => {
                    // A Host that is no tenant's domain is not an error: try the next source.
                    match self.cache.tenant_by_domain(facts.host).await.map_err(|_| UNAVAILABLE)? {
                        Some(tenant) => {
                            found = Some(tenant);
                            break;
                        }
                        None => continue,
                    }
                }
                TenantSource::Subdomain if !self.base_domain.is_empty() => {
                    tenant::subdomain_slug(facts.host, &self.base_domain).map(|s| Named::Slug(s.as_str().to_owned()))
                }
                TenantSource::Subdomain => None,
                TenantSource::Path => facts.path_slug.as_ref().map(|s| Named::Slug(s.as_str().to_owned())),
                TenantSource::Header => match (facts.header_tenant_id, facts.header_tenant_slug) {
                    (Some(id), _) => Some(TenantId::parse(id).map_or(Named::Unknown, Named::Id)),
                    (None, Some(slug)) => Some(Named::Slug(slug.to_ascii_lowercase())),
                    (None, None) => None,
                },
            };
            if let Some(named) = named {
                found = Some(self.named_tenant(named).await?);
                break;
            }
        }
        if found.is_none() && route.tenant_from().contains(&TenantSource::Header) {
            if let Some(slug) = &facts.remembered_tenant {
                // A remembered tenant that no longer exists is forgotten, not a 404.
                found = self.cache.tenant_by_slug(&slug.to_ascii_lowercase()).await.map_err(|_| UNAVAILABLE)?;
            }
        }
        match found {
            Some(tenant) if !tenant.is_active => {
                Err(Refusal::new(StatusCode::FORBIDDEN, "tenant_inactive", "this tenant is deactivated"))
            }
            Some(tenant) => Ok(Some(tenant)),
            None if route.tenant() == Requirement::Required => {
                Err(Refusal::new(StatusCode::BAD_REQUEST, "tenant_required", "no tenant in this request"))
            }
            None => Ok(None),
        }
    }
}

/// A tenant the request names explicitly; unknown ones are a 404.
enum Named {
    Slug(String),
    Id(TenantId),
    Unknown,
}

impl AccessControl {
    async fn named_tenant(&self, named: Named) -> Result<Arc<CachedTenant>, Refusal> {
        let tenant = match named {
            Named::Slug(slug) => self.cache.tenant_by_slug(&slug).await,
            Named::Id(id) => self.cache.tenant(id).await,
            Named::Unknown => Ok(None),
        };
        tenant.map_err(|_| UNAVAILABLE)?.ok_or(Refusal::new(
            StatusCode::NOT_FOUND,
            "tenant_not_found",
            "no such tenant",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comes_from_bearer_then_cookie() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; tg_access=abc.def.ghi; b=2".parse().unwrap());
        assert_eq!(access_token(&h, "tg_access"), Some("abc.def.ghi"));
        assert_eq!(access_token(&h, "other"), None);
        h.insert(header::AUTHORIZATION, "Bearer xyz".parse().unwrap());
        assert_eq!(access_token(&h, "tg_access"), Some("xyz"));
        h.insert(header::AUTHORIZATION, "Basic xyz".parse().unwrap());
        assert_eq!(access_token(&h, "tg_access"), None);
    }
}
