//! Return URLs (`?return_to=`): where the portal sends the browser after login.
//! Only a path on this host or an http(s) URL on an allowed host is honoured, so
//! the portal is no open redirect. Every decoded form of the value is checked,
//! since browsers forgive much (`/\evil`, `%2F%2Fevil`, tabs inside `//`).

use percent_encoding::percent_decode_str;

use crate::web_session::site::{url_host, SitePolicy};

/// Where to go when the return URL is absent or refused.
pub const DEFAULT: &str = "/";

/// The return URL if it is safe to redirect to, else `None`.
///
/// Accepted: a path starting with one `/` (not `//`, not `/\`), or an
/// `http://`/`https://` URL whose host `site` allows for a request to
/// `request_host`. Refused: everything else, including any value that holds a
/// backslash, a control character or whitespace in any of its percent-decoded
/// forms, and any scheme-relative or scheme-only form (`//evil`, `https:evil`).
pub fn validate(raw: &str, request_host: &str, site: &SitePolicy) -> Option<String> {
    if raw.is_empty() || raw.len() > 2048 || raw.chars().any(unsafe_char) {
        return None;
    }
    // The raw value and up to three rounds of decoding must all be harmless.
    let mut variant = raw.to_owned();
    for _ in 0..4 {
        if !harmless(&variant, request_host, site) {
            return None;
        }
        let decoded = percent_decode_str(&variant).decode_utf8().ok()?.into_owned();
        if decoded == variant {
            break;
        }
        variant = decoded;
    }
    Some(raw.to_owned())
}

/// Characters browsers drop or reinterpret inside URLs.
fn unsafe_char(c: char) -> bool {
    c == '\\' || c.is_control() || c.is_whitespace()
}

/// One form of the value: up to its query or fragment, no backslash, control
/// character or whitespace, and either a local path or an absolute http(s) URL on
/// an allowed host. (Decoded forms may hold a space in the query, harmlessly.)
fn harmless(value: &str, request_host: &str, site: &SitePolicy) -> bool {
    let value = value.split(['?', '#']).next().unwrap_or("");
    if value.chars().any(unsafe_char) {
        return false;
    }
    if let Some(rest) = value.strip_prefix('/') {
        return !rest.starts_with('/');
    }
    match url_host(value) {
        Some(host) => site.allows_host(&host, request_host),
        None => false,
    }
}

/// The path and query of a local return URL, for matching it against routes; the
/// path of an absolute one.
pub fn path_of(url: &str) -> &str {
    let without_scheme = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    let local = match without_scheme {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => url,
    };
    local.split(['?', '#']).next().unwrap_or("/")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn site() -> SitePolicy {
        crate::web_session::site::site("example.com", &["partner.test"])
    }

    fn ok(raw: &str) -> bool {
        validate(raw, "gw.example.net:8080", &site()).is_some()
    }

    #[test]
    fn local_paths_and_allowed_hosts_pass() {
        for raw in [
            "/",
            "/dashboard?tab=1#x",
            "/t/acme/app",
            "https://gw.example.net/x",
            "http://gw.example.net:8080/",
            "https://acme.example.com/app",
            "https://example.com",
            "https://www.partner.test/a?b=c",
            "/search?q=a%20b",
        ] {
            assert!(ok(raw), "{raw} refused");
        }
    }

    #[test]
    fn open_redirect_attempts_are_refused() {
        for raw in [
            "",
            "//evil.test",
            "///evil.test",
            "/\\evil.test",
            "\\\\evil.test",
            "/%2Fevil.test",
            "%2F%2Fevil.test",
            "/%5Cevil.test",
            "/%252F%252Fevil.test",
            "https:evil.test",
            "https:/evil.test",
            "http://evil.test/",
            "https://evil.test@gw.example.net/",
            "https://gw.example.net@evil.test/",
            "https://evilexample.com/",
            "https://example.com.evil.test/",
            "javascript:alert(1)",
            "data:text/html,hi",
            "/\t/evil.test",
            "/%09/evil.test",
            "/\n/evil.test",
            "/%0d%0a/evil.test",
            " /x",
            "evil.test",
            "ftp://gw.example.net/",
        ] {
            assert!(!ok(raw), "{raw:?} accepted");
        }
    }

    #[test]
    fn paths_are_extracted_for_route_matching() {
        assert_eq!(path_of("/a/b?c=d#e"), "/a/b");
        assert_eq!(path_of("https://h.test/x/y?z"), "/x/y");
        assert_eq!(path_of("https://h.test"), "/");
    }

    proptest! {
        #[test]
        fn whatever_is_accepted_is_a_local_path_or_an_allowed_url(raw in "\\PC{0,40}") {
            if let Some(url) = validate(&raw, "gw.example.net", &site()) {
                let local = url.starts_with('/') && !url.starts_with("//") && !url.starts_with("/\\");
                let allowed = url_host(&url).is_some_and(|h| site().allows_host(&h, "gw.example.net"));
                prop_assert!(local || allowed, "{url}");
            }
        }

        #[test]
        fn scheme_relative_forms_never_pass(
            slashes in prop::sample::select(vec!["//", "/\\", "\\\\", "%2F%2F", "/%2F", "%2f/", "/%5C", "%252F%252F"]),
            host in "[a-z]{1,10}\\.[a-z]{2,4}",
        ) {
            let raw = format!("{slashes}{host}");
            prop_assert!(validate(&raw, "gw.example.net", &site()).is_none(), "{} accepted", raw);
        }
    }
}
