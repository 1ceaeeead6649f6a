//! The session cookies: names, attributes and reading them back. Built with the
//! `cookie` crate: HttpOnly, `Secure` unless `GATEWAY_COOKIE_SECURE=false`,
//! SameSite=Lax, Path=/, and `Domain=` the base domain when the request is on it,
//! so a login on the base domain covers its tenant subdomains.

use std::time::Duration;

use cookie::{Cookie, SameSite};
use http::{header, HeaderMap, HeaderValue};
use shared::config::Settings;
use shared::domain::{DomainName, Slug};

/// Name of the cookie holding the portal forms' CSRF token.
pub const CSRF_COOKIE: &str = "tg_csrf";
/// Name of the cookie holding the chosen page language.
pub const LANG_COOKIE: &str = "tg_lang";

/// Cookie names and attributes, from settings.
#[derive(Debug, Clone)]
pub struct CookiePolicy {
    /// `GATEWAY_ACCESS_COOKIE`.
    pub access: String,
    /// `GATEWAY_REFRESH_COOKIE`.
    pub refresh: String,
    /// `GATEWAY_TENANT_COOKIE`.
    pub tenant: String,
    secure: bool,
    base_domain: Option<DomainName>,
    access_ttl: Duration,
    refresh_ttl: Duration,
}

impl CookiePolicy {
    /// From the gateway and JWT settings.
    pub fn new(settings: &Settings) -> CookiePolicy {
        CookiePolicy {
            access: settings.gateway.access_cookie.clone(),
            refresh: settings.gateway.refresh_cookie.clone(),
            tenant: settings.gateway.tenant_cookie.clone(),
            secure: settings.gateway.cookie_secure,
            base_domain: settings.gateway.base_domain.clone(),
            access_ttl: settings.jwt.access_ttl,
            refresh_ttl: settings.jwt.refresh_ttl,
        }
    }

    /// `Domain=` for a response to `request_host`: the base domain when the host is
    /// it or one of its subdomains (a browser refuses any other), else none.
    fn domain_for(&self, request_host: &str) -> Option<&str> {
        let host = crate::routes::host_name(request_host);
        self.base_domain.as_ref().filter(|base| base.covers(host)).map(DomainName::as_str)
    }

    fn build(&self, name: &str, value: &str, max_age: Option<Duration>, request_host: &str) -> HeaderValue {
        let mut c = Cookie::build((name.to_owned(), value.to_owned()))
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .path("/");
        if let Some(domain) = self.domain_for(request_host) {
            c = c.domain(domain.to_owned());
        }
        if let Some(age) = max_age {
            c = c.max_age(cookie::time::Duration::seconds(i64::try_from(age.as_secs()).unwrap_or(i64::MAX)));
        }
        // Names are validated at load and values are tokens, JWTs or slugs.
        HeaderValue::from_str(&c.build().to_string()).unwrap_or(HeaderValue::from_static("tg_invalid=; Max-Age=0"))
    }

    /// `Set-Cookie` values for a fresh pair: the access cookie lives as long as the
    /// access token (the browser drops it when the token expires, and the proxy
    /// refreshes from the refresh cookie), the refresh cookie as long as its token.
    pub fn session(&self, access: &str, refresh: &str, request_host: &str) -> [HeaderValue; 2] {
        [
            self.build(&self.access, access, Some(self.access_ttl), request_host),
            self.build(&self.refresh, refresh, Some(self.refresh_ttl), request_host),
        ]
    }

    /// `Set-Cookie` remembering the chosen tenant (as long as a refresh token).
    pub fn tenant(&self, slug: &Slug, request_host: &str) -> HeaderValue {
        self.build(&self.tenant, slug.as_str(), Some(self.refresh_ttl), request_host)
    }

    /// `Set-Cookie` values deleting the access, refresh and tenant cookies.
    pub fn cleared(&self, request_host: &str) -> [HeaderValue; 3] {
        [
            self.build(&self.access, "", Some(Duration::ZERO), request_host),
            self.build(&self.refresh, "", Some(Duration::ZERO), request_host),
            self.build(&self.tenant, "", Some(Duration::ZERO), request_host),
        ]
    }

    /// The portal's own small cookies (CSRF token, language): host-only, session
    /// or a year long, same flags.
    pub fn portal(&self, name: &str, value: &str, max_age: Option<Duration>) -> HeaderValue {
        let mut c = Cookie::build((name.to_owned(), value.to_owned()))
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .path(shared::portal_paths::PREFIX);
        if let Some(age) = max_age {
            c = c.max_age(cookie::time::Duration::seconds(i64::try_from(age.as_secs()).unwrap_or(i64::MAX)));
        }
        HeaderValue::from_str(&c.build().to_string()).unwrap_or(HeaderValue::from_static("tg_invalid=; Max-Age=0"))
    }
}

/// The value of the first cookie called `name` in the request, if not empty.
pub fn read<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find_map(|c| if c.name_raw() == Some(name) { c.value_raw() } else { None })
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(base: &str, secure: bool) -> CookiePolicy {
        let mut s = Settings::default();
        s.gateway.base_domain = DomainName::parse(base).ok();
        s.gateway.cookie_secure = secure;
        s.jwt.access_ttl = Duration::from_secs(900);
        CookiePolicy::new(&s)
    }

    #[test]
    fn session_cookies_carry_every_attribute() {
        let [access, refresh] = policy("example.com", true).session("a.b.c", "r", "acme.example.com:8080");
        let access = access.to_str().unwrap();
        for part in
            ["tg_access=a.b.c", "HttpOnly", "Secure", "SameSite=Lax", "Path=/", "Domain=example.com", "Max-Age=900"]
        {
            assert!(access.contains(part), "{access} lacks {part}");
        }
        assert!(refresh.to_str().unwrap().starts_with("tg_refresh=r;"));
    }

    #[test]
    fn other_hosts_get_host_only_cookies_and_secure_can_be_turned_off() {
        let [access, _] = policy("example.com", false).session("a", "r", "localhost:8080");
        let access = access.to_str().unwrap();
        assert!(!access.contains("Domain"), "{access}");
        assert!(!access.contains("Secure"), "{access}");
        let [gone, ..] = policy("", true).cleared("x");
        assert!(gone.to_str().unwrap().contains("Max-Age=0"));
    }

    #[test]
    fn reads_a_cookie_by_name() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "a=1; tg_refresh=xyz".parse().unwrap());
        assert_eq!(read(&h, "tg_refresh"), Some("xyz"));
        assert_eq!(read(&h, "b"), None);
    }
}
