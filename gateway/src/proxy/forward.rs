//! The request the app receives: the path in its canonical form, the gateway's
//! identity headers, forwarding headers the gateway wrote itself, the route's own
//! headers, the signed assertion, and none of the gateway's credentials.
//!
//! The upstream request is written without Pingora's header-case map. Pingora's
//! copy of the request keeps each name's original spelling in a second map, so
//! every header the gateway set cost a name parse and two map writes (~1,500
//! instructions: 9,400 per request for the identity headers alone). Header names
//! are case-insensitive in HTTP/1.1 (RFC 9110, 5.1) and lowercase in HTTP/2, so
//! the app receives standard names titled (`Content-Type`) and the others in
//! lowercase, whatever spelling the client used; every edit here is a plain
//! `http::HeaderMap` write with names built once.

use edge::credentials;
use http::request::Parts;
use http::{header, HeaderMap, HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::Result;
use shared::assertion::{Assertions, Subject};

use super::RequestCtx;
use super::{identity_headers, request_id};
use crate::routes::Route;
use crate::web_session::cookies::{CookiePolicy, CSRF_COOKIE};

/// Shapes `upstream` (Pingora's copy of the request) for the app: the spoofed
/// headers `request_filter` found are removed first.
///
/// # Errors
/// When a header value is invalid (identity values are validated at their source).
pub fn prepare_upstream_request(
    upstream: &mut RequestHeader,
    ctx: &RequestCtx,
    cookies: &CookiePolicy,
    assertions: &Assertions,
) -> Result<()> {
    let end_stream = upstream.send_end_stream();
    let mut parts = take_parts(upstream);
    let shaped = shape(&mut parts, ctx, cookies, assertions);
    // The path as the gateway authorized it (the request-target is the URI's).
    parts.uri = ctx.upstream_uri.clone();
    *upstream = RequestHeader::from(parts);
    if let Some(end_stream) = end_stream {
        upstream.set_send_end_stream(end_stream);
    }
    shaped
}

/// Edits the upstream's answer for the client with `edit`, on a plain header map
/// as for the upstream request: Pingora's copy of the answer keeps each name's
/// spelling in a second map, which made every header the gateway set cost a name
/// copy and two map writes. The client gets standard names titled and the others
/// lowercase; a custom reason phrase is kept.
///
/// # Errors
/// What `edit` returns.
pub fn prepare_response(response: &mut ResponseHeader, edit: impl FnOnce(&mut HeaderMap) -> Result<()>) -> Result<()> {
    let status = response.status;
    let reason = response.get_reason_phrase().filter(|r| Some(*r) != status.canonical_reason()).map(str::to_owned);
    let (empty, ()) = http::Response::new(()).into_parts();
    let mut parts = http::response::Parts::from(std::mem::replace(response, ResponseHeader::from(empty)));
    let edited = edit(&mut parts.headers);
    *response = ResponseHeader::from(parts);
    response.set_reason_phrase(reason.as_deref())?;
    edited
}

/// The request's parts, leaving an empty request behind (no allocation).
fn take_parts(upstream: &mut RequestHeader) -> Parts {
    let (empty, ()) = http::Request::new(()).into_parts();
    Parts::from(std::mem::replace(upstream, RequestHeader::from(empty)))
}

pub(super) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const ASSERTION: HeaderName = HeaderName::from_static(identity_headers::ASSERTION);

fn shape(parts: &mut Parts, ctx: &RequestCtx, cookies: &CookiePolicy, assertions: &Assertions) -> Result<()> {
    let headers = &mut parts.headers;
    identity_headers::remove(headers, &ctx.spoofed);
    // Room for what is added below, at once rather than by doubling.
    headers.reserve(ctx.identity.headers.len() + 3);
    // One id, replacing whatever (invalid, repeated) ids the client sent.
    headers.insert(request_id::HEADER, ctx.request_id.header());
    crate::memo::write(headers, &ctx.identity.headers);
    if let Some(client) = &ctx.client {
        headers.insert(X_FORWARDED_FOR, header_value(&client.forwarded_for)?);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(ctx.forwarded_proto));
    let forward_credentials = ctx.route.as_ref().is_some_and(|r| r.forward_credentials());
    if ctx.strip_authorization && !forward_credentials {
        headers.remove(header::AUTHORIZATION);
    }
    if ctx.strip_api_key && !forward_credentials {
        headers.remove(credentials::X_API_KEY);
    }
    strip_cookies(headers, cookies, forward_credentials);
    let Some(route) = &ctx.route else { return Ok(()) };
    for (name, value) in route.headers() {
        headers.insert(name.clone(), value.clone());
    }
    if route.signed_assertion() {
        let token = sign_assertion(&parts.method, ctx, route, assertions)?;
        parts.headers.insert(ASSERTION, header_value(&token)?);
    }
    Ok(())
}

/// A header value from text the gateway made or validated.
///
/// # Errors
/// When it holds a byte a header value may not.
pub(super) fn header_value(text: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(text)
        .map_err(|e| pingora::Error::because(pingora::ErrorType::InvalidHTTPHeader, "an upstream header value", e))
}

/// Adds `X-Tenantgate-Assertion`: who, which tenant and role, for this route's
/// app (`aud`) and this request (`htm`, `htu`: the method and the path the app
/// receives). A signing failure refuses the request rather than forwarding it
/// without the proof the route promised its app.
pub(super) fn sign_assertion(
    method: &http::Method,
    ctx: &RequestCtx,
    route: &Route,
    assertions: &Assertions,
) -> Result<String> {
    let identity = &ctx.identity;
    let subject = Subject {
        user: identity.user.as_ref().map(|u| (u.id, &u.email, u.email_verified)),
        api_key: identity.api_key.as_ref().map(|k| k.id),
        tenant: identity.tenant.as_ref().map(|t| (t.id, &t.slug)),
        role: identity.role,
    };
    assertions
        .sign(&subject, route.assertion_audience(), ctx.request_id.as_str(), method.as_str(), ctx.upstream_uri.path())
        .map_err(|e| pingora::Error::because(pingora::ErrorType::InternalError, "signing the assertion", e))
}

/// Removes the gateway's cookies from the `Cookie` header: the refresh cookie
/// always (apps never need it and must not be able to leak it), the access,
/// tenant and CSRF cookies unless the route forwards credentials.
fn strip_cookies(headers: &mut HeaderMap, cookies: &CookiePolicy, forward_credentials: bool) {
    let names: &[&str] = if forward_credentials {
        &[cookies.refresh.as_str()]
    } else {
        &[cookies.refresh.as_str(), cookies.access.as_str(), cookies.tenant.as_str(), CSRF_COOKIE]
    };
    let values = headers.get_all(header::COOKIE);
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
    headers.remove(header::COOKIE);
    if !kept.is_empty() {
        if let Ok(value) = HeaderValue::from_str(&kept.join("; ")) {
            headers.insert(header::COOKIE, value);
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
