//! From a request to a route and back out: the one reading of its host and path
//! (see [`edge::path`]), `/t/{slug}/` tenant paths, and shaping the request sent
//! upstream.

use std::sync::Arc;

use edge::path::{self, Ambiguity, PathError, RequestPath};
use http::{HeaderName, StatusCode};
use pingora::http::RequestHeader;
use pingora::{ErrorSource, ErrorType};
use shared::domain::Slug;

use super::access::{Refusal, RequestFacts, TENANT_CONFLICT};
use crate::error_code::ErrorCode;
use crate::routes::{tenant, EncodedSlashes, IdentityHeader, PathLookup, Route, RouteTable, TenantSource};

/// 405 for a method the route does not allow.
pub const METHOD_NOT_ALLOWED: Refusal =
    Refusal::new(ErrorCode::MethodNotAllowed, "this route does not allow this method");

const NOT_FOUND: Refusal = Refusal::of(ErrorCode::RouteNotFound);

const INVALID_HOST: Refusal = Refusal::of(ErrorCode::InvalidHost);

/// Where a request goes.
pub struct Target {
    /// The route.
    pub route: Arc<Route>,
    /// Path and query to send upstream (the path in its canonical wire form).
    pub upstream_uri: http::Uri,
    /// The Host name (no port), lowercase.
    pub host: String,
    /// The slug of a `/t/{slug}/` prefix, when the route resolves tenants by path.
    pub path_slug: Option<Slug>,
}

/// The Host of the request: the URI authority (HTTP/2, absolute form) or the
/// header. Pingora has already refused duplicates, user info and a Host that
/// disagrees with the authority; this checks the rest of its syntax, so that what
/// the app reads as its host is what the gateway matched.
///
/// # Errors
/// 400 `invalid_host` for anything but a DNS name, an IPv4 address or a bracketed
/// IPv6 address, with an optional port.
pub(crate) fn request_host(req: &RequestHeader) -> std::result::Result<String, Refusal> {
    let raw = match req.uri.authority() {
        Some(authority) => authority.as_str(),
        None => match req.headers.get(http::header::HOST) {
            Some(value) => value.to_str().map_err(|_| INVALID_HOST)?,
            None => "",
        },
    };
    // `[v6]` or `[v6]:port`; otherwise `name` or `name:port` (a bare IPv6 address
    // has colons in its name and is refused).
    let (name, port) = match raw.strip_prefix('[').and_then(|r| r.split_once(']')) {
        Some((v6, "")) => (v6, None),
        Some((v6, rest)) => (v6, Some(rest.strip_prefix(':').unwrap_or("x"))),
        None => match raw.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (raw, None),
        },
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    // A DNS name has at most 253 characters (a trailing dot makes 254).
    if name.len() > 254 {
        return Err(INVALID_HOST);
    }
    let name_ok = if raw.starts_with('[') {
        name.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    if !(port_ok && name_ok) {
        return Err(INVALID_HOST);
    }
    Ok(crate::routes::host_name(raw).to_ascii_lowercase())
}

/// The refusal for a path that cannot be read one way only.
fn path_refusal(e: PathError) -> Refusal {
    match e {
        PathError::Ambiguous(why) => Refusal::new(ErrorCode::AmbiguousPath, why.as_str()),
        PathError::NotAbsolute => Refusal::new(ErrorCode::InvalidPath, "the path must start with '/'"),
        PathError::BadPercentEncoding => {
            Refusal::new(ErrorCode::InvalidPath, "the path has a '%' not followed by two hex digits")
        }
        PathError::ControlCharacter => Refusal::new(ErrorCode::InvalidPath, "the path contains a control character"),
        PathError::NonAscii => {
            Refusal::new(ErrorCode::InvalidPath, "the path contains a raw non-ASCII byte; percent-encode it")
        }
    }
}

/// The request target's path and query, as received. Origin-form targets are read
/// from their raw bytes (Pingora's URI holds a lossy copy of non-UTF-8 ones);
/// absolute-form ones from the path Pingora isolated.
fn request_target(req: &RequestHeader) -> std::result::Result<(&str, Option<&str>), Refusal> {
    let raw = std::str::from_utf8(req.raw_path()).map_err(|_| path_refusal(PathError::NonAscii))?;
    if raw.starts_with('/') {
        return Ok(match raw.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (raw, None),
        });
    }
    if !req.raw_path_is_utf8() {
        return Err(path_refusal(PathError::NonAscii));
    }
    Ok((req.uri.path(), req.uri.query()))
}

