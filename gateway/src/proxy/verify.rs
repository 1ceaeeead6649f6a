//! Forward-auth: `/auth/verify` tells a proxy in front of an app (nginx
//! `auth_request`, Traefik `ForwardAuth`, Caddy `forward_auth`, Envoy `ext_authz`)
//! whether the request it holds would be let through, and with which identity
//! headers: the same route table, tenant resolution, cache and decision as a
//! proxied request, on the original request rebuilt from what the proxy sends.
//!
//! Each proxy has its own endpoint, so which headers describe the original
//! request is never guessed from the headers themselves (a client can add the
//! other proxy's): `/auth/verify` reads Traefik's and Caddy's `X-Forwarded-*`,
//! `/auth/verify/nginx` nginx's `X-Original-*` and `Host`, and
//! `/auth/verify/envoy/<path>` Envoy's path suffix; a check carrying another
//! family's headers is refused. Those headers are believed only from
//! `GATEWAY_TRUSTED_PROXIES`; anyone else gets a 403.
//!
//! The proxy forwards the request as the client sent it, where the gateway's own
//! proxy would forward what it judged; so what the gateway cannot make safe it
//! refuses: a path not in its canonical form (the app would read `..`, `//` or
//! `%61` its own way), and identity or override headers (`X-User-*`,
//! `X-HTTP-Method-Override`, `X-Original-URL`, `Forwarded`...) the app would
//! receive. Sessions are not rotated here either: a proxy cannot be relied on to
//! pass both new cookies back, and a lost refresh cookie would end the session as
//! reuse.

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Method, StatusCode};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use pingora::Result;

use edge::headers::{HeaderRules, Kind};
use edge::path::RequestPath;

use super::access::Refusal;
use super::{forward, request_id, respond, Gateway, RequestCtx, Rotate};
use crate::error_code::ErrorCode;
use crate::routes::TenantSource;

/// The forward-auth endpoint for Traefik and Caddy.
pub const PATH: &str = "/auth/verify";
/// nginx's (`auth_request`, ingress-nginx).
const NGINX: &str = "/auth/verify/nginx";
/// Envoy's: it appends the original path (`path_prefix`).
const ENVOY: &str = "/auth/verify/envoy";

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

/// Whether `path` is one of the forward-auth endpoints.
pub fn owns(path: &str) -> bool {
    path.strip_prefix(PATH).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Which proxy a check comes from, by the endpoint it asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proxy {
    Traefik,
    Nginx,
    Envoy,
}

fn proxy_of(path: &str) -> Option<Proxy> {
    match path {
        PATH => Some(Proxy::Traefik),
        NGINX => Some(Proxy::Nginx),
        _ if path.strip_prefix(ENVOY).is_some_and(|rest| rest.starts_with('/')) => Some(Proxy::Envoy),
        _ => None,
    }
}

/// The request the proxy asks about, and how it wants a browser redirect said.
pub struct Original {
    /// Method, target, `Host` and the client's other headers, as the app would
    /// have received them.
    pub req: RequestHeader,
    /// nginx: a redirect is a 401 with [`AUTH_REDIRECT`]; others get a 302.
    pub nginx: bool,
}

/// Rebuilds the original request from a forward-auth request, as the proxy
/// its endpoint names describes it: the method and target from Traefik's and
/// Caddy's `X-Forwarded-Method`/`-Uri` (host `X-Forwarded-Host`), nginx's
/// `X-Original-Method`/`-URI` (host `Host`), or Envoy's path suffix and method
/// (host `Host`); every other header as sent (credentials, cookies, tenant
/// headers), without those.
///
/// # Errors
/// 400 `invalid_request` when the original request is not said once and
/// clearly, or the check carries another proxy's headers.
pub fn original(req: &RequestHeader) -> std::result::Result<Original, Refusal> {
    let bad = |why: &'static str| Refusal::new(ErrorCode::InvalidRequest, why);
    let proxy = proxy_of(req.uri.path()).ok_or(bad("no such forward-auth endpoint"))?;
    let has = |names: &[&str]| names.iter().any(|n| req.headers.contains_key(*n));
    let foreign = match proxy {
        Proxy::Traefik => has(&[ORIGINAL_URI, ORIGINAL_METHOD]),
        Proxy::Nginx => has(&[FORWARDED_URI, FORWARDED_METHOD, FORWARDED_HOST]),
        Proxy::Envoy => has(&[ORIGINAL_URI, ORIGINAL_METHOD, FORWARDED_URI, FORWARDED_METHOD, FORWARDED_HOST]),
    };
    if foreign {
        return Err(bad("the check carries another proxy's forward-auth headers"));
    }
    let (method, target, host) = match proxy {
        Proxy::Traefik => (one(req, FORWARDED_METHOD)?, one(req, FORWARDED_URI)?, one(req, FORWARDED_HOST)?),
        Proxy::Nginx => (one(req, ORIGINAL_METHOD)?, one(req, ORIGINAL_URI)?, one(req, "host")?),
        Proxy::Envoy => {
            // `/auth/verify/envoy/app/x?y=1` asks about `/app/x?y=1`, same method.
            let path = req.uri.path().strip_prefix(ENVOY).unwrap_or_default();
            let target = match req.uri.query() {
                Some(query) => format!("{path}?{query}"),
                None => path.to_owned(),
            };
            (Some(req.method.as_str().to_owned()), Some(target), one(req, "host")?)
        }
    };
    let nginx = proxy == Proxy::Nginx;
    let target = target.filter(|t| t.starts_with('/')).ok_or(bad("the forward-auth request names no original path"))?;
    // Never a default: judging a DELETE by the GET rules would be a bypass.
    let method = method.ok_or(bad("the forward-auth request names no original method"))?;
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| bad("the original method is not a method"))?;
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

/// Override headers a proxy sets itself (and an app reads only as the client's
/// address or scheme): let through. Any other override header (`Forwarded`,
/// `X-Forwarded-Host`, `X-Original-URL`, method overrides...) would reach the
/// app as the client wrote it.
const PROXY_SET: &[&str] =
    &["x-forwarded-for", "x-forwarded-proto", "x-forwarded-port", "x-forwarded-server", "x-real-ip"];

/// The first identity or override header in `original` that the app behind a
/// forward-auth proxy would receive as the client sent it, by its metrics label.
fn smuggled(original: &RequestHeader, rules: &HeaderRules, tenant_input: bool) -> Option<&'static str> {
    original.headers.keys().find_map(|name| match rules.classify(name) {
        Kind::Ordinary => None,
        Kind::Identity(_) if tenant_input && matches!(name.as_str(), "x-tenant-id" | "x-tenant-slug") => None,
        Kind::Identity(label) => Some(label),
        Kind::Override { label, exact: true } if PROXY_SET.contains(&label) => None,
        Kind::Override { label, .. } => Some(label),
    })
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
    let listy = name != ORIGINAL_URI && name != FORWARDED_URI;
    if values.next().is_some() || (listy && text.contains(',')) {
        return Err(Refusal::new(ErrorCode::InvalidRequest, "a forward-auth header is sent twice"));
    }
    Ok(Some(text.trim().to_owned()))
}

