//! The host name in a `Host` header, as every reader of it (route matching,
//! tenant subdomains, cookies, CSRF) takes it, and the [`HostPattern`]s routes
//! answer for.

/// The host name of a `Host` header value: without the port (`:8080`), without a
use std::fmt;

/// trailing dot, IPv6 brackets kept (`[::1]`). Case is left as is. Never allocates.
pub fn host_name(host: &str) -> &str {
    let host = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    host.strip_suffix('.').unwrap_or(host)
}
/// A host a route answers for: an exact name (`app.example.com`) or one leading
/// wildcard label (`*.app.example.com`, which matches `x.app.example.com` but neither
/// `app.example.com` nor `a.b.app.example.com`). Stored lowercase, without a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPattern {
    wildcard: bool,
    /// The exact name, or the part after `*.`.
    name: Box<str>,
}

impl HostPattern {
    /// Parses a pattern: DNS labels of `a-z0-9-` (case-insensitive), optionally
    /// preceded by `*.`; no port, no trailing dot.
    ///
    /// # Errors
    /// A sentence saying what is wrong with `raw`.
    pub fn parse(raw: &str) -> Result<HostPattern, String> {
        let (wildcard, name) = match raw.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        if name.contains(':') {
            return Err(format!("host {raw:?} must not have a port (hosts match whatever the port)"));
        }
        if name.contains('*') {
            return Err(format!("host {raw:?} may only have one wildcard, as its whole first label (*.example.com)"));
        }
        if name.is_empty() || name.len() > 253 {
            return Err(format!("host {raw:?} must be a DNS name of 1 to 253 characters"));
        }
        for label in name.split('.') {
            let valid = (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !valid {
                return Err(format!(
                    "host {raw:?} has an invalid label {label:?}: labels are 1 to 63 letters, digits or '-', \
                     not starting or ending with '-'"
                ));
            }
        }
        Ok(HostPattern { wildcard, name: name.to_ascii_lowercase().into() })
    }

    /// True for `*.example.com` patterns.
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// The exact host, or for a wildcard the suffix after `*.`; lowercase.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `host` (already without its port) matches, ignoring ASCII case.
    pub fn matches(&self, host: &str) -> bool {
        if !self.wildcard {
            return host.eq_ignore_ascii_case(&self.name);
        }
        match host.split_once('.') {
            Some((label, parent)) => !label.is_empty() && parent.eq_ignore_ascii_case(&self.name),
            None => false,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_port_and_trailing_dot() {
        assert_eq!(host_name("example.com"), "example.com");
        assert_eq!(host_name("Example.com:8080"), "Example.com");
        assert_eq!(host_name("example.com."), "example.com");
        assert_eq!(host_name("example.com.:443"), "example.com");
        assert_eq!(host_name("[::1]:8080"), "[::1]");
        assert_eq!(host_name("[::1]"), "[::1]");
        assert_eq!(host_name("host:abc"), "host:abc");
        assert_eq!(host_name(""), "");
    }

    #[test]
    fn host_patterns() {
        let exact = HostPattern::parse("App.Example.com").unwrap();
        assert_eq!(exact.to_string(), "app.example.com");
        assert!(exact.matches("APP.example.COM"));
        assert!(!exact.matches("x.app.example.com"));
        let wild = HostPattern::parse("*.example.com").unwrap();
        assert!(wild.matches("acme.Example.com"));
        assert!(!wild.matches("example.com"));
        assert!(!wild.matches("a.b.example.com"));
        assert!(!wild.matches(".example.com"));
        for bad in ["", "example.com:80", "*.*.example.com", "a.*.com", "-a.com", "a..com", "a_b.com", "*"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
