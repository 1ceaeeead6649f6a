//! The request the app receives: the path in its canonical form, the gateway's
//! identity headers, forwarding headers the gateway wrote itself, the route's own
//! headers, the signed assertion, and none of the gateway's credentials.

use http::header;
use pingora::http::RequestHeader;
use pingora::Result;
use shared::jwt::{AssertionClaims, AssertionSigner};

use super::identity_headers;
use super::RequestCtx;
use crate::portal::cookies::{CookiePolicy, CSRF_COOKIE};

/// Shapes `upstream` (Pingora's copy of the request, already stripped of spoofed
/// headers in `request_filter`) for the app.
///
/// # Errors
/// When a header value is invalid (identity values are validated at their source).
pub fn prepare_upstream_request(
    upstream: &mut RequestHeader,
    ctx: &RequestCtx,
    cookies: &CookiePolicy,
    assertions: Option<&AssertionSigner>,
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
