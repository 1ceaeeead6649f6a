//! Every error the gateway answers with, in one table: the HTTP status, the stable
//! wire string clients match on (`{"error": "<code>"}`) and a default message.
//! Both the auth API's [`ApiError`](crate::api::error::ApiError) and the proxy's
//! [`Refusal`](crate::proxy::access::Refusal) carry one, so a code is a variant the
//! compiler checks, never a string compared across modules. README's "Error codes"
//! table lists exactly these (a test checks).

use http::StatusCode;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident => ($status:ident, $wire:literal, $message:literal), )+) => {
        /// A stable error code (model: pingora-error's `ErrorType`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )+
        }

        impl ErrorCode {
            /// Every code, in table order (the README test walks it).
            #[cfg(test)]
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            /// The HTTP status it is answered with.
            #[must_use]
            pub const fn status(self) -> StatusCode {
                match self { $(ErrorCode::$variant => StatusCode::$status,)+ }
            }

            /// The wire string (also the `reason` label of auth-failure metrics).
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $wire,)+ }
            }

            /// The message sent when the caller gives none.
            #[must_use]
            pub const fn message(self) -> &'static str {
                match self { $(ErrorCode::$variant => $message,)+ }
            }
        }
    };
}

error_codes! {
    // Reading the request.
    /// The body, query or path could not be read as this operation needs.
    InvalidRequest => (BAD_REQUEST, "invalid_request", "the request could not be read"),
    /// The body is not JSON.
    UnsupportedMediaType => (UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send the body as application/json"),
    /// The body is over `GATEWAY_BODY_LIMIT`.
    PayloadTooLarge => (PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large"),
    /// No auth API endpoint at this path.
    NotFound => (NOT_FOUND, "not_found", "no such endpoint"),
    /// The endpoint or route does not take this method.
    MethodNotAllowed => (METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed here"),
    /// Too many attempts; `Retry-After` says when to come back.
    RateLimited => (TOO_MANY_REQUESTS, "rate_limited", "too many attempts; retry later"),
    /// The path could be read two ways (encoded `/`, `\`, `;`, double encoding...).
    AmbiguousPath => (BAD_REQUEST, "ambiguous_path", "the path can be read more than one way"),
    /// The path is not a valid absolute path.
    InvalidPath => (BAD_REQUEST, "invalid_path", "the path is not valid"),
    /// The `Host` header is not a host name with an optional port.
    InvalidHost => (BAD_REQUEST, "invalid_host", "the Host header is not a host name with an optional port"),
    /// Two `Authorization` headers, or header and cookie tokens that differ.
    AmbiguousCredentials => (
        BAD_REQUEST,
        "ambiguous_credentials",
        "the request carries more than one Authorization header, or two different access tokens"
    ),
    /// No route matches the host and path.
    RouteNotFound => (NOT_FOUND, "route_not_found", "no route matches this request"),

    // Who is calling.
    /// Email or password is wrong (the same answer whether or not the account exists).
    InvalidCredentials => (UNAUTHORIZED, "invalid_credentials", "email or password is incorrect"),
    /// The route or endpoint needs an access token.
    MissingToken => (UNAUTHORIZED, "missing_token", "send Authorization: Bearer <access token>"),
    /// An access or refresh token that is not valid.
    InvalidToken => (UNAUTHORIZED, "invalid_token", "the token is not valid"),
    /// A one-time token (verification, reset, invitation) that is unknown, used or expired.
    InvalidOneTimeToken => (BAD_REQUEST, "invalid_token", "the token is invalid, used or expired"),
    /// The token has expired.
    TokenExpired => (UNAUTHORIZED, "token_expired", "the token has expired"),
    /// The access token was revoked (logout-all, password reset, deactivation).
    TokenRevoked => (UNAUTHORIZED, "token_revoked", "the access token has been revoked; log in again"),
    /// A spent refresh token came back: its whole family is revoked.
    TokenReused => (UNAUTHORIZED, "token_reused", "this refresh token was already used; the session is revoked"),
    /// The address is already registered.
    EmailTaken => (CONFLICT, "email_taken", "an account with this email already exists"),
    /// The password does not meet the policy.
    WeakPassword => (BAD_REQUEST, "weak_password", "the password does not meet the policy"),
    /// The address is already verified.
    AlreadyVerified => (CONFLICT, "already_verified", "the email address is already verified"),
    /// The route needs a verified email address.
    EmailNotVerified => (FORBIDDEN, "email_not_verified", "verify your email first"),
    /// A cookie-authenticated write from another site.
    CsrfRejected => (
        FORBIDDEN,
        "csrf_rejected",
        "a cookie-authenticated request that changes data must come from this site (Origin or Referer)"
    ),

    // Which tenant, which role.
    /// The route needs a tenant and the request names none.
    TenantRequired => (BAD_REQUEST, "tenant_required", "no tenant in this request"),
    /// The request names two different tenants.
    TenantConflict => (
        BAD_REQUEST,
        "tenant_conflict",
        "the request names two different tenants (domain, subdomain, path or header); name one"
    ),
    /// No such tenant, or (in the API) the caller is not a member.
    TenantNotFound => (NOT_FOUND, "tenant_not_found", "no such tenant, or you are not a member"),
    /// The tenant is deactivated.
    TenantInactive => (FORBIDDEN, "tenant_inactive", "this tenant is deactivated"),
    /// The caller is not a member of the tenant.
    NotAMember => (FORBIDDEN, "not_a_member", "you are not a member of this tenant"),
    /// The caller's role in the tenant is not enough.
    InsufficientRole => (FORBIDDEN, "insufficient_role", "your role is not enough here"),
    /// An API key was used for a tenant other than its own.
    ApiKeyWrongTenant => (FORBIDDEN, "api_key_wrong_tenant", "this API key belongs to another tenant"),
    /// An API key cannot be given a role above its creator's.
    ApiKeyRoleTooHigh => (FORBIDDEN, "api_key_role_too_high", "an API key's role cannot be above your own"),
    /// The tenant holds the most live API keys allowed.
    ApiKeyLimit => (CONFLICT, "api_key_limit", "this tenant has the most live API keys allowed (100); revoke one first"),
    /// No such API key in this tenant.
    ApiKeyNotFound => (NOT_FOUND, "api_key_not_found", "no such API key in this tenant"),
    /// Only an owner grants, changes or removes the owner role.
    OwnerRequired => (FORBIDDEN, "owner_required", "only an owner grants, changes or removes the owner role"),
    /// Nobody raises their own role.
    CannotPromoteSelf => (FORBIDDEN, "cannot_promote_self", "you cannot raise your own role"),
    /// The last owner cannot leave, be removed or be demoted.
    LastOwner => (FORBIDDEN, "last_owner", "a tenant keeps at least one owner; make someone else owner first"),
    /// Another tenant has this slug.
    SlugTaken => (CONFLICT, "slug_taken", "another tenant already has this slug"),
    /// Another tenant uses this domain.
    DomainTaken => (CONFLICT, "domain_taken", "another tenant already uses this domain"),
    /// The domain's TXT record does not (yet) hold the proof.
    DomainNotVerified => (CONFLICT, "domain_not_verified", "the domain's TXT record does not hold the proof"),
    /// The tenant has no domain claim to verify.
    NoPendingDomain => (NOT_FOUND, "no_pending_domain", "this tenant has no domain waiting for verification"),
    /// The user is not a member of this tenant.
    MemberNotFound => (NOT_FOUND, "member_not_found", "that user is not a member of this tenant"),
    /// The user is already a member.
    AlreadyMember => (CONFLICT, "already_member", "that user is already a member of this tenant"),
    /// No pending invitation with this id.
    InvitationNotFound => (NOT_FOUND, "invitation_not_found", "no pending invitation with this id"),
    /// The invitation was sent to another address.
    InvitationEmailMismatch => (
        FORBIDDEN,
        "invitation_email_mismatch",
        "this invitation was sent to another address; log in with that one"
    ),
    /// A unique value is already taken.
    Conflict => (CONFLICT, "conflict", "that value is already taken"),

    // The gateway and what is behind it.
    /// `/auth/verify` from a peer outside `GATEWAY_TRUSTED_PROXIES`.
    UntrustedProxy => (
        FORBIDDEN,
        "untrusted_proxy",
        "forward-auth answers only the proxies in GATEWAY_TRUSTED_PROXIES"
    ),
    /// Forward-auth for nginx, whose `auth_request` understands only 401 and
    /// 403: any other refusal (its code in `X-Auth-Error`, its status in
    /// `X-Auth-Status`).
    ForwardAuthDenied => (FORBIDDEN, "forward_auth_denied", "the original request would be refused; see X-Auth-Error"),
    /// The host asked for is not covered by the certificate of the TLS connection
    /// the request came on (HTTP/2 connection reuse, or a forged Host): the client
    /// opens a new connection for it (RFC 9110, 421).
    MisdirectedRequest => (
        MISDIRECTED_REQUEST,
        "misdirected_request",
        "this connection's certificate does not cover the host asked for; connect to it anew"
    ),
    /// The upstream app could not be reached.
    BadGateway => (BAD_GATEWAY, "bad_gateway", "the upstream is unavailable"),
    /// The HTTPS upstream's certificate was not accepted (untrusted, expired, for
    /// another name) or its TLS handshake failed (it wanted a client certificate
    /// the route does not have...).
    UpstreamTls => (
        BAD_GATEWAY,
        "upstream_tls",
        "the upstream's TLS certificate was not accepted, or the TLS handshake with it failed"
    ),
    /// The upstream app did not answer in time.
    UpstreamTimeout => (GATEWAY_TIMEOUT, "upstream_timeout", "the upstream did not answer in time"),
    /// PostgreSQL or Redis is unreachable.
    ServiceUnavailable => (SERVICE_UNAVAILABLE, "service_unavailable", "a backing service is unavailable; retry shortly"),
    /// A bug or an unexpected failure; the cause is in the gateway's log.
    InternalError => (INTERNAL_SERVER_ERROR, "internal_error", "something went wrong on our side"),
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::ErrorCode;

    /// `(code, status)` rows of README's "Error codes" table.
    fn readme_rows() -> BTreeSet<(String, u16)> {
        let readme = include_str!("../../README.md");
        let table = readme.split("### Error codes").nth(1).expect("README has an Error codes section");
        table
            .lines()
            .skip_while(|line| !line.starts_with('|'))
            .take_while(|line| line.starts_with('|'))
            .skip(2)
            .map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let code = cells[1].trim_matches('`').to_owned();
                let status = cells[2].parse().unwrap_or_else(|_| panic!("status in README row {line:?}"));
                (code, status)
            })
            .collect()
    }

    #[test]
    fn readme_lists_exactly_the_error_codes() {
        let enum_rows: BTreeSet<(String, u16)> =
            ErrorCode::ALL.iter().map(|c| (c.as_str().to_owned(), c.status().as_u16())).collect();
        let readme = readme_rows();
        let missing: Vec<_> = enum_rows.difference(&readme).collect();
        let extra: Vec<_> = readme.difference(&enum_rows).collect();
        assert!(missing.is_empty() && extra.is_empty(), "README lacks {missing:?}; README has unknown {extra:?}");
    }

    #[test]
    fn a_wire_string_has_one_status_except_invalid_token() {
        for a in ErrorCode::ALL {
            for b in ErrorCode::ALL {
                if a != b && a.as_str() == b.as_str() {
                    assert_eq!(a.as_str(), "invalid_token", "{a:?} and {b:?} share a wire string");
                }
            }
        }
    }

    #[test]
    fn wire_strings_are_snake_case() {
        for code in ErrorCode::ALL {
            assert!(code.as_str().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{code:?}");
            assert!(code.status().is_client_error() || code.status().is_server_error(), "{code:?}");
        }
    }
}
