use std::fmt;

use super::ParseError;

/// What every tenant API key starts with (`tgk_<public id>_<secret>`): how a
/// credential is told apart from a JWT before anything else is read.
pub const API_KEY_PREFIX: &str = "tgk_";

/// An API key's name (what it is for: "CI deploys"): trimmed, 1 to 100
/// characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyName(String);

impl ApiKeyName {
    /// # Errors
    /// [`ParseError`] on `name`.
    pub fn parse(raw: &str) -> Result<ApiKeyName, ParseError> {
        let name = raw.trim();
        let len = name.chars().count();
        if len == 0 || len > 100 || name.chars().any(char::is_control) {
            return Err(ParseError::new("name", "must be 1 to 100 characters without control characters"));
        }
        Ok(ApiKeyName(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApiKeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(ApiKeyName::parse("  CI deploys ").unwrap().as_str(), "CI deploys");
        for bad in ["", "   ", "a\nb", &"x".repeat(101)] {
            assert_eq!(ApiKeyName::parse(bad).unwrap_err().field, "name", "{bad:?}");
        }
        assert!(ApiKeyName::parse(&"é".repeat(100)).is_ok());
    }
}
