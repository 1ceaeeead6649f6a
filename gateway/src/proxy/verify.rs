//! Forward-auth: `/auth/verify` tells a proxy in front of an app (nginx
//! `auth_request`, Traefik `ForwardAuth`, Caddy `forward_auth`, Envoy `ext_authz`)
//! whether the request it holds would be let through, and with which identity
//! headers: the same route table, tenant resolution, cache and decision as a
//! proxied request, on the original request rebuilt from what the proxy sends.
//!
//! Those forwarding headers say what the original request was, so they are
//! believed only from `GATEWAY_TRUSTED_PROXIES`; anyone else gets a 403. The
//! original path goes through the same normalization and ambiguity rules as a
//! proxied one (it is matched by the same `routing::resolve`).

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Method, StatusCode};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use pingora::Result;

use super::access::Refusal;
use super::{forward, request_id, respond, Gateway, RequestCtx};
use crate::error_code::ErrorCode;

/// The forward-auth endpoint; Envoy appends the original path to it.
pub const PATH: &str = "/auth/verify";

/// nginx `auth_request` (set in the documented snippet).
const ORIGINAL_URI: &str = "x-original-uri";
const ORIGINAL_METHOD: &str = "x-original-method";
/// Traefik `ForwardAuth`, Caddy `forward_auth`.
const FORWARDED_URI: &str = "x-forwarded-uri";
const FORWARDED_METHOD: &str = "x-forwarded-method";
const FORWARDED_HOST: &str = "x-forwarded-host";

/// Where an nginx snippet finds the login page to send a browser to (its
/// `error_page 401` can only follow a 401, not a 302).
pub const AUTH_REDIRECT: HeaderName = HeaderName::from_static("x-auth-redirect");
/// For nginx: the code and status of a refusal its `auth_request` cannot pass on.
const AUTH_ERROR: HeaderName = HeaderName::from_static("x-auth-error");
const AUTH_STATUS: HeaderName = HeaderName::from_static("x-auth-status");

/// Whether `path` is the forward-auth endpoint (or Envoy's form of it).
pub fn owns(path: &str) -> bool {
    path.strip_prefix(PATH).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The request the proxy asks about, and how it wants a browser redirect said.
pub struct Original {
    /// Method, target, `Host` and the client's other headers, as the app would
    /// have received them.
    pub req: RequestHeader,
    /// nginx: a redirect is a 401 with [`AUTH_REDIRECT`]; others get a 302.
    pub nginx: bool,
}

/// Rebuilds the original request from a forward-auth request: the method and
/// target from nginx's `X-Original-*`, Traefik's and Caddy's `X-Forwarded-*`, or
/// Envoy's path suffix; the host from `X-Forwarded-Host` or `Host`; every other
/// header as sent (credentials, cookies, tenant headers), without those.
///
/// # Errors
/// 400 `invalid_request` when the original request is not said once and clearly.
pub fn original(req: &RequestHeader) -> std::result::Result<Original, Refusal> {
    let nginx = req.headers.contains_key(ORIGINAL_URI);
    let (method, target) = if nginx {
        (one(req, ORIGINAL_METHOD)?, one(req, ORIGINAL_URI)?)
    } else if req.headers.contains_key(FORWARDED_URI) {
        (one(req, FORWARDED_METHOD)?, one(req, FORWARDED_URI)?)
    } else {
        // Envoy: `/auth/verify/app/x?y=1` asks about `/app/x?y=1`, same method.
        let suffix = req.uri.path().strip_prefix(PATH).filter(|s| !s.is_empty());
        let target = suffix.map(|path| match req.uri.query() {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        });
        (Some(req.method.as_str().to_owned()), target)
    };
    let bad = |why: &'static str| Refusal::new(ErrorCode::InvalidRequest, why);
    let target = target.filter(|t| t.starts_with('/')).ok_or(bad("the forward-auth request names no original path"))?;
    // Never a default: judging a DELETE by the GET rules would be a bypass.
    let method = method.ok_or(bad("the forward-auth request names no original method"))?;
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| bad("the original method is not a method"))?;
    let host = match one(req, FORWARDED_HOST)? {
        Some(host) => Some(host),
        None => req.headers.get(header::HOST).and_then(|v| v.to_str().ok()).map(str::to_owned),
    };
    let mut original = RequestHeader::build(method, target.as_bytes(), Some(req.headers.len()))
        .map_err(|_| bad("the original path is not a valid request target"))?;
    for (name, value) in &req.headers {
        if !is_forward_auth_header(name) {
            original.append_header(name.clone(), value.clone()).map_err(|_| bad("a header could not be copied"))?;
        }
    }
    if let Some(host) = host {
        original.insert_header(header::HOST, host).map_err(|_| bad("the original host is not a header value"))?;
    }
    Ok(Original { req: original, nginx })
}

