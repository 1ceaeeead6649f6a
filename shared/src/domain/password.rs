use secrecy::{ExposeSecret, SecretString};

use super::ParseError;

/// A password that meets the policy: 8 to 128 characters. Its `Debug` is redacted.
#[derive(Debug, Clone)]
pub struct Password(SecretString);

impl Password {
    /// The shortest accepted password, in characters.
    pub const MIN_CHARS: usize = 8;
    /// The longest accepted password, in characters (bounds the hashing cost).
    pub const MAX_CHARS: usize = 128;

    /// Applies the policy. Whitespace is kept: it is part of the password.
    ///
    /// # Errors
    /// [`ParseError`] on `password`.
    pub fn parse(raw: SecretString) -> Result<Password, ParseError> {
        let chars = raw.expose_secret().chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&chars) {
            return Err(ParseError::new(
                "password",
                format!("must be between {} and {} characters", Self::MIN_CHARS, Self::MAX_CHARS),
            ));
        }
        Ok(Password(raw))
    }

    /// The secret, for hashing only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enforces_length_in_characters_not_bytes() {
        assert!(Password::parse("1234567".into()).is_err());
        assert!(Password::parse("12345678".into()).is_ok());
        assert!(Password::parse("é".repeat(128).into()).is_ok());
        assert!(Password::parse("x".repeat(129).into()).is_err());
        assert!(!format!("{:?}", Password::parse("hunter2hunter2".into()).unwrap()).contains("hunter2"));
    }
}
