//! The login portal's URLs, in one place: the gateway serves them and links
//! between them, the worker puts them into emails.

/// Everything the portal serves is under this prefix.
pub const PREFIX: &str = "/auth/ui";
/// The landing page: the tenants page when signed in, else the login page.
pub const INDEX: &str = "/auth/ui/";
/// Sign in (`?return_to=`, `?signed_out=1`).
pub const LOGIN: &str = "/auth/ui/login";
/// Create an account.
pub const REGISTER: &str = "/auth/ui/register";
/// Ask for a password reset link.
pub const FORGOT: &str = "/auth/ui/forgot";
/// Set a new password (`?token=`, from the reset email).
pub const RESET: &str = "/auth/ui/reset";
/// Confirm an address (`?token=`, from the verification email).
pub const VERIFIED: &str = "/auth/ui/verified";
/// Accept an invitation (`?token=`, from the invitation email).
pub const INVITATION: &str = "/auth/ui/invitation";
/// Pick a tenant (`?return_to=`, `?accepted=1`).
pub const TENANTS: &str = "/auth/ui/tenants";
/// Sign out.
pub const LOGOUT: &str = "/auth/ui/logout";
/// One tenant's API keys (admins and owners): the list and, posted, a new key.
/// An axum route; [`api_keys`] fills in the slug.
pub const API_KEYS: &str = "/auth/ui/tenants/{slug}/api-keys";
/// Revoke one of a tenant's API keys (a POST naming the key).
pub const API_KEYS_REVOKE: &str = "/auth/ui/tenants/{slug}/api-keys/revoke";

/// [`API_KEYS`] for the tenant `slug`.
#[must_use]
pub fn api_keys(slug: &str) -> String {
    API_KEYS.replace("{slug}", slug)
}

/// [`API_KEYS_REVOKE`] for the tenant `slug`.
#[must_use]
pub fn api_keys_revoke(slug: &str) -> String {
    API_KEYS_REVOKE.replace("{slug}", slug)
}

/// Whether `path` is the portal's (the prefix itself or under it).
#[must_use]
pub fn owns(path: &str) -> bool {
    path == PREFIX || path.starts_with(INDEX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_is_under_the_prefix() {
        let api_keys = api_keys("acme");
        let revoke = api_keys_revoke("acme");
        for page in [INDEX, LOGIN, REGISTER, FORGOT, RESET, VERIFIED, INVITATION, TENANTS, LOGOUT, &api_keys, &revoke] {
            assert!(owns(page) && page.starts_with(INDEX), "{page}");
        }
        assert!(owns("/auth/ui") && !owns("/auth/uix") && !owns("/auth/login"));
    }

    #[test]
    fn tenant_pages_name_the_slug_under_the_tenants_page() {
        assert_eq!(api_keys("acme"), "/auth/ui/tenants/acme/api-keys");
        assert_eq!(api_keys_revoke("acme"), "/auth/ui/tenants/acme/api-keys/revoke");
        assert!(API_KEYS.starts_with(&format!("{TENANTS}/")) && API_KEYS_REVOKE.starts_with(API_KEYS));
    }
}
