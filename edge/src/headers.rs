//! Which client-sent headers an app must never see, in whatever spelling.
//!
//! App servers do not read header names the way the gateway's header map stores
//! them: CGI, WSGI, PHP and Rack map `X-User-Id`, `X_User_Id` and `x.user.id` to
//! the same `HTTP_X_USER_ID` variable; Java and Node read names without regard to
//! case. So a name is compared in its *canonical* form: lowercase, every byte that
//! is not a letter or a digit read as `-`. A client header whose canonical form is
//! one the gateway injects, trusts or was told to protect is removed before the
//! request is routed; so are the headers that rewrite what an app believes about
//! the request (`X-Forwarded-Host`, `X-Original-URL`...), unless a trusted proxy
//! set them in their exact spelling.

use std::borrow::Cow;

use http::HeaderName;

/// Prefixes of headers only the gateway sets: identities, tenants, its own
/// headers, and `X-Auth-*`, which auth proxies (and apps behind them) use for
/// identity. Operators add more with `GATEWAY_IDENTITY_HEADER_PREFIXES`.
pub const BUILT_IN_PREFIXES: &[&str] = &["x-user-", "x-tenant-", "x-tenantgate-", "x-auth-"];

/// Identity headers other auth proxies set and frameworks trust.
const IDENTITY_NAMES: &[&str] = &[
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "x-remote-user",
    "remote-user",
    "x-webauth-user",
];

/// The headers the gateway injects itself: counted by name when spoofed.
pub const INJECTED: &[&str] = &[
    "x-user-id",
    "x-user-email",
    "x-user-email-verified",
    "x-tenant-id",
    "x-tenant-slug",
    "x-tenant-role",
    "x-actor-type",
    "x-api-key-id",
    "x-tenantgate-assertion",
];

/// The header API keys come in (see `credentials`): ordinary in this exact
/// spelling, an identity header in any other.
const API_KEY: &str = "x-api-key";

/// Headers that make an app believe something else about the request (its host,
/// path, method, scheme or client): honoured only from a trusted proxy. The
/// gateway writes `X-Forwarded-For` and `X-Forwarded-Proto` itself.
const OVERRIDE_NAMES: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-forwarded-uri",
    "x-forwarded-method",
    "x-url-scheme",
    "front-end-https",
    "x-real-ip",
    "x-client-ip",
    "client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-cluster-client-ip",
    "x-original-url",
    "x-original-uri",
    "x-original-host",
    "x-original-method",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// What a client header is, for the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An ordinary header: forwarded.
    Ordinary,
    /// Names or resembles an identity header: always removed. The label is the
    /// canonical name of a header the gateway injects, or the matched prefix or
    /// known name, so metrics stay bounded whatever a client sends.
    Identity(&'static str),
    /// Rewrites what the app believes about the request: removed unless a trusted
    /// proxy sent it in exactly this spelling (`exact`).
    Override {
        /// The canonical name, for metrics.
        label: &'static str,
        /// Whether the name is already canonical (a proxy's real header, not a
        /// look-alike such as `X_Forwarded_Host`).
        exact: bool,
    },
}

/// The identity prefixes in force: the built-in ones and the operator's.
#[derive(Debug, Clone)]
pub struct HeaderRules {
    /// Canonical prefixes (lowercase, ending in `-`), each with its metrics label.
    prefixes: Vec<(Box<str>, &'static str)>,
}

impl Default for HeaderRules {
    fn default() -> HeaderRules {
        HeaderRules::new(&[]).unwrap_or(HeaderRules { prefixes: Vec::new() })
    }
}

impl HeaderRules {
    /// The built-in prefixes plus `extra` (as written in settings, any case, with
    /// or without the trailing `-`).
    ///
    /// # Errors
    /// A sentence naming a prefix that is empty or not a header-name token.
    pub fn new(extra: &[String]) -> Result<HeaderRules, String> {
        let mut prefixes: Vec<(Box<str>, &'static str)> =
            BUILT_IN_PREFIXES.iter().map(|p| (Box::from(*p), prefix_label(p))).collect();
        for raw in extra {
            let trimmed = raw.trim();
            if trimmed.is_empty() || HeaderName::from_bytes(trimmed.as_bytes()).is_err() {
                return Err(format!("{raw:?} is not a header name prefix like X-Internal-"));
            }
            let mut canonical = canonical(trimmed);
            if !canonical.ends_with('-') {
                canonical.push('-');
            }
            if !prefixes.iter().any(|(p, _)| **p == canonical) {
                prefixes.push((canonical.into(), "operator-prefix"));
            }
        }
        Ok(HeaderRules { prefixes })
    }

    /// What the client header `name` is.
    pub fn classify(&self, name: &HeaderName) -> Kind {
        let name = name.as_str();
        // Almost every real header is ordinary and starts with a letter no rule
        // starts with: decide those without canonicalizing.
        let first = name.as_bytes().first().copied().unwrap_or(b'-');
        if !self.might_match(first) {
            return Kind::Ordinary;
        }
        // Header names are lowercase; most are already canonical and need no copy.
        let canonical: Cow<'_, str> = if name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            Cow::Borrowed(name)
        } else {
            Cow::Owned(canonical(name))
        };
        let canonical = &*canonical;
        if canonical == API_KEY {
            // The gateway reads API keys from `X-Api-Key` spelled so; another
            // spelling (`X_Api_Key`) is one a CGI/WSGI/PHP app reads as the same
            // header: a key there would reach the app unchecked.
            return if name == API_KEY { Kind::Ordinary } else { Kind::Identity(API_KEY) };
        }
        if let Some(known) = INJECTED.iter().find(|n| **n == canonical) {
            return Kind::Identity(known);
        }
        if let Some(known) = IDENTITY_NAMES.iter().find(|n| **n == canonical) {
            return Kind::Identity(known);
        }
        if let Some((_, label)) = self.prefixes.iter().find(|(p, _)| canonical.starts_with(&**p)) {
            return Kind::Identity(label);
        }
        if let Some(known) = OVERRIDE_NAMES.iter().find(|n| **n == canonical) {
            return Kind::Override { label: known, exact: name == *known };
        }
        Kind::Ordinary
    }

