use std::fmt;

use super::ParseError;

/// A language tag such as `en`, `de` or `pt-BR` (primary subtag lowercased, region
/// uppercased).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Language(String);

impl Language {
    /// `ll` or `ll-RR`.
    ///
    /// # Errors
    /// [`ParseError`] on `language`.
    pub fn parse(raw: &str) -> Result<Language, ParseError> {
        let raw = raw.trim();
        let (primary, region) = match raw.split_once(['-', '_']) {
            Some((p, r)) => (p, Some(r)),
            None => (raw, None),
        };
        let alpha = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_alphabetic());
        if !(alpha(primary, 2) || alpha(primary, 3)) || region.is_some_and(|r| !alpha(r, 2)) {
            return Err(ParseError::new("language", "must be a language tag like en or pt-BR"));
        }
        Ok(Language(match region {
            Some(r) => format!("{}-{}", primary.to_lowercase(), r.to_uppercase()),
            None => primary.to_lowercase(),
        }))
    }

    /// The primary subtag (`pt` for `pt-BR`), which template sets are chosen by.
    pub fn primary(&self) -> &str {
        self.0.split('-').next().unwrap_or(&self.0)
    }

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Language {
    fn default() -> Self {
        Language("en".into())
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case() {
        assert_eq!(Language::parse("PT_br").unwrap().as_str(), "pt-BR");
        assert_eq!(Language::parse("de").unwrap().primary(), "de");
        assert!(Language::parse("english").is_err());
        assert!(Language::parse("e1").is_err());
    }
}
