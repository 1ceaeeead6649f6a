//! The request the app receives: the path in its canonical form, the gateway's
//! identity headers, forwarding headers the gateway wrote itself, the route's own
//! headers, the signed assertion, and none of the gateway's credentials.

use http::header;
use pingora::http::RequestHeader;
use pingora::Result;
use shared::assertion::{Assertions, Subject};

use super::identity_headers;
use super::RequestCtx;
use crate::routes::Route;
use crate::web_session::cookies::{CookiePolicy, CSRF_COOKIE};

/// Shapes `upstream` (Pingora's copy of the request, already stripped of spoofed
/// headers in `request_filter`) for the app.
///
/// # Errors
/// When a header value is invalid (identity values are validated at their source).
pub fn prepare_upstream_request(
    upstream: &mut RequestHeader,
    ctx: &RequestCtx,
    cookies: &CookiePolicy,
    assertions: &Assertions,
) -> Result<()> {
    upstream.set_uri(ctx.upstream_uri.clone());
    identity_headers::inject(upstream, &ctx.identity)?;
    if let Some(client) = &ctx.client {
        upstream.insert_header("x-forwarded-for", client.forwarded_for.as_str())?;
    }
    upstream.insert_header("x-forwarded-proto", ctx.forwarded_proto)?;
    let forward_credentials = ctx.route.as_ref().is_some_and(|r| r.forward_credentials());
    if ctx.strip_authorization && !forward_credentials {
        upstream.remove_header(&header::AUTHORIZATION);
    }
    strip_cookies(upstream, cookies, forward_credentials);
    let Some(route) = &ctx.route else { return Ok(()) };
    for (name, value) in route.headers() {
        upstream.insert_header(name.clone(), value.clone())?;
    }
    if route.signed_assertion() {
        sign_assertion(upstream, ctx, route, assertions)?;
    }
    Ok(())
}

/// Adds `X-Tenantgate-Assertion`: who, which tenant and role, for this route's
/// app (`aud`) and this request (`htm`, `htu`: the method and the path the app
/// receives). A signing failure refuses the request rather than forwarding it
/// without the proof the route promised its app.
fn sign_assertion(
    upstream: &mut RequestHeader,
    ctx: &RequestCtx,
    route: &Route,
    assertions: &Assertions,
) -> Result<()> {
    let identity = &ctx.identity;
    let subject = Subject {
        user: identity.user.as_ref().map(|u| (u.id, &u.email, u.email_verified)),
        tenant: identity.tenant.as_ref().map(|t| (t.id, &t.slug)),
        role: identity.role,
    };
    let method = upstream.method.as_str();
    let token = assertions
        .sign(&subject, route.assertion_audience(), &ctx.request_id, method, ctx.upstream_uri.path())
        .map_err(|e| pingora::Error::because(pingora::ErrorType::InternalError, "signing the assertion", e))?;
    upstream.insert_header(identity_headers::ASSERTION, token)?;
    Ok(())
}

/// Removes the gateway's cookies from the `Cookie` header: the refresh cookie
/// always (apps never need it and must not be able to leak it), the access,
/// tenant and CSRF cookies unless the route forwards credentials.
fn strip_cookies(upstream: &mut RequestHeader, cookies: &CookiePolicy, forward_credentials: bool) {
    let names: &[&str] = if forward_credentials {
        &[cookies.refresh.as_str()]
    } else {
        &[cookies.refresh.as_str(), cookies.access.as_str(), cookies.tenant.as_str(), CSRF_COOKIE]
    };
    let values = upstream.headers.get_all(header::COOKIE);
    let carries = values.iter().any(|v| {
        let text = String::from_utf8_lossy(v.as_bytes());
        names.iter().any(|n| text.contains(n))
    });
    if !carries {
        return;
    }
    let kept: Vec<String> = values
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && !names.contains(&pair.split('=').next().unwrap_or("").trim()))
        .map(str::to_owned)
        .collect();
    upstream.remove_header(&header::COOKIE);
    if !kept.is_empty() {
        if let Ok(value) = http::HeaderValue::from_str(&kept.join("; ")) {
            let _ = upstream.insert_header(header::COOKIE, value);
        }
    }
}

/// Whether an upstream `Set-Cookie` value sets one of the gateway's cookies (an
/// app must not plant or overwrite a session).
pub fn sets_gateway_cookie(value: &http::HeaderValue, cookies: &CookiePolicy) -> bool {
    let text = String::from_utf8_lossy(value.as_bytes());
    let name = text.split(['=', ';']).next().unwrap_or("").trim();
    [cookies.access.as_str(), cookies.refresh.as_str(), cookies.tenant.as_str(), CSRF_COOKIE]
        .iter()
        .any(|own| name.eq_ignore_ascii_case(own))
}
