//! Domain types that parse, not validate: once you hold one, it is valid.
//!
//! Each type keeps its field private and is built only through `parse`/`TryFrom`,
//! which returns a typed [`ParseError`] naming the field and the rule it broke.

mod api_key_name;
mod domain_name;
mod email;
mod ids;
mod language;
mod password;
mod person_name;
mod role;
mod slug;
mod tenant_name;

pub use api_key_name::{ApiKeyName, API_KEY_PREFIX};
pub use domain_name::DomainName;
pub use email::Email;
pub use ids::{ApiKeyId, TenantId, UserId};
pub use language::Language;
pub use password::Password;
pub use person_name::PersonName;
pub use role::Role;
pub use slug::Slug;
pub use tenant_name::TenantName;

/// The conversions every text-backed domain type has: `TryFrom<String>` through
/// `parse` (so sqlx rows decode with `#[sqlx(try_from = "String")]`), back into a
/// `String`, `AsRef<str>`, and serde as the text (parsed again on the way in).
macro_rules! text_type {
    ($($name:ident),+) => {$(
        impl TryFrom<String> for $name {
            type Error = ParseError;
            fn try_from(raw: String) -> Result<$name, ParseError> {
                $name::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.as_str().to_owned()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            /// Parsed again: what comes back from a cache or a queue is checked.
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let raw = <String as serde::Deserialize>::deserialize(d)?;
                $name::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    )+};
}

text_type!(ApiKeyName, DomainName, Email, Language, Slug);

/// Why a value was refused: the field and a human sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ParseError {
    /// The field, as the API names it (`email`, `password`...).
    pub field: &'static str,
    /// A sentence a user can act on.
    pub reason: String,
}

impl ParseError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        ParseError { field, reason: reason.into() }
    }
}