/// Finds the route for `req`, as the first of its rules that applies to the
/// request's method and path makes it (the route itself when none does, see
/// [`Route::for_request`]), so that what follows decides under that policy. A
/// `/t/{slug}/rest` path is matched as `rest` when the route found for `rest`
/// resolves tenants by path; otherwise the whole path is matched as it is.
///
/// # Errors
/// 400 for a host or path that cannot be read one way only, 404 when no route
/// matches.
pub fn resolve(table: &RouteTable, req: &RequestHeader) -> std::result::Result<Target, Refusal> {
    let host = request_host(req)?;
    let (raw_path, query) = request_target(req)?;
    let path = RequestPath::parse(raw_path).map_err(path_refusal)?;
    let (path_slug, found, matched) = route_for(table, &host, PathLookup::of(&path)).ok_or(NOT_FOUND)?;
    let upstream_uri = upstream_uri(req, raw_path, query, found.upstream_path())?;
    // Most routes have no rules: their Arc is moved, not counted again.
    let route = match found.route.rule_for(&req.method, matched) {
        Some(variant) => Arc::clone(variant),
        None => found.route,
    };
    if path.has_encoded_slash() {
        encoded_slashes_allowed(table, &host, &req.method, &path, &route, path_slug.as_ref())?;
    }
    Ok(Target { route, upstream_uri, host, path_slug })
}

/// The path and query to send upstream: the request's own URI (a reference count)
/// when the path was already in its canonical form and nothing was stripped, as
/// for most requests; else the canonical path with the query, parsed anew.
fn upstream_uri(
    req: &RequestHeader,
    raw_path: &str,
    query: Option<&str>,
    upstream_path: &str,
) -> std::result::Result<http::Uri, Refusal> {
    let origin_form = req.uri.scheme().is_none() && req.uri.authority().is_none();
    if origin_form && upstream_path == raw_path && req.uri.path() == raw_path && req.uri.query() == query {
        return Ok(req.uri.clone());
    }
    let mut target = String::with_capacity(upstream_path.len() + query.map_or(0, |q| q.len() + 1));
    target.push_str(upstream_path);
    if let Some(query) = query {
        target.push('?');
        target.push_str(query);
    }
    target
        .parse::<http::Uri>()
        .map_err(|_| Refusal::new(ErrorCode::InvalidPath, "the request target is not a valid URI"))
}

/// The route for a path, trying a `/t/{slug}/` prefix first, and the path it
/// matched (what its rules are matched against).
fn route_for<'p>(
    table: &RouteTable,
    host: &str,
    path: PathLookup<'p>,
) -> Option<(Option<Slug>, crate::routes::Match<'p>, PathLookup<'p>)> {
    let by_tenant_path = tenant::path_slug(path).and_then(|(slug, rest)| {
        let found = table.match_request(host, rest)?;
        found.route.tenant_from().contains(&TenantSource::Path).then_some((Some(slug), found, rest))
    });
    by_tenant_path.or_else(|| table.match_request(host, path).map(|found| (None, found, path)))
}

/// A path with `%2F` passes only on a route that keeps encoded slashes, and only
/// when reading them as separators gives a clean path that selects the same route,
/// rule (`route` is the rule's variant, if one applied) and tenant: then an app
/// that decodes them acts under the same policy.
fn encoded_slashes_allowed(
    table: &RouteTable,
    host: &str,
    method: &http::Method,
    path: &RequestPath<'_>,
    route: &Arc<Route>,
    slug: Option<&Slug>,
) -> std::result::Result<(), Refusal> {
    let ambiguous = |why| path_refusal(PathError::Ambiguous(why));
    if route.encoded_slashes() != EncodedSlashes::Keep {
        return Err(ambiguous(Ambiguity::EncodedSlash));
    }
    let read = path.slash_view().map_err(path_refusal)?;
    let folded = path::fold(&read).map_err(path_refusal)?;
    let same = route_for(table, host, PathLookup::new(&read, folded.as_deref(), &read)).is_some_and(
        |(other_slug, other, matched)| {
            Arc::ptr_eq(other.route.for_request(method, matched), route) && other_slug.as_ref() == slug
        },
    );
    if same {
        Ok(())
    } else {
        Err(ambiguous(Ambiguity::SlashReading))
    }
}

