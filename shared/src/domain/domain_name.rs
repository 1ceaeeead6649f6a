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

    /// Whether `host` is this domain or a name under it (`acme.example.com` under
    /// `example.com`, never `evilexample.com`). `host` is a bare host name as a
    /// request or URL gives it: case and one trailing dot are ignored, a port is
    /// not expected. The one "this domain or a subdomain" check: cookies, CSRF,
    /// return URLs, subdomain tenants and claimable domains all ask it.
    #[must_use]
    pub fn covers(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host);
        let base = self.0.as_str();
        match host.len().checked_sub(base.len()) {
            Some(0) => host.eq_ignore_ascii_case(base),
            Some(extra) => {
                host.as_bytes()[extra - 1] == b'.'
                    && host.get(extra..).is_some_and(|tail| tail.eq_ignore_ascii_case(base))
            }
            None => false,
        }
    }

    /// The single label directly under this domain in `host` (`acme` for
    /// `acme.example.com` under `example.com`), as sent (case kept); `None` for
    /// the domain itself, deeper names and names elsewhere.
    #[must_use]
    pub fn child_label<'h>(&self, host: &'h str) -> Option<&'h str> {
        let host = host.strip_suffix('.').unwrap_or(host);
        let split = host.len().checked_sub(self.0.len() + 1)?;
        let label = host.get(..split)?;
        (self.covers(host) && !label.is_empty() && !label.contains('.')).then_some(label)
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
    fn covers_the_domain_and_its_subdomains_only() {
        let base = DomainName::parse("tenants.test").unwrap();
        for host in ["tenants.test", "TENANTS.test", "tenants.test.", "acme.tenants.test", "a.b.Tenants.Test"] {
            assert!(base.covers(host), "{host}");
        }
        for host in ["eviltenants.test", "tenants.test.evil.io", "test", "", ".", "tenants.tes", "xtenants.test."] {
            assert!(!base.covers(host), "{host}");
        }
    }

    #[test]
    fn child_label_is_one_label_under_the_domain() {
        let base = DomainName::parse("tenants.test").unwrap();
        assert_eq!(base.child_label("Acme.tenants.test"), Some("Acme"));
        assert_eq!(base.child_label("acme.tenants.test."), Some("acme"));
        for host in ["tenants.test", ".tenants.test", "a.b.tenants.test", "acme.evil.test", "acmetenants.test"] {
            assert_eq!(base.child_label(host), None, "{host}");
        }
    }

    proptest! {
        #[test]
        fn a_parsed_name_parses_again_to_itself(raw in "[a-zA-Z0-9.-]{1,80}") {
            if let Ok(d) = DomainName::parse(&raw) {
                prop_assert_eq!(DomainName::parse(d.as_str()), Ok(d.clone()));
                prop_assert!(d.covers(&raw.to_ascii_uppercase()));
                prop_assert!(d.as_str().len() <= 253 && !d.as_str().starts_with('.'));
            }
        }
    }
}
