//! What the gateway does about the scheme a client used: which requests came over
//! HTTPS, the plain listener's redirect to HTTPS, and `Strict-Transport-Security`.

use http::{HeaderValue, StatusCode};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use shared::config::TlsSettings;

use super::access::Refusal;
use crate::error_code::ErrorCode;
use crate::tls::Served;

/// ACME HTTP-01 challenges are answered over plain HTTP: never redirected.
const ACME_CHALLENGE: &str = "/.well-known/acme-challenge/";

/// Whether `path` is exactly an ACME HTTP-01 challenge: the prefix and one
/// token of base64url characters (RFC 8555, 8.3), nothing else. Checked on the
/// raw path, so no spelling (`..`, `%2e`, more segments) that routing would
/// normalize to another path escapes the redirect.
fn is_acme_challenge(path: &str) -> bool {
    path.strip_prefix(ACME_CHALLENGE).is_some_and(|token| {
        !token.is_empty() && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// The scheme policy, from `GATEWAY_TLS_*`, `GATEWAY_HTTP_REDIRECT` and
/// `GATEWAY_HSTS_*`.
#[derive(Debug, Clone, Default)]
pub struct SchemePolicy {
    /// `Strict-Transport-Security` for HTTPS answers.
    hsts: Option<HeaderValue>,
    /// Whether plain-HTTP requests are redirected.
    pub redirect: bool,
    /// The port in redirects (`None`: 443, left out).
    https_port: Option<u16>,
}

impl SchemePolicy {
    /// The policy `settings` describe.
    pub fn new(settings: &TlsSettings) -> SchemePolicy {
        SchemePolicy {
            hsts: settings.hsts_header().and_then(|v| HeaderValue::from_str(&v).ok()),
            redirect: settings.http_redirect,
            https_port: settings.listen.map(|a| a.port()).filter(|&p| p != 443),
        }
    }

    /// The `Strict-Transport-Security` value for an answer to a request that came
    /// over `proto`, if any.
    pub fn hsts(&self, proto: &str) -> Option<&HeaderValue> {
        self.hsts.as_ref().filter(|_| proto == "https")
    }

    /// Where to send a request that came over `proto` to have it over HTTPS: only
    /// with `GATEWAY_HTTP_REDIRECT`, never ACME challenges, and only for a host the
    /// gateway would accept (`host`, already checked, lowercase, port dropped).
    pub fn redirect_target(&self, req: &RequestHeader, proto: &str, host: &str) -> Option<String> {
        if !self.redirect || proto == "https" || is_acme_challenge(req.uri.path()) {
            return None;
        }
        // Origin-form targets only: `OPTIONS *` (and anything else) goes to `/`.
        let target = req.uri.path_and_query().map(|pq| pq.as_str()).filter(|t| t.starts_with('/')).unwrap_or("/");
        Some(match self.https_port {
            Some(port) => format!("https://{host}:{port}{target}"),
            None => format!("https://{host}{target}"),
        })
    }
}

/// Whether the request came over the gateway's own TLS listener.
pub fn over_tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}

/// The request's host (lowercase, no port), which must be there and valid: on
/// HTTPS (checked against the connection's certificate) and on a plain listener
/// that redirects (the redirect's target). Elsewhere an empty host is left to the
/// route match, as HTTP/1.0 allows it.
///
/// # Errors
/// 400 `invalid_host`.
pub fn required_host(req: &RequestHeader) -> Result<String, Refusal> {
    match super::routing::request_host(req) {
        Ok(host) if !host.is_empty() => Ok(host),
        _ => Err(Refusal::new(ErrorCode::InvalidHost, "a valid Host is required")),
    }
}

/// Whether a request for `host` came on a TLS connection whose certificate does
/// not cover it. Browsers reuse an HTTP/2 connection for every host its
/// certificate covers, so that much is legitimate; beyond it, the TLS name and the
/// HTTP host are two readings of one request that disagree: 421, and the client
/// connects anew (RFC 9110, 15.5.20). A TLS connection that carries no record of
/// its certificate (none should) is refused too: the check fails closed.
pub fn misdirected(session: &Session, host: &str) -> bool {
    let served = session.digest().and_then(|d| d.ssl_digest.as_ref()).and_then(|tls| tls.extension.get::<Served>());
    served.is_none_or(|served| !served.covers(host.trim_start_matches('[').trim_end_matches(']')))
}

/// The 308 to HTTPS (the method and body are kept, unlike with 301).
pub fn redirect_header(location: &str) -> pingora::Result<ResponseHeader> {
    let mut header = ResponseHeader::build(StatusCode::PERMANENT_REDIRECT, Some(3))?;
    header.insert_header(http::header::LOCATION, location)?;
    Ok(header)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn request(target: &str) -> RequestHeader {
        RequestHeader::build("POST", target.as_bytes(), None).unwrap()
    }

    fn policy(listen: Option<&str>, redirect: bool) -> SchemePolicy {
        SchemePolicy::new(&TlsSettings {
            listen: listen.map(|l| l.parse().unwrap()),
            http_redirect: redirect,
            hsts_max_age: Duration::from_secs(600),
            ..TlsSettings::default()
        })
    }

    #[test]
    fn plain_requests_go_to_the_tls_port_with_path_and_query() {
        let p = policy(Some("0.0.0.0:8443"), true);
        let req = request("/a/b?x=1&y=%20");
        assert_eq!(
            p.redirect_target(&req, "http", "app.example.com").as_deref(),
            Some("https://app.example.com:8443/a/b?x=1&y=%20")
        );
        assert_eq!(p.redirect_target(&req, "https", "app.example.com"), None, "already HTTPS");
        let p = policy(Some("0.0.0.0:443"), true);
        assert_eq!(
            p.redirect_target(&req, "http", "app.example.com").as_deref(),
            Some("https://app.example.com/a/b?x=1&y=%20")
        );
        // Behind a load balancer that terminates TLS: no listener, no port.
        let p = policy(None, true);
        assert_eq!(p.redirect_target(&request("/"), "http", "h.test").as_deref(), Some("https://h.test/"));
    }

    #[test]
    fn acme_challenges_and_a_policy_without_redirect_stay_plain() {
        let p = policy(Some("0.0.0.0:443"), true);
        assert_eq!(p.redirect_target(&request("/.well-known/acme-challenge/tok_EN-1"), "http", "h.test"), None);
        for escape in [
            "/.well-known/acme",
            "/.well-known/acme-challenge/",
            "/.well-known/acme-challenge/../../app",
            "/.well-known/acme-challenge/%2e%2e/app",
            "/.well-known/acme-challenge/tok/more",
        ] {
            let target = p.redirect_target(&request(escape), "http", "h.test");
            assert!(target.is_some_and(|t| t.starts_with("https://h.test/")), "{escape} is redirected");
        }
        assert_eq!(p.redirect_target(&request("*"), "http", "h.test").as_deref(), Some("https://h.test/"));
        let p = policy(Some("0.0.0.0:443"), false);
        assert_eq!(p.redirect_target(&request("/"), "http", "h.test"), None);
    }

    #[test]
    fn hsts_only_on_https_answers() {
        let p = policy(Some("0.0.0.0:443"), false);
        assert_eq!(p.hsts("https").map(|v| v.to_str().unwrap()), Some("max-age=600"));
        assert_eq!(p.hsts("http"), None);
        assert_eq!(SchemePolicy::default().hsts("https"), None);
    }
}
