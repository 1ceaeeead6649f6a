//! Which identity headers a route's app receives (`identity_headers`): every one
//! the gateway writes is work on every request, so a route lists what its app
//! reads. The default is all six, as the README's Quick start shows them.

use std::fmt;

use http::HeaderName;

/// One header the gateway can tell the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentityHeader {
    /// `X-User-Id`: the user's uuid.
    UserId,
    /// `X-User-Email`: the user's address.
    UserEmail,
    /// `X-User-Email-Verified`: `true` or `false`.
    UserEmailVerified,
    /// `X-Tenant-Id`: the tenant's uuid.
    TenantId,
    /// `X-Tenant-Slug`: the tenant's slug.
    TenantSlug,
    /// `X-Tenant-Role`: the user's (or API key's) role in it.
    TenantRole,
    /// `X-Actor-Type`: `user` or `api_key`, on authenticated requests.
    ActorType,
    /// `X-Api-Key-Id`: the API key's id, on requests an API key authenticated.
    ApiKeyId,
}

impl IdentityHeader {
    /// Every header, in the order they are written.
    pub const ALL: [IdentityHeader; 8] = [
        IdentityHeader::UserId,
        IdentityHeader::UserEmail,
        IdentityHeader::UserEmailVerified,
        IdentityHeader::TenantId,
        IdentityHeader::TenantSlug,
        IdentityHeader::TenantRole,
        IdentityHeader::ActorType,
        IdentityHeader::ApiKeyId,
    ];

    /// The header's name (built once: a constant).
    pub const fn name(self) -> HeaderName {
        HeaderName::from_static(self.as_str())
    }

    /// The lowercase name, as route files spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            IdentityHeader::UserId => "x-user-id",
            IdentityHeader::UserEmail => "x-user-email",
            IdentityHeader::UserEmailVerified => "x-user-email-verified",
            IdentityHeader::TenantId => "x-tenant-id",
            IdentityHeader::TenantSlug => "x-tenant-slug",
            IdentityHeader::TenantRole => "x-tenant-role",
            IdentityHeader::ActorType => "x-actor-type",
            IdentityHeader::ApiKeyId => "x-api-key-id",
        }
    }

    /// The header with this name, in any case.
    pub fn parse(name: &str) -> Option<IdentityHeader> {
        IdentityHeader::ALL.into_iter().find(|h| h.as_str().eq_ignore_ascii_case(name))
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for IdentityHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of identity headers (a bit per header: copied, compared and iterated
/// without allocation).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdentityHeaders(u8);

impl IdentityHeaders {
    /// All eight: the default.
    pub const ALL: IdentityHeaders = IdentityHeaders(0b1111_1111);

    /// None at all (`identity_headers = []`: the app reads the assertion, or
    /// nothing).
    pub const NONE: IdentityHeaders = IdentityHeaders(0);

    /// The set of these headers.
    pub fn of(headers: impl IntoIterator<Item = IdentityHeader>) -> IdentityHeaders {
        IdentityHeaders(headers.into_iter().fold(0, |bits, h| bits | h.bit()))
    }

    /// Whether `header` is in the set.
    pub const fn contains(self, header: IdentityHeader) -> bool {
        self.0 & header.bit() != 0
    }

    /// The headers in the set, in writing order.
    pub fn iter(self) -> impl Iterator<Item = IdentityHeader> {
        IdentityHeader::ALL.into_iter().filter(move |h| self.contains(*h))
    }

    /// How many.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl Default for IdentityHeaders {
    fn default() -> IdentityHeaders {
        IdentityHeaders::ALL
    }
}

impl fmt::Debug for IdentityHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_in_any_case_and_sets_keep_writing_order() {
        assert_eq!(IdentityHeader::parse("X-Tenant-Role"), Some(IdentityHeader::TenantRole));
        assert_eq!(IdentityHeader::parse("x-user"), None);
        for h in IdentityHeader::ALL {
            assert_eq!(IdentityHeader::parse(h.as_str()), Some(h));
            assert_eq!(h.name().as_str(), h.as_str());
        }
        let set = IdentityHeaders::of([IdentityHeader::TenantRole, IdentityHeader::UserId]);
        assert_eq!(set.iter().collect::<Vec<_>>(), [IdentityHeader::UserId, IdentityHeader::TenantRole]);
        assert_eq!((set.len(), IdentityHeaders::ALL.len(), IdentityHeaders::NONE.is_empty()), (2, 8, true));
        assert!(!set.contains(IdentityHeader::UserEmail));
        assert_eq!(IdentityHeaders::of(IdentityHeader::ALL), IdentityHeaders::ALL);
    }
}
