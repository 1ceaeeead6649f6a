//! From a request to a route and back out: matching on the normalized path,
//! `/t/{slug}/` tenant paths, and shaping the request sent upstream.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use pingora::{ErrorSource, ErrorType, Result};
use shared::domain::Slug;
use shared::jwt::{AssertionClaims, AssertionSigner};

use super::access::{Refusal, RequestFacts};
use super::identity_headers;
use super::RequestCtx;
use crate::routes::{normalize, tenant, Route, RouteTable, TenantSource};

/// 405 for a method the route does not allow.
pub const METHOD_NOT_ALLOWED: Refusal =
    Refusal::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not allow this method");

/// Where a request goes.
pub struct Target {
    /// The route.
    pub route: Arc<Route>,
    /// Path (and query) to send upstream.
    pub upstream_path: String,
    /// The Host name (no port), lowercase.
    pub host: String,
    /// The slug of a `/t/{slug}/` prefix, when the route resolves tenants by path.
    pub path_slug: Option<Slug>,
}

/// The Host of the request: the URI authority (HTTP/2, absolute form) or the header.
fn host_of(req: &RequestHeader) -> &str {
    req.uri.host().or_else(|| req.headers.get(http::header::HOST).and_then(|h| h.to_str().ok())).unwrap_or("")
}

/// Finds the route for `req`. A `/t/{slug}/rest` path is matched as `rest` when the
/// route found for `rest` resolves tenants by path; otherwise the whole path is
/// matched as it is.
///
/// # Errors
/// 400 for a path that cannot be normalized, 404 when no route matches.
pub fn resolve(table: &RouteTable, req: &RequestHeader) -> std::result::Result<Target, Refusal> {
    let host = tenant::host_name(host_of(req)).to_ascii_lowercase();
    let path = normalize(req.uri.path())
        .map_err(|_| Refusal::new(StatusCode::BAD_REQUEST, "invalid_path", "the request path is not acceptable"))?;
    let by_tenant_path = tenant::path_slug(&path).and_then(|(slug, rest)| {
        let found = table.match_request(&host, rest)?;
        found.route.tenant_from().contains(&TenantSource::Path).then_some((slug, found))
    });
    let (path_slug, found) = match by_tenant_path {
        Some((slug, found)) => (Some(slug), found),
        None => (None, table.match_request(&host, &path).ok_or(NOT_FOUND)?),
    };
    let mut upstream_path = found.upstream_path().to_owned();
    if let Some(query) = req.uri.query() {
        upstream_path.push('?');
        upstream_path.push_str(query);
    }
    Ok(Target { route: found.route.clone(), upstream_path, host, path_slug })
}

const NOT_FOUND: Refusal = Refusal::new(StatusCode::NOT_FOUND, "route_not_found", "no route matches this request");

/// The facts the access decision reads, taken before identity headers are stripped.
/// The tenant cookie (`tenant_cookie`) is read only for a request without
/// `Authorization` and without tenant headers to a header-mode route.
pub fn facts<'a>(req: &'a RequestHeader, target: &'a Target, tenant_cookie: &str) -> RequestFacts<'a> {
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let (header_tenant_id, header_tenant_slug) = (header("x-tenant-id"), header("x-tenant-slug"));
    let remembered_tenant = (header_tenant_id.is_none()
        && header_tenant_slug.is_none()
        && target.route.tenant_from().contains(&TenantSource::Header)
        && !req.headers.contains_key(http::header::AUTHORIZATION))
    .then(|| crate::portal::cookies::read(&req.headers, tenant_cookie))
    .flatten();
    RequestFacts {
        host: &target.host,
        path_slug: target.path_slug.as_ref(),
        header_tenant_id,
        header_tenant_slug,
        remembered_tenant,
    }
}

/// 429 with the wait rounded up to whole seconds.
pub fn rate_limited(wait: Duration) -> Refusal {
    let mut refusal = Refusal::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; slow down");
    refusal.retry_after = Some(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
    refusal
}

/// The status logged and counted for a request whose client hung up before the
/// answer was written (nginx's convention; never sent).
pub const CLIENT_CLOSED: StatusCode = match StatusCode::from_u16(499) {
    Ok(status) => status,
    Err(_) => StatusCode::BAD_REQUEST,
};

/// What to answer after proxying failed: nothing when the client hung up (`None`),
/// 400 for a request that could not be read, 504 when the upstream timed out, 502
/// for every other failure.
pub fn proxy_failure(e: &pingora::Error) -> Option<Refusal> {
    match (e.esource(), e.etype()) {
        (ErrorSource::Downstream, ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed) => None,
        (ErrorSource::Downstream, _) => {
            Some(Refusal::new(StatusCode::BAD_REQUEST, "invalid_request", "the request could not be read"))
        }
        (_, ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout) => {
            Some(Refusal::new(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", "the upstream did not answer in time"))
        }
        _ => Some(Refusal::new(StatusCode::BAD_GATEWAY, "bad_gateway", "the upstream is unavailable")),
    }
}

/// Rewrites the path, sets identity, request id, forwarding and route headers, and
/// the signed assertion when the route asks for one.
///
/// # Errors
/// When a header value is invalid.
pub fn prepare_upstream_request(
    session: &Session,
    upstream: &mut RequestHeader,
    ctx: &RequestCtx,
    assertions: Option<&AssertionSigner>,
) -> Result<()> {
    if let Ok(uri) = ctx.upstream_path.parse::<http::Uri>() {
        upstream.set_uri(uri);
    }
    // `upstream` is built from the request header `request_filter` already stripped
    // of client-sent identity headers and gave our `X-Request-Id`; route `headers`
    // may name neither.
    identity_headers::inject(upstream, &ctx.identity)?;
    if let Some(ip) = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip().to_string()) {
        let forwarded = match upstream.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(previous) => format!("{previous}, {ip}"),
            None => ip,
        };
        upstream.insert_header("x-forwarded-for", forwarded)?;
    }
    upstream.insert_header("x-forwarded-proto", "http")?;
    let Some(route) = &ctx.route else { return Ok(()) };
    for (name, value) in route.headers() {
        upstream.insert_header(name.clone(), value.clone())?;
    }
    if let (true, Some(signer)) = (route.signed_assertion(), assertions) {
        let identity = &ctx.identity;
        let claims = AssertionClaims {
            sub: identity.user.as_ref().map(|u| u.id),
            email: identity.user.as_ref().map(|u| u.email.clone()),
            tid: identity.tenant.as_ref().map(|t| t.id.to_string()),
            tslug: identity.tenant.as_ref().map(|t| t.slug.clone()),
            role: identity.role.map(|r| r.as_str().to_owned()),
            rid: ctx.request_id.clone(),
            iat: 0,
            exp: 0,
            iss: String::new(),
            aud: String::new(),
        };
        if let Ok(token) = signer.sign(claims) {
            upstream.insert_header("x-tenantgate-assertion", token)?;
        }
    }
    Ok(())
}
