use std::fmt;

use rand::Rng;

use super::ParseError;

/// Names a tenant may not take: they collide with our own paths and common hosts.
pub const RESERVED: &[&str] = &[
    "www", "api", "auth", "admin", "app", "mail", "static", "assets", "gateway", "status", "help", "support", "login",
    "logout", "register", "metrics", "health", "root", "system",
    // The metrics' label for the tenants past METRICS_TENANT_LABELS.
    "other",
];

/// A tenant slug: lowercase `a-z0-9-`, 3 to 63 characters, starting and ending with a
/// letter or digit, not reserved. Valid as a DNS label, so it can be a subdomain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Slug(String);

impl Slug {
    /// # Errors
    /// [`ParseError`] on `slug`.
    pub fn parse(raw: &str) -> Result<Slug, ParseError> {
        let err = |why: &str| Err(ParseError::new("slug", why));
        if !(3..=63).contains(&raw.len()) {
            return err("must be 3 to 63 characters");
        }
        if !raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return err("may contain only a-z, 0-9 and -");
        }
        if raw.starts_with('-') || raw.ends_with('-') {
            return err("must start and end with a letter or digit");
        }
        if RESERVED.contains(&raw) {
            return err("is reserved");
        }
        Ok(Slug(raw.to_owned()))
    }

    /// Derives a slug from a display name: ASCII letters and digits kept, everything
    /// else folded into single dashes, cut to 50 characters. Names that leave too
    /// little (or a reserved word) get a random suffix, so this always succeeds.
    pub fn derive(name: &str) -> Slug {
        let mut out = String::with_capacity(name.len());
        for c in name.chars().flat_map(char::to_lowercase) {
            if c.is_ascii_alphanumeric() {
                out.push(c);
            } else if !out.ends_with('-') && !out.is_empty() {
                out.push('-');
            }
        }
        out.truncate(50);
        let base = out.trim_matches('-');
        Slug::parse(base).unwrap_or_else(|_| Slug::with_suffix(if base.is_empty() { "tenant" } else { base }))
    }

    /// This slug's stem with a random `-xxxxxx` suffix, used when the plain one is taken.
    pub fn with_random_suffix(&self) -> Slug {
        Slug::with_suffix(&self.0)
    }

    fn with_suffix(stem: &str) -> Slug {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::thread_rng();
        let suffix: String = (0..6).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
        let stem: String = stem.chars().take(50).collect();
        Slug(format!("{}-{suffix}", stem.trim_matches('-')))
    }

    /// The slug as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_enforces_the_rules() {
        assert!(Slug::parse("acme").is_ok());
        assert!(Slug::parse("acme-corp-2").is_ok());
        for bad in ["ab", "Acme", "-acme", "acme-", "ac_me", "api", &"a".repeat(64)] {
            assert!(Slug::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn derive_folds_names() {
        assert_eq!(Slug::derive("Acme Corp!").as_str(), "acme-corp");
        assert_eq!(Slug::derive("  Ünïcode & Co  ").as_str(), "n-code-co");
        assert!(Slug::derive("A").as_str().starts_with("a-"));
        assert!(Slug::derive("Admin").as_str().starts_with("admin-"));
    }

    proptest! {
        #[test]
        fn derive_always_yields_a_valid_slug(name in "\\PC{0,120}") {
            let slug = Slug::derive(&name);
            prop_assert!(Slug::parse(slug.as_str()).is_ok(), "{:?} -> {:?}", name, slug);
            prop_assert!(Slug::parse(slug.with_random_suffix().as_str()).is_ok());
        }
    }
}
