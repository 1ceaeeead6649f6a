//! Browser sessions in the proxy: the silent refresh of an expired access cookie,
//! the redirect to the login portal for browsers, the CSRF check for
//! cookie-authenticated writes, and keeping the refresh cookie from upstreams.
//! Bearer requests skip all of it: each check starts by looking for
//! `Authorization`, and nothing here runs on an allowed bearer request.

use std::sync::Arc;

use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use pingora::http::RequestHeader;

use super::access::{Decision, Refusal};
use crate::error_code::ErrorCode;
use crate::portal::{encode, PREFIX};
use crate::routes::{OnUnauthenticated, Requirement, Route, TenantSource};
use crate::web_session::cookies::{self, CookiePolicy};
use crate::web_session::rotation::{Pair, Presenter, Sessions};
use crate::web_session::site::SitePolicy;

/// 403 for a cookie-authenticated write from another site.
pub const CSRF_REJECTED: Refusal = Refusal::of(ErrorCode::CsrfRejected);

/// What the proxy needs for browser sessions.
pub struct Browser {
    /// Token rotation, shared with the portal.
    pub sessions: Arc<Sessions>,
    /// Cookie names and attributes.
    pub cookies: CookiePolicy,
    /// Same-site hosts.
    pub site: SitePolicy,
}

/// The outcome of a silent refresh.
pub enum Refreshed {
    /// A new pair: retry the decision with it and set its cookies.
    Pair(Arc<Pair>),
    /// The refresh cookie is spent, reused, expired or unknown: clear the cookies.
    Ended(Refusal),
}

impl Browser {
    /// The refresh cookie of a request a new pair could help: refused 401, or let
    /// through anonymously on an `auth = "optional"` route (a browser whose access
    /// cookie expired is still signed in). Only without an `Authorization` header or
    /// an API key (such requests are never touched) and with a refresh cookie.
    pub fn refresh_candidate<'h>(&self, headers: &'h HeaderMap, route: &Route, decision: &Decision) -> Option<&'h str> {
        let helps = match decision {
            Decision::Deny(refusal) => refusal.status() == StatusCode::UNAUTHORIZED,
            Decision::Allow(identity) => {
                identity.user.is_none() && identity.api_key.is_none() && route.auth() == Requirement::Optional
            }
        };
        // Bearer and API key requests are programs': never given a session.
        if !helps || headers.contains_key(header::AUTHORIZATION) || edge::credentials::holds_api_key(headers) {
            return None;
        }
        cookies::read(headers, &self.cookies.refresh)
    }

    /// Rotates the refresh cookie, as `POST /auth/refresh` would.
    pub async fn refresh(&self, refresh: &str, request_id: &str, presenter: Presenter<'_>) -> Refreshed {
        match self.sessions.refresh(refresh, request_id, presenter).await {
            Ok(pair) => Refreshed::Pair(pair),
            Err(e) if e.status() == StatusCode::UNAUTHORIZED => {
                Refreshed::Ended(Refusal::new(e.code, "the session has ended; sign in again"))
            }
            Err(_) => Refreshed::Ended(Refusal::new(
                ErrorCode::ServiceUnavailable,
                "the session could not be refreshed; retry",
            )),
        }
    }

    /// Whether a cookie-authenticated request passes the CSRF check: safe methods
    /// always do; unsafe ones need a same-site Origin (or Referer), whatever else
    /// the request carries (an `Authorization` header with the same token does not
    /// excuse a cookie). Over HTTPS the source page must be HTTPS too.
    pub fn csrf_ok(&self, req: &RequestHeader, host: &str, https: bool) -> bool {
        let safe = matches!(req.method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE);
        safe || if https {
            self.site.same_site_https_request(&req.headers, host)
        } else {
            self.site.same_site_request(&req.headers, host)
        }
    }

    /// Where to send a browser instead of answering `refusal` with JSON, if
    /// anywhere: the login page for a 401, the tenant (via `/t/{slug}/` or the
    /// picker) for a missing tenant. Only without `Authorization`, and only when
    /// the route says `on_unauthenticated = "redirect"` or, by default, the
    /// client accepts `text/html`.
    pub fn redirect_for(&self, req: &RequestHeader, route: &Route, refusal: &Refusal) -> Option<String> {
        if req.headers.contains_key(header::AUTHORIZATION) {
            return None;
        }
        let wants_html = match route.on_unauthenticated() {
            Some(OnUnauthenticated::Redirect) => true,
            Some(OnUnauthenticated::Unauthorized) => false,
            None => accepts_html(&req.headers),
        };
        if !wants_html {
            return None;
        }
        let here = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
        if refusal.status() == StatusCode::UNAUTHORIZED {
            return Some(format!("{PREFIX}/login?return_to={}", encode(here)));
        }
        let signed_in = cookies::read(&req.headers, &self.cookies.access).is_some()
            || cookies::read(&req.headers, &self.cookies.refresh).is_some();
        let readable = matches!(req.method, Method::GET | Method::HEAD);
        if refusal.code != ErrorCode::TenantRequired || !signed_in || !readable {
            return None;
        }
        let remembered = cookies::read(&req.headers, &self.cookies.tenant)
            .filter(|s| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        match remembered {
            Some(slug) if route.tenant_from().contains(&TenantSource::Path) => Some(format!("/t/{slug}{here}")),
            _ => Some(format!("{PREFIX}/tenants?return_to={}", encode(here))),
        }
    }
}

/// A copy of `headers` that carries `access` as a bearer token instead of
/// cookies, for deciding again after a refresh.
pub fn with_bearer(headers: &HeaderMap, access: &str) -> HeaderMap {
    let mut headers = headers.clone();
    headers.remove(header::COOKIE);
    if let Ok(value) = HeaderValue::from_str(&format!("Bearer {access}")) {
        headers.insert(header::AUTHORIZATION, value);
    }
    headers
}

/// Whether `Accept` lists `text/html` (browsers navigating do).
pub fn accepts_html(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|item| {
        let mut parts = item.split(';');
        let is_html = parts.next().is_some_and(|t| t.trim().eq_ignore_ascii_case("text/html"));
        is_html && !parts.any(|p| p.trim().replace(' ', "") == "q=0")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_detected_in_accept() {
        let mut h = HeaderMap::new();
        assert!(!accepts_html(&h));
        h.insert(header::ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8".parse().unwrap());
        assert!(accepts_html(&h));
        h.insert(header::ACCEPT, "application/json".parse().unwrap());
        assert!(!accepts_html(&h));
        h.insert(header::ACCEPT, "text/html;q=0, application/json".parse().unwrap());
        assert!(!accepts_html(&h));
    }

    #[test]
    fn bearer_copy_drops_cookies() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "tg_refresh=x".parse().unwrap());
        let b = with_bearer(&h, "jwt");
        assert_eq!(b[header::AUTHORIZATION], "Bearer jwt");
        assert!(!b.contains_key(header::COOKIE));
    }
}