/// The proxy's own headers about the original request (and the subrequest's
/// body framing), which the app would not have received.
fn is_forward_auth_header(name: &HeaderName) -> bool {
    [ORIGINAL_URI, ORIGINAL_METHOD, FORWARDED_URI, FORWARDED_METHOD, FORWARDED_HOST].contains(&name.as_str())
        || name == header::HOST
        || name == header::CONTENT_LENGTH
        || name == header::TRANSFER_ENCODING
}

/// The one value of `name`, if any; two values are two readings of the original
/// request, refused.
fn one(req: &RequestHeader, name: &str) -> std::result::Result<Option<String>, Refusal> {
    let mut values = req.headers.get_all(name).iter();
    let Some(first) = values.next() else { return Ok(None) };
    let text =
        first.to_str().map_err(|_| Refusal::new(ErrorCode::InvalidRequest, "a forward-auth header is not text"))?;
    if values.next().is_some() || text.contains(',') && name != ORIGINAL_URI && name != FORWARDED_URI {
        return Err(Refusal::new(ErrorCode::InvalidRequest, "a forward-auth header is sent twice"));
    }
    Ok(Some(text.trim().to_owned()))
}

impl Gateway {
    /// Answers a forward-auth request: 200 with the identity headers when the
    /// original request would be let through, else what the proxy would have
    /// answered (JSON 401/403..., or the login redirect for browsers).
    pub(super) async fn verify(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let trusted = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .is_some_and(|peer| self.trusted_proxies.contains(peer.ip()));
        if !trusted {
            return self.refuse(session, ctx, &Refusal::of(ErrorCode::UntrustedProxy)).await;
        }
        let original = match original(session.req_header()) {
            Ok(original) => original,
            Err(refusal) => return self.refuse(session, ctx, &refusal).await,
        };
        match self.admit(&original.req, ctx).await {
            Ok(()) => self.allow(session, ctx, &original.req).await,
            Err(refusal) => self.deny(session, ctx, &original, &refusal).await,
        }
    }

