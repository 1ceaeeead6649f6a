use std::fmt;

use super::ParseError;

/// A tenant's custom domain: a fully qualified hostname, lowercase, at least two
/// labels of `a-z0-9-` (1 to 63 characters each, no leading or trailing dash), 253
/// characters at most, a top-level label that is not all digits (so never an IP
/// address). A trailing dot is dropped. Internationalized names are given in their
/// ASCII (`xn--`) form, which is what arrives in a `Host` header.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DomainName(String);

impl DomainName {
    /// # Errors
    /// [`ParseError`] on `domain`.
    pub fn parse(raw: &str) -> Result<DomainName, ParseError> {
        let err = |why: &str| Err(ParseError::new("domain", why));
        let name = raw.trim().strip_suffix('.').unwrap_or(raw.trim()).to_ascii_lowercase();
        if name.is_empty() || name.len() > 253 {
            return err("must be a hostname of 1 to 253 characters");
        }
        let labels: Vec<&str> = name.split('.').collect();
        if labels.len() < 2 {
            return err("must be a fully qualified hostname such as app.example.com");
        }
        for label in &labels {
            if label.is_empty() || label.len() > 63 {
                return err("each dot-separated part must be 1 to 63 characters");
            }
            if !label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
                return err("may contain only a-z, 0-9, - and dots");
            }
            if label.starts_with('-') || label.ends_with('-') {
                return err("parts must start and end with a letter or digit");
            }
        }
        if labels.last().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit())) {
            return err("must be a hostname, not an IP address");
        }
        Ok(DomainName(name))
    }

    /// Whether this is `base` itself or a name under it (`x.base`): such a domain
    /// would shadow the tenants served as subdomains of `base`.
    pub fn is_within(&self, base: &str) -> bool {
        let base = base.trim_end_matches('.');
        !base.is_empty()
            && (self.0.eq_ignore_ascii_case(base)
                || self.0.len() > base.len()
                    && self.0.as_bytes()[self.0.len() - base.len() - 1] == b'.'
                    && self.0[self.0.len() - base.len()..].eq_ignore_ascii_case(base))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_accepts_hostnames_and_normalizes_them() {
        assert_eq!(DomainName::parse("App.Example.COM").unwrap().as_str(), "app.example.com");
        assert_eq!(DomainName::parse("acme.io.").unwrap().as_str(), "acme.io");
        assert!(DomainName::parse("xn--bcher-kva.example").is_ok());
        assert!(DomainName::parse("a-b.c1.example").is_ok());
    }

    #[test]
    fn parse_refuses_what_is_not_a_hostname() {
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = format!("{}.com", ["abcdefghij"; 25].join("."));
        for bad in [
            "",
            "localhost",
            "-acme.io",
            "acme-.io",
            "ac_me.io",
            "acme..io",
            ".acme.io",
            "10.0.0.1",
            "acme.io/x",
            "user@acme.io",
            "acme.io:8080",
            "bücher.example",
            &long_label,
            &long_name,
        ] {
            assert!(DomainName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn is_within_matches_the_base_and_its_subdomains_only() {
        let d = |s| DomainName::parse(s).unwrap();
        assert!(d("tenants.test").is_within("tenants.test"));
        assert!(d("acme.tenants.test").is_within("tenants.test"));
        assert!(d("a.b.tenants.test").is_within("TENANTS.test."));
        assert!(!d("eviltenants.test").is_within("tenants.test"));
        assert!(!d("tenants.test.evil.io").is_within("tenants.test"));
        assert!(!d("acme.io").is_within(""));
    }

    proptest! {
        #[test]
        fn a_parsed_name_parses_again_to_itself(raw in "[a-zA-Z0-9.-]{1,80}") {
            if let Ok(d) = DomainName::parse(&raw) {
                prop_assert_eq!(DomainName::parse(d.as_str()), Ok(d.clone()));
                prop_assert!(d.as_str().len() <= 253 && !d.as_str().starts_with('.'));
            }
        }
    }
}
