//! Request and response bodies (the wire types), apart from domain types.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use shared::db::memberships::TenantMembership;
use shared::db::users::User;
use shared::domain::{Email, Language, Slug};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, PartialSchema, ToSchema};

/// `POST /auth/register`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterRequest {
    /// Address.
    #[schema(format = "email", max_length = 254)]
    pub email: String,
    /// Password (8..=128 characters).
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 128)]
    pub password: SecretString,
    /// Display name (1..=100 characters, no control characters).
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub name: String,
    /// Language tag (`en`, `pt-BR`), `en` by default.
    #[schema(example = "en", pattern = r"^[A-Za-z]{2,3}([-_][A-Za-z]{2})?$")]
    pub language: Option<String>,
    /// Name of the tenant to create (1..=100 characters, no control characters); a
    /// personal one when absent.
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub tenant_name: Option<String>,
    /// An invitation token: join that tenant instead of creating one.
    #[schema(value_type = Option<String>, pattern = r"^[A-Za-z0-9_-]{43}$")]
    pub invite_token: Option<SecretString>,
}

/// `POST /auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Address (any text: a malformed one is simply wrong credentials).
    pub email: String,
    /// Password.
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

/// `POST /auth/refresh` and `POST /auth/logout`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    /// The refresh token.
    #[schema(value_type = String)]
    pub refresh_token: SecretString,
}

/// A user as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = User)]
pub struct UserBody {
    /// Id.
    #[schema(format = Uuid)]
    pub id: String,
    /// Address.
    #[schema(value_type = String, format = "email")]
    pub email: Email,
    /// Display name.
    pub name: String,
    /// Language tag.
    #[schema(value_type = String, example = "en")]
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
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = TenantMembership)]
pub struct TenantBody {
    /// Id.
    #[schema(format = Uuid)]
    pub id: String,
    /// Display name.
    pub name: String,
    /// Slug.
    #[schema(value_type = String)]
    pub slug: Slug,
    /// Custom domain (verified), or null.
    #[schema(required = true)]
    pub domain: Option<String>,
    /// Whether its traffic is served.
    pub is_active: bool,
    /// The user's role.
    #[schema(schema_with = crate::api::openapi::role)]
    pub role: &'static str,
}

/// `GET /auth/tenants`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Tenants)]
pub struct TenantsBody {
    /// The caller's tenants with their role.
    pub tenants: Vec<TenantBody>,
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
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenPair {
    /// JWT access token.
    pub access_token: String,
    /// Opaque refresh token.
    pub refresh_token: String,
    /// Always `Bearer`.
    #[schema(value_type = String, example = "Bearer")]
    pub token_type: &'static str,
    /// Access-token lifetime in seconds.
    pub expires_in: u64,
}

/// Register and login answers: tokens, the user and their tenants.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Session)]
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
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Me)]
pub struct MeBody {
    /// The user.
    pub user: UserBody,
    /// Their tenants.
    pub tenants: Vec<TenantBody>,
}

/// `POST /auth/verify-email`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct VerifyEmailRequest {
    /// The token from the email.
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_-]{43}$")]
    pub token: SecretString,
}

/// `POST /auth/verify-email` answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = UserEnvelope)]
pub struct UserOnlyBody {
    /// The user, now verified.
    pub user: UserBody,
}

/// `POST /auth/forgot-password`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ForgotPasswordRequest {
    /// The address the account was registered with (any text: the answer is the
    /// same).
    pub email: String,
}

/// `POST /auth/reset-password`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetPasswordRequest {
    /// The token from the email.
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_-]{43}$")]
    pub token: SecretString,
    /// The new password (8..=128 characters).
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 128)]
    pub password: SecretString,
}

/// The 202 answer of the endpoints that enqueue an email.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Accepted)]
pub struct AcceptedBody {
    /// Always `accepted`.
    #[schema(value_type = String, example = "accepted")]
    pub status: &'static str,
    /// A sentence for humans, the same whatever happened.
    #[schema(value_type = String)]
    pub message: &'static str,
}

/// `GET /auth/notifications` query: `?limit=&before=&unread=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationsQuery {
    /// Page size, 20 by default; values outside 1..=100 are clamped into it.
    pub limit: Option<i64>,
    /// Only notifications older than this id (the previous page's `nextBefore`).
    pub before: Option<uuid::Uuid>,
    /// Only unread ones.
    pub unread: Option<bool>,
}

/// `GET /auth/notifications` answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = NotificationsPage)]
pub struct NotificationsBody {
    /// Newest first.
    #[schema(value_type = Vec<Notification>)]
    pub notifications: Vec<shared::queue::NotificationMessage>,
    /// The caller's unread count (all pages).
    pub unread_count: i64,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<uuid::Uuid>,
}

/// `POST /auth/notifications/read`: `{"ids": [...]}` (1 to 500) or `{"all": true}`,
/// not both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkReadRequest {
    /// Notifications to mark read (at most 500; ids not the caller's are ignored).
    #[serde(default)]
    #[schema(max_items = 500)]
    pub ids: Vec<uuid::Uuid>,
    /// Mark every notification read.
    #[serde(default)]
    pub all: bool,
}

/// A notification as `GET /auth/notifications` lists it (the JSON of
/// `shared::queue::NotificationMessage`, which the stream's events carry too).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)] // describes the shape only; the answers serialize the shared type
pub struct Notification {
    /// Id (the queue message id): dedupe on it.
    pub id: uuid::Uuid,
    /// The owner.
    pub user_id: uuid::Uuid,
    /// The tenant concerned, or null.
    #[schema(required = true)]
    pub tenant_id: Option<uuid::Uuid>,
    /// The event (`login`, `role-changed`...).
    pub event: String,
    /// Event details.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// When it happened.
    pub at: chrono::DateTime<chrono::Utc>,
    /// When the user marked it read, or null.
    #[schema(required = true)]
    pub read_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// One event of `GET /auth/notifications/stream` as an SSE client reads it:
/// `event: notification`, `id`: the notification's id, `data`: its JSON.
pub enum NotificationEvent {}

impl PartialSchema for NotificationEvent {
    fn schema() -> RefOr<Schema> {
        let string = || ObjectBuilder::new().schema_type(Type::String);
        ObjectBuilder::new()
            .property("event", string().enum_values(Some(["notification"])))
            .property("id", string().format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))))
            .property(
                "data",
                string()
                    .content_media_type("application/json")
                    .description(Some("The notification, as `Notification` JSON")),
            )
            .required("event")
            .required("id")
            .required("data")
            .description(Some(
                "A notification event; the stream also sends comments (`: connected` first, then keep-alives)",
            ))
            .into()
    }
}

impl ToSchema for NotificationEvent {}
