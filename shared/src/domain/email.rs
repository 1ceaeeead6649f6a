use std::fmt;

use super::ParseError;

/// An email address, trimmed, with a lowercased domain; compared case-insensitively
/// by the database (`lower(email)` is unique).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Accepts `local@domain.tld` up to 254 bytes; no whitespace or control
    /// characters, one `@`, a dotted domain.
    ///
    /// # Errors
    /// [`ParseError`] on `email`.
    pub fn parse(raw: &str) -> Result<Email, ParseError> {
        let err = |why: &str| ParseError::new("email", why);
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > 254 {
            return Err(err("must be between 1 and 254 characters"));
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("must not contain spaces"));
        }
        let (local, domain) = raw.rsplit_once('@').ok_or_else(|| err("must contain @"))?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '.');
        if local.is_empty() || local.len() > 64 || local.contains('@') || !domain_ok {
            return Err(err("is not a valid address"));
        }
        Ok(Email(format!("{local}@{}", domain.to_lowercase())))
    }

    /// Whether `other` is the same mailbox, as the database's unique
    /// `lower(email)` index decides it (case does not matter).
    #[must_use]
    pub fn same_address(&self, other: &Email) -> bool {
        self.0.to_lowercase() == other.0.to_lowercase()
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_addresses_and_lowercases_the_domain() {
        assert_eq!(Email::parse(" Ann@Example.COM ").unwrap().as_str(), "Ann@example.com");
    }

    #[test]
    fn refuses_malformed_addresses() {
        for bad in ["", "ann", "ann@", "@x.com", "ann@localhost", "a b@x.com", "ann@x..com", "ann@.x.com"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    proptest! {
        #[test]
        fn never_panics_and_never_keeps_whitespace(s in "\\PC{0,300}") {
            if let Ok(e) = Email::parse(&s) {
                prop_assert!(!e.as_str().chars().any(char::is_whitespace));
                prop_assert!(e.as_str().len() <= 254);
            }
        }
    }
}
