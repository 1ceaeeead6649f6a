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
        for page in [INDEX, LOGIN, REGISTER, FORGOT, RESET, VERIFIED, INVITATION, TENANTS, LOGOUT] {
            assert!(owns(page) && page.starts_with(INDEX), "{page}");
        }
        assert!(owns("/auth/ui") && !owns("/auth/uix") && !owns("/auth/login"));
    }
}
