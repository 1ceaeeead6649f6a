//! Domain types that parse, not validate: once you hold one, it is valid.
//!
//! Each type keeps its field private and is built only through `parse`/`TryFrom`,
//! which returns a typed [`ParseError`] naming the field and the rule it broke.

mod domain_name;
mod email;
mod ids;
mod language;
mod password;
mod person_name;
mod role;
mod slug;
mod tenant_name;

pub use domain_name::DomainName;
pub use email::Email;
pub use ids::{TenantId, UserId};
pub use language::Language;
pub use password::Password;
pub use person_name::PersonName;
pub use role::Role;
pub use slug::Slug;
pub use tenant_name::TenantName;

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