    /// Says no as the asking proxy understands it: a browser on a route that
    /// sends it to the login page gets a 302 there (Traefik, Caddy, Envoy pass it
    /// on), or for nginx, whose `auth_request` follows only 401 and 403, a 401 with
    /// the page in `X-Auth-Redirect` (its `error_page 401` redirects); any other
    /// refusal is the JSON error, for nginx as a 403 carrying the real code and
    /// status in headers.
    async fn deny(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        original: &Original,
        refusal: &Refusal,
    ) -> Result<bool> {
        let location = self.browser_redirect(&original.req, refusal);
        match location {
            Some(location) if !original.nginx => return self.redirect(session, ctx, &location).await,
            Some(location) if refusal.status() == StatusCode::UNAUTHORIZED => {
                let page = HeaderValue::from_str(&location).map_err(|e| {
                    pingora::Error::because(
                        pingora::ErrorType::InternalError,
                        "the login page is not a header value",
                        e,
                    )
                })?;
                return self.refuse_with(session, ctx, refusal, vec![(AUTH_REDIRECT, page)]).await;
            }
            _ => {}
        }
        let status = refusal.status();
        if original.nginx && status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
            let extra = vec![
                (AUTH_ERROR, HeaderValue::from_static(refusal.code.as_str())),
                (AUTH_STATUS, HeaderValue::from(status.as_u16())),
            ];
            return self.refuse_with(session, ctx, &Refusal::of(ErrorCode::ForwardAuthDenied), extra).await;
        }
        self.refuse(session, ctx, refusal).await
    }

    /// 200, with the identity headers the app is to get (and the assertion on
    /// routes that sign one), plus any session cookies a silent refresh set.
    async fn allow(&self, session: &mut Session, ctx: &mut RequestCtx, original: &RequestHeader) -> Result<bool> {
        let mut headers = http::HeaderMap::new();
        crate::memo::write(&mut headers, &ctx.identity.headers);
        if let Some(route) = ctx.route.clone().filter(|r| r.signed_assertion()) {
            let token = forward::sign_assertion(&original.method, ctx, &route, &self.assertions)?;
            headers.insert(HeaderName::from_static(super::identity_headers::ASSERTION), forward::header_value(&token)?);
        }
        let mut answer = ResponseHeader::build(StatusCode::OK, Some(headers.len() + 3 + ctx.set_cookies.len()))?;
        for (name, value) in &headers {
            answer.append_header(name.clone(), value.clone())?;
        }
        answer.insert_header(request_id::HEADER, ctx.request_id.header())?;
        answer.insert_header(header::CACHE_CONTROL, "no-store")?;
        for cookie in ctx.set_cookies.drain(..) {
            answer.append_header(header::SET_COOKIE, cookie)?;
        }
        respond::write_full(session, answer, Bytes::new()).await?;
        ctx.status = Some(StatusCode::OK);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
        for (k, v) in headers {
            req.append_header(k.to_string(), *v).unwrap();
        }
        req
    }

    #[test]
    fn each_proxy_s_way_of_saying_the_original_request_is_read() {
        let nginx = original(&request(
            "/auth/verify",
            &[
                ("host", "app.test"),
                ("x-original-uri", "/app/x?y=1"),
                ("x-original-method", "DELETE"),
                ("cookie", "a=b"),
            ],
        ))
        .unwrap();
        assert!(nginx.nginx);
        assert_eq!((nginx.req.method.as_str(), nginx.req.uri.to_string().as_str()), ("DELETE", "/app/x?y=1"));
        assert_eq!(nginx.req.headers["host"], "app.test");
        assert_eq!(nginx.req.headers["cookie"], "a=b");
        assert!(!nginx.req.headers.contains_key("x-original-uri"));

        let traefik = original(&request(
            "/auth/verify",
            &[
                ("host", "gateway.internal"),
                ("x-forwarded-host", "shop.test"),
                ("x-forwarded-uri", "/app/y"),
                ("x-forwarded-method", "POST"),
            ],
        ))
        .unwrap();
        assert!(!traefik.nginx);
        assert_eq!((traefik.req.method.as_str(), traefik.req.uri.path()), ("POST", "/app/y"));
        assert_eq!(traefik.req.headers["host"], "shop.test");

        let envoy = original(&request("/auth/verify/app/z?q=1", &[("host", "shop.test")])).unwrap();
        assert_eq!((envoy.req.method.as_str(), envoy.req.uri.to_string().as_str()), ("GET", "/app/z?q=1"));
    }

    #[test]
    fn an_unclear_original_request_is_refused() {
        for headers in [
            vec![],
            vec![("x-original-uri", "app/x")],
            vec![("x-original-uri", "/a"), ("x-original-uri", "/b")],
            vec![("x-forwarded-uri", "/a"), ("x-forwarded-host", "a.test"), ("x-forwarded-host", "b.test")],
            vec![("x-forwarded-uri", "/a"), ("x-forwarded-host", "a.test, b.test")],
            vec![("x-original-uri", "/a"), ("x-original-method", "GE T")],
            vec![("x-original-uri", "/a")],
            vec![("x-forwarded-uri", "/a"), ("x-forwarded-host", "a.test")],
        ] {
            let refused = original(&request("/auth/verify", &headers)).err();
            assert_eq!(refused.map(|r| r.code), Some(ErrorCode::InvalidRequest), "{headers:?}");
        }
        assert!(owns("/auth/verify") && owns("/auth/verify/app") && !owns("/auth/verifyx"));
    }
}
