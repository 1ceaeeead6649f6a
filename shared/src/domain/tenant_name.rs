use std::fmt;

use super::ParseError;

/// A tenant's display name: trimmed, 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantName(String);

impl TenantName {
    /// # Errors
    /// [`ParseError`] on `tenantName`.
    pub fn parse(raw: &str) -> Result<TenantName, ParseError> {
        let name = raw.trim();
        let len = name.chars().count();
        if len == 0 || len > 100 || name.chars().any(char::is_control) {
            return Err(ParseError::new("tenantName", "must be 1 to 100 characters without control characters"));
        }
        Ok(TenantName(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
