//! Request and response bodies (the wire types), apart from domain types.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use shared::db::memberships::TenantMembership;
use shared::db::users::User;
use shared::domain::{Email, Language, Slug};

/// `POST /auth/register`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterRequest {
    /// Address.
    pub email: String,
    /// Password (8..=128 characters).
    pub password: SecretString,
    /// Display name.
    pub name: String,
    /// Language tag, `en` by default.
    pub language: Option<String>,
    /// Name of the tenant to create; a personal one when absent.
    pub tenant_name: Option<String>,
    /// An invitation token: join that tenant instead of creating one.
    pub invite_token: Option<SecretString>,
}

/// `POST /auth/login`.
#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    /// Address.
    pub email: String,
    /// Password.
    pub password: SecretString,
}

/// `POST /auth/refresh` and `POST /auth/logout`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    /// The refresh token.
    pub refresh_token: SecretString,
}

/// A user as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserBody {
    /// Id.
    pub id: String,
    /// Address.
    pub email: Email,
    /// Display name.
    pub name: String,
    /// Language tag.
    pub language: Language,
    /// Whether the address was verified.
    pub email_verified: bool,
}

impl From<&User> for UserBody {
    fn from(u: &User) -> UserBody {
        UserBody {
            id: u.id.to_string(),
            email: u.email.clone(),
            name: u.name.clone(),
            language: u.language.clone(),
            email_verified: u.email_verified_at.is_some(),
        }
    }
}

/// One of the user's tenants with their role.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantBody {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Slug.
    pub slug: Slug,
    /// Custom domain.
    pub domain: Option<String>,
    /// Whether its traffic is served.
    pub is_active: bool,
    /// The user's role.
    pub role: &'static str,
}

impl From<&TenantMembership> for TenantBody {
    fn from(m: &TenantMembership) -> TenantBody {
        TenantBody {
            id: m.tenant_id.to_string(),
            name: m.name.clone(),
            slug: m.slug.clone(),
            domain: m.domain.clone(),
            is_active: m.is_active,
            role: m.role.as_str(),
        }
    }
}

/// A fresh token pair.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenPair {
    /// JWT access token.
    pub access_token: String,
    /// Opaque refresh token.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Access-token lifetime in seconds.
    pub expires_in: u64,
}

/// Register and login answers: tokens, the user and their tenants.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionBody {
    /// Tokens.
    #[serde(flatten)]
    pub tokens: TokenPair,
    /// The user.
    pub user: UserBody,
    /// Their tenants.
    pub tenants: Vec<TenantBody>,
}

/// `GET /auth/me`.
#[derive(Debug, Serialize)]
pub struct MeBody {
    /// The user.
    pub user: UserBody,
    /// Their tenants.
    pub tenants: Vec<TenantBody>,
}

/// `POST /auth/verify-email`.
#[derive(Debug, Deserialize)]
pub struct VerifyEmailRequest {
    /// The token from the email.
    pub token: SecretString,
}

/// `POST /auth/verify-email` answer.
#[derive(Debug, Serialize)]
pub struct UserOnlyBody {
    /// The user, now verified.
    pub user: UserBody,
}

/// `POST /auth/forgot-password`.
#[derive(Debug, Deserialize)]
pub struct ForgotPasswordRequest {
    /// The address the account was registered with.
    pub email: String,
}

/// `POST /auth/reset-password`.
#[derive(Debug, Deserialize)]
pub struct ResetPasswordRequest {
    /// The token from the email.
    pub token: SecretString,
    /// The new password (8..=128 characters).
    pub password: SecretString,
}

/// The 202 answer of the endpoints that enqueue an email.
#[derive(Debug, Serialize)]
pub struct AcceptedBody {
    /// Always `accepted`.
    pub status: &'static str,
    /// A sentence for humans, the same whatever happened.
    pub message: &'static str,
}

/// `GET /auth/notifications` query: `?limit=&before=&unread=`.
#[derive(Debug, Deserialize)]
pub struct NotificationsQuery {
    /// Page size (1..=100, 20 by default).
    pub limit: Option<i64>,
    /// Only notifications older than this id (the previous page's `nextBefore`).
    pub before: Option<uuid::Uuid>,
    /// Only unread ones.
    pub unread: Option<bool>,
}

/// `GET /auth/notifications` answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationsBody {
    /// Newest first.
    pub notifications: Vec<shared::queue::NotificationMessage>,
    /// The caller's unread count (all pages).
    pub unread_count: i64,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<uuid::Uuid>,
}

/// `POST /auth/notifications/read`: `{"ids": [...]}` or `{"all": true}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkReadRequest {
    /// Notifications to mark read.
    #[serde(default)]
    pub ids: Vec<uuid::Uuid>,
    /// Mark every notification read.
    #[serde(default)]
    pub all: bool,
}