    /// Whether a name starting with `first` could match any rule.
    fn might_match(&self, first: u8) -> bool {
        let first = first.to_ascii_lowercase();
        first == b'x'
            || IDENTITY_NAMES.iter().chain(OVERRIDE_NAMES).any(|n| n.as_bytes()[0] == first)
            || self.prefixes.iter().any(|(p, _)| p.as_bytes()[0] == first)
    }
}

fn prefix_label(prefix: &str) -> &'static str {
    match prefix {
        "x-user-" => "x-user-*",
        "x-tenant-" => "x-tenant-*",
        "x-tenantgate-" => "x-tenantgate-*",
        _ => "x-auth-*",
    }
}

/// The canonical spelling of a header name: lowercase, every byte that is not an
/// ASCII letter or digit read as `-` (so `X_User.Id` is `x-user-id`).
pub fn canonical(name: &str) -> String {
    name.bytes().map(|b| if b.is_ascii_alphanumeric() { char::from(b.to_ascii_lowercase()) } else { '-' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kind(rules: &HeaderRules, name: &str) -> Kind {
        rules.classify(&HeaderName::from_bytes(name.as_bytes()).unwrap())
    }

    #[test]
    fn every_spelling_of_an_identity_header_is_identity() {
        let rules = HeaderRules::default();
        for name in [
            "X-User-Id",
            "x_user_id",
            "X_USER_ID",
            "x.user.id",
            "x-user_id",
            "X~User~Id",
            "x-tenant-role",
            "X_Tenant_Slug",
            "x-tenantgate-assertion",
            "X-Auth-Request-User",
            "x-user-anything",
            "Remote-User",
            "remote_user",
            "X-Forwarded-User",
            "x_forwarded_email",
        ] {
            assert!(matches!(kind(&rules, name), Kind::Identity(_)), "{name}");
        }
        assert_eq!(kind(&rules, "X_User_Id"), Kind::Identity("x-user-id"));
        assert_eq!(kind(&rules, "x-user-whatever"), Kind::Identity("x-user-*"));
        for name in ["accept", "x-users-count", "user-agent", "x-request-id", "authorization", "xuser-id"] {
            assert_eq!(kind(&rules, name), Kind::Ordinary, "{name}");
        }
    }

    #[test]
    fn x_api_key_is_ordinary_only_in_its_own_spelling() {
        let rules = HeaderRules::default();
        assert_eq!(kind(&rules, "x-api-key"), Kind::Ordinary);
        assert_eq!(kind(&rules, "X-Api-Key"), Kind::Ordinary, "names are lowercased when parsed");
        for name in ["X_Api_Key", "x.api.key", "x-api_key", "X~API~KEY"] {
            assert_eq!(kind(&rules, name), Kind::Identity("x-api-key"), "{name}");
        }
        assert_eq!(kind(&rules, "x-api-keys"), Kind::Ordinary);
    }

    #[test]
    fn override_headers_are_exact_only_in_their_own_spelling() {
        let rules = HeaderRules::default();
        assert_eq!(kind(&rules, "X-Forwarded-Host"), Kind::Override { label: "x-forwarded-host", exact: true });
        assert_eq!(kind(&rules, "x_forwarded_host"), Kind::Override { label: "x-forwarded-host", exact: false });
        for name in ["Forwarded", "X-Real-IP", "x-original-url", "X-Rewrite-URL", "X-HTTP-Method-Override"] {
            assert!(matches!(kind(&rules, name), Kind::Override { exact: true, .. }), "{name}");
        }
        assert!(matches!(kind(&rules, "True_Client_IP"), Kind::Override { exact: false, .. }));
    }

    #[test]
    fn operators_add_prefixes_in_any_spelling() {
        let rules = HeaderRules::new(&["X-Internal".to_owned(), "x_corp_".to_owned()]).unwrap();
        assert_eq!(kind(&rules, "x_internal_role"), Kind::Identity("operator-prefix"));
        assert_eq!(kind(&rules, "X-Corp-Id"), Kind::Identity("operator-prefix"));
        assert_eq!(kind(&rules, "x-internals"), Kind::Ordinary);
        assert!(HeaderRules::new(&["".to_owned()]).is_err());
        assert!(HeaderRules::new(&["bad prefix".to_owned()]).is_err());
    }

    proptest! {
        /// Whatever the spelling, a name whose canonical form starts with a
        /// protected prefix is never ordinary.
        #[test]
        fn no_spelling_of_a_protected_name_is_ordinary(
            prefix in prop_oneof!["x-user-", "x-tenant-", "x-auth-", "x-tenantgate-"],
            rest in "[a-z0-9]{1,8}",
            seps in prop::collection::vec(prop_oneof![Just('-'), Just('_'), Just('.'), Just('~'), Just('+')], 3),
            upper in prop::collection::vec(any::<bool>(), 40),
        ) {
            let mut seps = seps.into_iter();
            let spelled: String = format!("{prefix}{rest}")
                .chars()
                .enumerate()
                .map(|(i, c)| if c == '-' { seps.next().unwrap_or('_') } else if upper[i % 40] { c.to_ascii_uppercase() } else { c })
                .collect();
            let rules = HeaderRules::default();
            prop_assert!(matches!(kind(&rules, &spelled), Kind::Identity(_)), "{}", spelled);
        }
    }
}
