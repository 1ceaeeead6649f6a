//! Cache keys, as our design names them, behind a deployment prefix.

use serde::{Deserialize, Serialize};

use crate::domain::{TenantId, UserId};

/// One cached fact. Its Redis key is `{prefix}{self}`, e.g. `tg:user:{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Key {
    /// `user:{userId}`: the user's email, verification and token version.
    User {
        /// The user.
        user: UserId,
    },
    /// `tenant:{tenantId}`: slug, name, domain, active flag.
    Tenant {
        /// The tenant.
        tenant: TenantId,
    },
    /// `user:{userId}:tenant:{tenantId}:role`: the role, or none.
    Role {
        /// The user.
        user: UserId,
        /// The tenant.
        tenant: TenantId,
    },
    /// `tenant:slug:{slug}`: the tenant id for a slug.
    Slug {
        /// The slug (lowercase).
        slug: String,
    },
    /// `tenant:domain:{domain}`: the tenant id for a custom domain.
    Domain {
        /// The domain (lowercase).
        domain: String,
    },
    /// `apikey:{publicId}`: a live API key's tenant, role, expiry and secret hash.
    ApiKey {
        /// The key's public id.
        public_id: String,
    },
}

impl Key {
    /// The cache name used in metrics labels.
    pub fn cache_name(&self) -> &'static str {
        match self {
            Key::User { .. } => "user",
            Key::Tenant { .. } => "tenant",
            Key::Role { .. } => "role",
            Key::Slug { .. } => "slug",
            Key::Domain { .. } => "domain",
            Key::ApiKey { .. } => "api_key",
        }
    }

    /// The Redis key under `prefix`.
    pub fn redis_key(&self, prefix: &str) -> String {
        match self {
            Key::User { user } => format!("{prefix}user:{user}"),
            Key::Tenant { tenant } => format!("{prefix}tenant:{tenant}"),
            Key::Role { user, tenant } => format!("{prefix}user:{user}:tenant:{tenant}:role"),
            Key::Slug { slug } => format!("{prefix}tenant:slug:{slug}"),
            Key::Domain { domain } => format!("{prefix}tenant:domain:{domain}"),
            Key::ApiKey { public_id } => format!("{prefix}apikey:{public_id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_design_names() {
        let (u, t) = (UserId::new(), TenantId::new());
        assert_eq!(Key::User { user: u }.redis_key("tg:"), format!("tg:user:{u}"));
        assert_eq!(Key::Tenant { tenant: t }.redis_key("tg:"), format!("tg:tenant:{t}"));
        assert_eq!(Key::Role { user: u, tenant: t }.redis_key("tg:"), format!("tg:user:{u}:tenant:{t}:role"));
        assert_eq!(Key::Slug { slug: "acme".into() }.redis_key(""), "tenant:slug:acme");
        assert_eq!(Key::ApiKey { public_id: "AbC123xyz789".into() }.redis_key("tg:"), "tg:apikey:AbC123xyz789");
    }
}
