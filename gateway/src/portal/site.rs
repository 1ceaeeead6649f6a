//! Which hosts count as "this site": the request's own host, `GATEWAY_BASE_DOMAIN`
//! and its subdomains, and `GATEWAY_TRUSTED_DOMAINS` with theirs. Return URLs may
//! only point there, and cookie-authenticated writes must come from there.

use http::{header, HeaderMap};

use crate::routes::tenant::host_name;

/// The domains this deployment trusts besides the request's own host.
#[derive(Debug, Clone, Default)]
pub struct SitePolicy {
    /// Lowercase domains; each also covers its subdomains.
    domains: Vec<String>,
}

impl SitePolicy {
    /// From `GATEWAY_BASE_DOMAIN` (may be empty) and `GATEWAY_TRUSTED_DOMAINS`.
    pub fn new(base_domain: &str, trusted: &[String]) -> SitePolicy {
        let domains = std::iter::once(base_domain)
            .chain(trusted.iter().map(String::as_str))
            .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect();
        SitePolicy { domains }
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
        self.domains.iter().any(|d| host == *d || host.strip_suffix(d.as_str()).is_some_and(|rest| rest.ends_with('.')))
    }

    /// The CSP `form-action` sources after `'self'`: each domain and its
    /// subdomains, since a form's answer may redirect to a return URL there (and
    /// browsers hold redirects after a submission to `form-action` too).
    pub fn form_action_sources(&self) -> String {
        let plain = |d: &&String| d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        self.domains.iter().filter(plain).flat_map(|d| [format!(" {d}"), format!(" *.{d}")]).collect()
    }

    /// Whether a state-changing request comes from this site: its `Origin` (or,
    /// without one, its `Referer`) names an allowed host. A request with neither
    /// is refused: browsers send `Origin` on every cross-origin POST, so only a
    /// stripped or non-browser request lacks both.
    pub fn same_site_request(&self, headers: &HeaderMap, request_host: &str) -> bool {
        // An `Origin: null` (sandboxed frames, some redirects) decides too: refused.
        let source = match headers.get(header::ORIGIN) {
            Some(origin) => origin.to_str().ok(),
            None => headers.get(header::REFERER).and_then(|v| v.to_str().ok()),
        };
        match source.and_then(url_host) {
            Some(host) => self.allows_host(host, request_host),
            None => false,
        }
    }
}

/// The host of an `http(s)://host[:port][/...]` URL, `None` for anything else
/// (other schemes, user info, empty or odd hosts).
pub fn url_host(url: &str) -> Option<&str> {
    let lower_scheme = url.get(..8).map(str::to_ascii_lowercase).unwrap_or_default();
    let rest = if lower_scheme.starts_with("https://") {
        &url[8..]
    } else if lower_scheme.starts_with("http://") {
        &url[7..]
    } else {
        return None;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return None;
    }
    let host = host_name(authority);
    let valid = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    valid.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> SitePolicy {
        SitePolicy::new("example.com", &["partner.test".to_owned()])
    }

    #[test]
    fn forms_may_submit_to_this_site_and_the_domains_return_urls_may_name() {
        assert_eq!(SitePolicy::new("", &[]).form_action_sources(), "");
        let site = SitePolicy::new("Example.com.", &["partner.test".into(), "bad;domain 'x'".into()]);
        assert_eq!(site.form_action_sources(), " example.com *.example.com partner.test *.partner.test");
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
    }
}
