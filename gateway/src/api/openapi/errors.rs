//! The error answers operations document, as reusable response components: each
//! names the [`ErrorCode`]s it may carry, all of one status, and its schema is
//! the `Error` body with `error` limited to those codes. Handlers refer to them in
//! `#[utoipa::path(responses((status = 404, response = errors::TenantNotFound)))]`; the
//! tests check every reference has the status of its codes.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::ToSchema;

use crate::api::error::ErrorBody;
use crate::error_code::ErrorCode;

/// A response component: its name and the response.
pub type Component = (&'static str, RefOr<Response>);

/// What a component's answers carry besides the body.
#[derive(Clone, Copy)]
enum Extra {
    None,
    /// `WWW-Authenticate: Bearer error="..."` (401 answers).
    WwwAuthenticate,
    /// `Retry-After: <seconds>` (429 answers).
    RetryAfter,
}

/// Builds the response for `codes` (all of one status), described by `about`.
fn build(about: &str, codes: &[ErrorCode], extra: Extra) -> RefOr<Response> {
    let listed: Vec<String> = codes.iter().map(|c| format!("`{}`", c.as_str())).collect();
    let restricted = ObjectBuilder::new().property(
        "error",
        ObjectBuilder::new().schema_type(Type::String).enum_values(Some(codes.iter().map(|c| c.as_str()))),
    );
    let schema = AllOfBuilder::new().item(Ref::from_schema_name(ErrorBody::name())).item(restricted);
    let mut response = ResponseBuilder::new()
        .description(format!("{about} (`error`: {})", listed.join(", ")))
        .content("application/json", ContentBuilder::new().schema(Some(schema)).build());
    match extra {
        Extra::None => {}
        Extra::WwwAuthenticate => {
            let header = HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::String))
                .description(Some(r#"`Bearer error="invalid_token"` (`invalid_request` for wrong credentials)"#));
            response = response.header("WWW-Authenticate", header.build());
        }
        Extra::RetryAfter => {
            let header = HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)))
                .description(Some("Seconds to wait before trying again"));
            response = response.header("Retry-After", header.build());
        }
    }
    RefOr::T(response.build())
}

