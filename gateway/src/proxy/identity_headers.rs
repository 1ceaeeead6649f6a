//! Identity headers: everything a client could use to impersonate someone is
//! removed before forwarding, then the gateway's own are set.

use pingora::http::RequestHeader;
use pingora::Result;

use super::access::Identity;

/// Prefixes of headers only the gateway may set.
const RESERVED_PREFIXES: &[&str] = &["x-user-", "x-tenant-", "x-tenantgate-"];

/// Other identity headers upstream frameworks are known to trust.
const RESERVED_NAMES: &[&str] = &[
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-preferred-username",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-remote-user",
    "remote-user",
];

/// Whether the gateway owns this header name (lowercase, as `http` stores it).
pub fn is_reserved(name: &str) -> bool {
    RESERVED_PREFIXES.iter().any(|p| name.starts_with(p)) || RESERVED_NAMES.contains(&name)
}

/// Removes every reserved header the client sent.
pub fn strip(req: &mut RequestHeader) {
    let spoofed: Vec<http::HeaderName> = req.headers.keys().filter(|n| is_reserved(n.as_str())).cloned().collect();
    for name in spoofed {
        req.remove_header(&name);
    }
}

/// Sets `X-User-*` and `X-Tenant-*` from the decided identity.
///
/// # Errors
/// When a value is not a valid header value (cannot happen for ids and slugs;
/// emails are validated at registration).
pub fn inject(req: &mut RequestHeader, identity: &Identity) -> Result<()> {
    if let Some(user) = &identity.user {
        req.insert_header("x-user-id", user.id.to_string())?;
        req.insert_header("x-user-email", user.email.as_str())?;
    }
    if let Some(tenant) = &identity.tenant {
        req.insert_header("x-tenant-id", tenant.id.to_string())?;
        req.insert_header("x-tenant-slug", tenant.slug.as_str())?;
    }
    if let Some(role) = identity.role {
        req.insert_header("x-tenant-role", role.as_str())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_every_identity_header_and_keeps_the_rest() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for name in
            ["X-User-Id", "x-tenant-role", "X-Tenant-Slug", "X-Tenantgate-Assertion", "X-Forwarded-User", "Remote-User"]
        {
            req.append_header(name, "spoofed").unwrap();
        }
        req.append_header("x-user-id", "twice").unwrap();
        req.append_header("accept", "text/html").unwrap();
        req.append_header("x-users-count", "3").unwrap();
        strip(&mut req);
        let mut left: Vec<&str> = req.headers.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "x-users-count"]);
    }
}
