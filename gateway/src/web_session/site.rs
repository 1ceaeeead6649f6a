//! Which hosts count as "this site": the request's own host, `GATEWAY_BASE_DOMAIN`
//! and its subdomains, and `GATEWAY_TRUSTED_DOMAINS` with theirs. Return URLs may
//! only point there, and cookie-authenticated writes must come from there.

use http::{header, HeaderMap};
use shared::config::GatewaySettings;
use shared::domain::DomainName;

use crate::routes::host_name;

/// The domains this deployment trusts besides the request's own host.
#[derive(Debug, Clone, Default)]
pub struct SitePolicy {
    /// Each also covers its subdomains.
    domains: Vec<DomainName>,
}

impl SitePolicy {
    /// From `GATEWAY_BASE_DOMAIN` (may be unset) and `GATEWAY_TRUSTED_DOMAINS`.
    pub fn new(gateway: &GatewaySettings) -> SitePolicy {
        SitePolicy { domains: gateway.base_domain.iter().chain(&gateway.trusted_domains).cloned().collect() }
    }

    /// Whether `host` (a bare host name, no port) is the request's host
    /// (`request_host`, port ignored) or a trusted domain or subdomain of one.
    pub fn allows_host(&self, host: &str, request_host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return false;
        }
        if host == host_name(request_host).to_ascii_lowercase() {
            return true;
        }
        self.domains.iter().any(|d| d.covers(&host))
    }

    /// The CSP `form-action` sources after `'self'`: each domain and its
    /// subdomains, since a form's answer may redirect to a return URL there (and
    /// browsers hold redirects after a submission to `form-action` too).
    pub fn form_action_sources(&self) -> String {
        self.domains.iter().flat_map(|d| [format!(" {d}"), format!(" *.{d}")]).collect()
    }

    /// Whether a state-changing request comes from this site: its `Origin` (or,
    /// without one, its `Referer`) names an allowed host. A request with neither
    /// is refused: browsers send `Origin` on every cross-origin POST, so only a
    /// stripped or non-browser request lacks both.
    pub fn same_site_request(&self, headers: &HeaderMap, request_host: &str) -> bool {
        self.same_site_source(headers, request_host, false)
    }

    /// [`Self::same_site_request`] for a request that came over HTTPS: its source
    /// must be an `https://` page too (a page over plain HTTP on the same host,
    /// which anyone on the network can write into, is not this site).
    pub fn same_site_https_request(&self, headers: &HeaderMap, request_host: &str) -> bool {
        self.same_site_source(headers, request_host, true)
    }

    fn same_site_source(&self, headers: &HeaderMap, request_host: &str, https_only: bool) -> bool {
        // An `Origin: null` (sandboxed frames, some redirects) decides too: refused.
        let source = match headers.get(header::ORIGIN) {
            Some(origin) => origin.to_str().ok(),
            None => headers.get(header::REFERER).and_then(|v| v.to_str().ok()),
        };
        let source = source.filter(|s| !https_only || s.get(..8).is_some_and(|p| p.eq_ignore_ascii_case("https://")));
        match source.and_then(url_host) {
            Some(host) => self.allows_host(&host, request_host),
            None => false,
        }
    }
}

/// The host of an absolute `http://` or `https://` URL as a browser reads it
/// (WHATWG parsing, by the `url` crate: lowercase, IDNs in `xn--` form, IPv6 in
/// brackets, no port), `None` for anything else: other schemes, scheme-only forms
/// (`https:evil`), user info, no host.
pub fn url_host(raw: &str) -> Option<String> {
    let scheme = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
    if !(scheme.starts_with("https://") || scheme.starts_with("http://")) {
        return None;
    }
    let url = url::Url::parse(raw).ok()?;
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    match url.host()? {
        url::Host::Domain(name) => Some(name.to_owned()),
        url::Host::Ipv4(ip) => Some(ip.to_string()),
        url::Host::Ipv6(ip) => Some(format!("[{ip}]")),
    }
}

/// A policy for unit tests: `base` (empty for none) and `trusted`.
#[cfg(test)]
pub(crate) fn site(base: &str, trusted: &[&str]) -> SitePolicy {
    SitePolicy {
        domains: std::iter::once(base)
            .filter(|b| !b.is_empty())
            .chain(trusted.iter().copied())
            .map(|d| DomainName::parse(d).unwrap())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> SitePolicy {
        site("example.com", &["partner.test"])
    }

    #[test]
    fn forms_may_submit_to_this_site_and_the_domains_return_urls_may_name() {
        assert_eq!(site("", &[]).form_action_sources(), "");
        assert_eq!(
            site("Example.com.", &["partner.test"]).form_action_sources(),
            " example.com *.example.com partner.test *.partner.test"
        );
    }

    #[test]
    fn url_hosts_are_read_as_browsers_read_them() {
        assert_eq!(url_host("https://App.Example.com:8443/x?y").as_deref(), Some("app.example.com"));
        assert_eq!(url_host("http://ex%61mple.com/").as_deref(), Some("example.com"));
        assert_eq!(url_host("https://evil.test\\@example.com/").as_deref(), Some("evil.test"));
        assert_eq!(url_host("http://[::1]:8080/").as_deref(), Some("[::1]"));
        for none in ["https:example.com", "//example.com", "ftp://example.com", "https://u@example.com", "/x", ""] {
            assert_eq!(url_host(none), None, "{none:?}");
        }
    }

    #[test]
    fn own_host_base_domain_subdomains_and_trusted_domains_are_allowed() {
        let p = policy();
        assert!(p.allows_host("gateway.local", "gateway.local:8080"));
        assert!(p.allows_host("example.com", "x"));
        assert!(p.allows_host("acme.example.com", "x"));
        assert!(p.allows_host("a.b.partner.test", "x"));
        assert!(!p.allows_host("evilexample.com", "x"));
        assert!(!p.allows_host("example.com.evil.test", "x"));
        assert!(!p.allows_host("", ""));
    }

    #[test]
    fn origin_then_referer_decide() {
        let p = policy();
        let mut h = HeaderMap::new();
        assert!(!p.same_site_request(&h, "gw.test"), "neither header: refused");
        h.insert(header::REFERER, "https://gw.test/auth/ui/login".parse().unwrap());
        assert!(p.same_site_request(&h, "gw.test:8080"));
        h.insert(header::ORIGIN, "https://evil.test".parse().unwrap());
        assert!(!p.same_site_request(&h, "gw.test"), "Origin wins over Referer");
        h.insert(header::ORIGIN, "http://acme.example.com:8443".parse().unwrap());
        assert!(p.same_site_request(&h, "gw.test"));
        h.insert(header::ORIGIN, "https://user@gw.test".parse().unwrap());
        assert!(!p.same_site_request(&h, "gw.test"));
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(!p.same_site_request(&h, "gw.test"));
        let mut plain = HeaderMap::new();
        plain.insert(header::ORIGIN, "http://gw.test".parse().unwrap());
        assert!(p.same_site_request(&plain, "gw.test"));
        assert!(!p.same_site_https_request(&plain, "gw.test"), "over HTTPS, a plain-HTTP page is not this site");
        plain.insert(header::ORIGIN, "HTTPS://gw.test".parse().unwrap());
        assert!(p.same_site_https_request(&plain, "gw.test"));
    }
}