macro_rules! error_responses {
    ($( $(#[doc = $about:literal])+ $name:ident => [$($code:ident),+] $(+ $extra:ident)?; )+) => {
        $(
            $(#[doc = $about])+
            pub enum $name {}

            impl $name {
                /// The codes it may carry.
                #[cfg(test)]
                pub const CODES: &'static [ErrorCode] = &[$(ErrorCode::$code),+];
            }

            impl utoipa::ToResponse<'static> for $name {
                fn response() -> Component {
                    let about = concat!($($about),+).trim();
                    let extra = error_responses!(@extra $($extra)?);
                    (stringify!($name), build(about, &[$(ErrorCode::$code),+], extra))
                }
            }
        )+

        /// Every component, for the document's `components.responses`.
        pub fn all() -> Vec<Component> {
            vec![$(<$name as utoipa::ToResponse>::response()),+]
        }

        /// Every component's name and codes, for the tests.
        #[cfg(test)]
        pub const TABLE: &[(&str, &[ErrorCode])] = &[$((stringify!($name), $name::CODES)),+];
    };
    (@extra) => { Extra::None };
    (@extra $extra:ident) => { Extra::$extra };
}

error_responses! {
    // 400
    /// The body, query or path could not be read, or a field is not valid.
    InvalidRequest => [InvalidRequest];
    /// The request could not be read, or the one-time token is unknown, used or
    /// expired.
    InvalidOneTimeToken => [InvalidRequest, InvalidOneTimeToken];
    /// The request could not be read, the one-time token is unknown, used or
    /// expired, or the password breaks the policy (8 to 128 characters).
    InvalidTokenOrPassword => [InvalidRequest, InvalidOneTimeToken, WeakPassword];

    // 401
    /// Email or password is wrong; the same answer whether or not the account exists.
    InvalidCredentials => [InvalidCredentials] + WwwAuthenticate;
    /// No valid access token: missing, malformed, expired, or revoked by logout-all
    /// or a password reset.
    Unauthenticated => [MissingToken, InvalidToken, TokenExpired, TokenRevoked] + WwwAuthenticate;
    /// The refresh token is unknown, revoked or expired; a spent one presented again
    /// revokes its whole family (`token_reused`).
    InvalidRefreshToken => [InvalidToken, TokenExpired, TokenReused] + WwwAuthenticate;

    // 403
    /// The caller's role in the tenant is below what this needs.
    InsufficientRole => [InsufficientRole];
    /// The invitation was sent to another address, or its tenant is deactivated.
    InvitationRefused => [InvitationEmailMismatch, TenantInactive];
    /// Only admins invite and only owners invite owners; a deactivated tenant
    /// invites nobody.
    InviteRefused => [InsufficientRole, OwnerRequired, TenantInactive];
    /// Admins change others' roles, only owners touch `owner`, nobody raises their
    /// own role, and a tenant keeps an owner.
    RoleChangeRefused => [InsufficientRole, OwnerRequired, CannotPromoteSelf, LastOwner];
    /// Admins remove others, only owners remove owners, and a tenant keeps an owner.
    RemovalRefused => [InsufficientRole, OwnerRequired, LastOwner];
    /// A tenant keeps at least one owner: make someone else owner first.
    LastOwner => [LastOwner];
    /// Only admins and owners manage API keys, with a verified address to make
    /// one; a key's role is at most its maker's (and only owners revoke owner
    /// keys), and a deactivated tenant gets no new keys.
    ApiKeyRefused => [InsufficientRole, ApiKeyRoleTooHigh, EmailNotVerified, TenantInactive];

    // 404
    /// No such tenant, or the caller is not a member of it.
    TenantNotFound => [TenantNotFound];
    /// No such tenant (or the caller is not a member), or the user is not a member.
    MemberNotFound => [TenantNotFound, MemberNotFound];
    /// No such tenant (or the caller is not a member), or no pending invitation
    /// with this id.
    InvitationNotFound => [TenantNotFound, InvitationNotFound];
    /// No such tenant (or the caller is not a member), or it has no domain claim to
    /// verify.
    NoPendingDomain => [TenantNotFound, NoPendingDomain];
    /// No such tenant (or the caller is not a member), or no API key with this id
    /// in it.
    ApiKeyNotFound => [TenantNotFound, ApiKeyNotFound];

    // 409
    /// The address is already registered, or (with an invitation) already a member.
    RegistrationConflict => [EmailTaken, AlreadyMember, Conflict];
    /// The address is already verified.
    AlreadyVerified => [AlreadyVerified];
    /// Another tenant has this slug.
    SlugTaken => [SlugTaken, Conflict];
    /// Another tenant already uses this domain.
    DomainTaken => [DomainTaken, Conflict];
    /// The TXT record does not hold the proof (the claim stays open), or another
    /// tenant proved the domain first.
    DomainNotVerified => [DomainNotVerified, DomainTaken];
    /// The user is already a member of this tenant.
    AlreadyMember => [AlreadyMember];
    /// The tenant holds the most live API keys allowed (100): revoke one first.
    ApiKeyLimit => [ApiKeyLimit];

    // Reading the request, limits, dependencies.
    /// The body is over `GATEWAY_BODY_LIMIT`.
    PayloadTooLarge => [PayloadTooLarge];
    /// The body is not sent as `application/json`.
    UnsupportedMediaType => [UnsupportedMediaType];
    /// Too many attempts for this address, account or client IP; `Retry-After` says
    /// when to come back. A refused request changes nothing.
    RateLimited => [RateLimited] + RetryAfter;
    /// PostgreSQL or Redis is unreachable, or the password hashing queue is full;
    /// retry shortly.
    Unavailable => [ServiceUnavailable];
}