/// The facts the access decision reads, taken before identity headers are stripped.
/// Tenant headers are read only on routes that resolve tenants by header (on
/// others they are stripped as spoofed). The tenant cookie (`tenant_cookie`) is
/// read only for a request without `Authorization` and without tenant headers to
/// a header-mode route.
///
/// # Errors
/// [`TENANT_CONFLICT`] when a tenant header is sent twice with different values.
pub fn facts<'a>(
    req: &'a RequestHeader,
    target: &'a Target,
    tenant_cookie: &str,
) -> std::result::Result<RequestFacts<'a>, Refusal> {
    let by_header = target.route.tenant_from().contains(&TenantSource::Header);
    let header = |name: &HeaderName| -> std::result::Result<Option<&'a str>, Refusal> {
        if !by_header {
            return Ok(None);
        }
        let mut values = req.headers.get_all(name).iter().map(|v| v.to_str().ok());
        let first = values.next().flatten();
        if values.any(|other| other != first) {
            return Err(TENANT_CONFLICT);
        }
        Ok(first)
    };
    let (header_tenant_id, header_tenant_slug) = (header(&X_TENANT_ID)?, header(&X_TENANT_SLUG)?);
    let remembered_tenant = (header_tenant_id.is_none()
        && header_tenant_slug.is_none()
        && by_header
        && !req.headers.contains_key(http::header::AUTHORIZATION))
    .then(|| crate::web_session::cookies::read(&req.headers, tenant_cookie))
    .flatten();
    Ok(RequestFacts {
        host: &target.host,
        path_slug: target.path_slug.as_ref(),
        header_tenant_id,
        header_tenant_slug,
        remembered_tenant,
        client_ip: None,
    })
}

const X_TENANT_ID: HeaderName = IdentityHeader::TenantId.name();
const X_TENANT_SLUG: HeaderName = IdentityHeader::TenantSlug.name();

/// The status logged and counted for a request whose client hung up before the
/// answer was written (nginx's convention; never sent).
pub const CLIENT_CLOSED: StatusCode = match StatusCode::from_u16(499) {
    Ok(status) => status,
    Err(_) => StatusCode::BAD_REQUEST,
};

/// What to answer after proxying `route`'s request failed: nothing when the
/// client hung up (`None`), 400 for a request that could not be read, 504 when the
/// upstream timed out, 502 `upstream_tls` when TLS with an HTTPS upstream failed
/// (logged with its cause: which check the certificate failed), 502 `bad_gateway`
/// for every other failure.
pub fn proxy_failure(e: &pingora::Error, route: &str) -> Option<Refusal> {
    match (e.esource(), e.etype()) {
        (ErrorSource::Downstream, ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed) => None,
        (ErrorSource::Downstream, _) => Some(Refusal::of(ErrorCode::InvalidRequest)),
        (_, ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout) => {
            Some(Refusal::of(ErrorCode::UpstreamTimeout))
        }
        _ if upstream_tls_failure(e) => {
            tracing::warn!(route, error = %e, "TLS with the upstream failed");
            Some(Refusal::of(ErrorCode::UpstreamTls))
        }
        _ => Some(Refusal::of(ErrorCode::BadGateway)),
    }
}