/// 404 for anything but forward-auth on `GATEWAY_VERIFY_LISTEN`.
pub(super) const NOT_ON_VERIFY_LISTENER: Refusal =
    Refusal::new(ErrorCode::RouteNotFound, "this listener answers forward-auth (/auth/verify) only");

impl Gateway {
    /// Whether the request came in on `GATEWAY_VERIFY_LISTEN`, whose peers are
    /// believed like trusted proxies (the address is a private one: checked at
    /// start).
    pub(super) fn on_verify_listener(&self, session: &Session) -> bool {
        let Some(listen) = self.verify_listen else { return false };
        session.server_addr().and_then(|a| a.as_inet()).is_some_and(|local| *local == listen)
    }

    /// Answers a forward-auth request: 200 with the identity headers when the
    /// original request would be let through, else what the proxy would have
    /// answered (JSON 401/403..., or the login redirect for browsers).
    pub(super) async fn verify(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let trusted = ctx.on_verify_listener
            || session
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
        let admitted = match self.admit(&original.req, ctx, Rotate::No).await {
            Ok(()) => self.forwardable(&original.req, ctx),
            Err(refusal) => Err(refusal),
        };
        match admitted {
            Ok(()) => self.allow(session, ctx, &original.req).await,
            Err(refusal) => self.deny(session, ctx, &original, &refusal).await,
        }
    }

    /// What the proxy will forward as sent must be what was judged: the path in
    /// its canonical form, and no identity or override header the app would read
    /// (the gateway's own proxy removes those; here it cannot).
    fn forwardable(&self, original: &RequestHeader, ctx: &RequestCtx) -> std::result::Result<(), Refusal> {
        let raw = original.uri.path();
        if RequestPath::parse(raw).map_or(true, |path| path.wire() != raw) {
            return Err(Refusal::new(
                ErrorCode::AmbiguousPath,
                "behind a forward-auth proxy the path must be in its canonical form (no dot or empty segments, no \
                 needless percent-encoding): the app would receive it as sent",
            ));
        }
        let tenant_input = ctx.route.as_ref().is_some_and(|r| r.tenant_from().contains(&TenantSource::Header));
        if let Some(label) = smuggled(original, &self.header_rules, tenant_input) {
            self.metrics.spoofed_headers.with_label_values(&[label]).inc();
            return Err(Refusal::new(
                ErrorCode::InvalidRequest,
                "the request carries an identity or override header that the app behind the proxy would receive",
            ));
        }
        Ok(())
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
            "/auth/verify/nginx",
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

        let envoy = original(&request("/auth/verify/envoy/app/z?q=1", &[("host", "shop.test")])).unwrap();
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
        for (path, headers) in [
            (
                "/auth/verify/nginx",
                vec![("x-original-uri", "/a"), ("x-original-method", "GET"), ("x-forwarded-host", "b.test")],
            ),
            ("/auth/verify/envoy/a", vec![("x-original-uri", "/b")]),
            ("/auth/verify/other", vec![("x-original-uri", "/b"), ("x-original-method", "GET")]),
        ] {
            let refused = original(&request(path, &headers)).err();
            assert_eq!(refused.map(|r| r.code), Some(ErrorCode::InvalidRequest), "{path} {headers:?}");
        }
        assert!(owns("/auth/verify") && owns("/auth/verify/nginx") && !owns("/auth/verifyx"));
    }
}