/// A certificate refused or a handshake failed, by Pingora's error type or by a
/// rustls error among the causes: a TLS 1.3 server checks the client's
/// certificate (or its absence) after the client's side of the handshake is done,
/// so its alert comes back as the I/O error of the first read.
fn upstream_tls_failure(e: &pingora::Error) -> bool {
    use ErrorType::{HandshakeError, InvalidCert, TLSHandshakeFailure, TLSWantX509Lookup};
    if matches!(e.etype(), TLSHandshakeFailure | InvalidCert | HandshakeError | TLSWantX509Lookup) {
        return true;
    }
    let mut next = e.cause.as_deref().map(|c| c as &(dyn std::error::Error + 'static));
    while let Some(cause) = next {
        if cause.is::<rustls::Error>() {
            return true;
        }
        next = inner_error(cause);
    }
    false
}

/// The error `e` wraps: the cause of a Pingora error (boxed once more when
/// Pingora passed a `Box<Error>` as a cause), the payload of an I/O error (where
/// tokio-rustls puts the rustls error), else its `source`.
fn inner_error<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e (dyn std::error::Error + 'static)> {
    let pingora = e.downcast_ref::<pingora::Error>().or_else(|| e.downcast_ref::<Box<pingora::Error>>().map(|b| &**b));
    if let Some(pingora) = pingora {
        return pingora.cause.as_deref().map(|c| c as _);
    }
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        return io.get_ref().map(|c| c as _);
    }
    e.source()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(value: &str) -> std::result::Result<String, Refusal> {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header(http::header::HOST, value).unwrap();
        request_host(&req)
    }

    #[test]
    fn hosts_are_names_or_addresses_with_an_optional_port() {
        for (value, name) in [
            ("Acme.Example.com", "acme.example.com"),
            ("acme.example.com:8443", "acme.example.com"),
            ("acme.example.com.", "acme.example.com"),
            ("127.0.0.1:80", "127.0.0.1"),
            ("[::1]:8080", "[::1]"),
            ("[2001:db8::1]", "[2001:db8::1]"),
            ("", ""),
            (&format!("{}.com:80", "a".repeat(249)), &format!("{}.com", "a".repeat(249))),
        ] {
            assert_eq!(host(value).as_deref(), Ok(name), "{value:?}");
        }
        for bad in [
            "a.com:80:80",
            "a.com:",
            "a.com:x",
            "a.com:123456",
            "::1",
            "[::1",
            "[zz]:80",
            "[::1]x",
            "a b.com",
            "a_b.com",
            "a.com/x",
            "a.com\\x",
            "a.com%2e",
            format!("{}.com", "a".repeat(251)).as_str(),
        ] {
            assert_eq!(host(bad), Err(INVALID_HOST), "{bad:?}");
        }
    }

    #[test]
    fn upstream_tls_failures_are_told_apart_from_other_upstream_failures() {
        let code = |e: &pingora::Error| proxy_failure(e, "r").map(|r| r.code);
        let upstream = |t: ErrorType| {
            let mut e = pingora::Error::new(t);
            e.esource = ErrorSource::Upstream;
            e
        };
        for t in [ErrorType::TLSHandshakeFailure, ErrorType::InvalidCert, ErrorType::HandshakeError] {
            assert_eq!(code(&upstream(t)), Some(ErrorCode::UpstreamTls));
        }
        // A TLS 1.3 alert (no client certificate) read after the handshake.
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired);
        let mut read = upstream(ErrorType::ReadError);
        read.cause = Some(Box::new(std::io::Error::new(std::io::ErrorKind::InvalidData, alert)));
        assert_eq!(code(&read), Some(ErrorCode::UpstreamTls));
        // As Pingora wraps it: a `Box<Error>` cause, boxed again.
        let mut wrapped = pingora::Error::because(ErrorType::ReadError, "while reading response headers", read);
        wrapped.esource = ErrorSource::Upstream;
        assert_eq!(code(&wrapped), Some(ErrorCode::UpstreamTls));

        let mut reset = upstream(ErrorType::ReadError);
        reset.cause = Some(Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)));
        assert_eq!(code(&reset), Some(ErrorCode::BadGateway));
        assert_eq!(code(&upstream(ErrorType::ConnectRefused)), Some(ErrorCode::BadGateway));
        assert_eq!(code(&upstream(ErrorType::ConnectTimedout)), Some(ErrorCode::UpstreamTimeout));
        let mut downstream = pingora::Error::new(ErrorType::TLSHandshakeFailure);
        downstream.esource = ErrorSource::Downstream;
        assert_eq!(code(&downstream), Some(ErrorCode::InvalidRequest));
    }

    #[test]
    fn a_canonical_target_is_forwarded_as_received_and_any_other_rewritten() {
        let upstream = |target: &[u8], upstream_path: &str| {
            let req = RequestHeader::build("GET", target, None).unwrap();
            let raw = std::str::from_utf8(req.raw_path()).unwrap().to_owned();
            let (path, query) = match raw.split_once('?') {
                Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
                None => (raw.clone(), None),
            };
            upstream_uri(&req, &path, query.as_deref(), upstream_path).unwrap().to_string()
        };
        assert_eq!(upstream(b"/d/x?a=1&b", "/d/x"), "/d/x?a=1&b");
        assert_eq!(upstream(b"/d/x?", "/d/x"), "/d/x?");
        assert_eq!(upstream(b"/d/./x?q", "/d/x"), "/d/x?q");
        assert_eq!(upstream(b"/api/x", "/x"), "/x", "a stripped prefix");
    }
}
