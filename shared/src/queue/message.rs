//! The wire types of queued messages: what the gateway enqueues and the worker reads.
//!
//! Every message is an [`Envelope`]: an id (also the AMQP `message-id`, the outbox
//! row id and the worker's idempotency key), a schema version and one [`Job`],
//! tagged by its `type`:
//!
//! ```json
//! {"id":"0190...","schemaVersion":1,"createdAt":"2026-11-27T10:00:00Z",
//!  "type":"send-verification","to":"ada@example.com","template":"verification",
//!  "language":"de","data":{"token":"...","name":"Ada"}}
//! ```

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::JobQueue;
use crate::domain::{Email, Language, TenantId, UserId};

/// The schema version this build writes and reads. A reader refuses (dead-letters)
/// messages with a higher version rather than guessing at them.
pub const SCHEMA_VERSION: u32 = 1;

/// The template names the worker ships (in every language, English as fallback).
pub mod templates {
    /// Verify an address after registration; data: `token`, optional `name`.
    pub const VERIFICATION: &str = "verification";
    /// Reset a forgotten password; data: `token`, optional `name`.
    pub const PASSWORD_RESET: &str = "password-reset";
    /// Join a tenant; data: `token`, `tenantName`, optional `inviterName`, `role`.
    pub const INVITATION: &str = "invitation";
}

/// One queued message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Unique per message; redeliveries and retries keep it.
    pub id: Uuid,
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// When the message was created (by the gateway, before the outbox).
    pub created_at: DateTime<Utc>,
    /// What to do.
    #[serde(flatten)]
    pub job: Job,
}

impl Envelope {
    /// Wraps `job` with a fresh time-ordered id and the current schema version.
    pub fn new(job: Job) -> Envelope {
        Envelope { id: Uuid::now_v7(), schema_version: SCHEMA_VERSION, created_at: Utc::now(), job }
    }

    /// The queue this message belongs on.
    pub fn queue(&self) -> JobQueue {
        self.job.queue()
    }

    /// Parses a message body.
    ///
    /// # Errors
    /// The JSON error when the body is not an envelope of a known `type`.
    pub fn from_slice(body: &[u8]) -> Result<Envelope, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

/// The job a message asks for; the `type` field on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Job {
    /// Email an address-verification link.
    SendVerification(EmailJob),
    /// Email a password-reset link.
    SendPasswordReset(EmailJob),
    /// Email a tenant invitation link.
    SendInvitation(EmailJob),
    /// Store and publish a notification for a user.
    AuthEvent(AuthEvent),
}

impl Job {
    /// The queue the job is consumed from.
    pub fn queue(&self) -> JobQueue {
        match self {
            Job::SendVerification(_) | Job::SendPasswordReset(_) | Job::SendInvitation(_) => JobQueue::Email,
            Job::AuthEvent(_) => JobQueue::Notification,
        }
    }

    /// The wire `type` (also the AMQP `type` property and the outbox `kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Job::SendVerification(_) => "send-verification",
            Job::SendPasswordReset(_) => "send-password-reset",
            Job::SendInvitation(_) => "send-invitation",
            Job::AuthEvent(_) => "auth-event",
        }
    }
}

/// An email to render and send. `data` feeds the template; `data.token` is the
/// one-time token the worker puts into a link built from `APP_URL`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailJob {
    /// The recipient address.
    pub to: Email,
    /// A name from [`templates`].
    pub template: String,
    /// A language tag; the worker falls back to English.
    pub language: Language,
    /// Template variables (camelCase keys).
    #[serde(default)]
    pub data: Map<String, Value>,
}

impl EmailJob {
    /// A job for `to` in `language`, with no data yet.
    pub fn new(to: &Email, language: &Language, template: &str) -> EmailJob {
        EmailJob { to: to.clone(), template: template.to_owned(), language: language.clone(), data: Map::new() }
    }

    /// Adds one template variable.
    #[must_use]
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> EmailJob {
        self.data.insert(key.to_owned(), value.into());
        self
    }
}

// Data holds one-time tokens: show only its keys.
impl fmt::Debug for EmailJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailJob")
            .field("template", &self.template)
            .field("language", &self.language)
            .field("data_keys", &self.data.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Something that happened to a user's account, for their notification feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthEvent {
    /// Whose feed it goes to.
    pub user_id: UserId,
    /// The tenant concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<TenantId>,
    /// What happened.
    pub event: AuthEventKind,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Details shown with the event (`role`, `tenantName`, `ip`...); never secrets.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub data: Map<String, Value>,
}

impl AuthEvent {
    /// An event that happened now.
    pub fn now(user_id: UserId, tenant_id: Option<TenantId>, event: AuthEventKind) -> AuthEvent {
        AuthEvent { user_id, tenant_id, event, at: Utc::now(), data: Map::new() }
    }

    /// Adds one detail.
    #[must_use]
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> AuthEvent {
        self.data.insert(key.to_owned(), value.into());
        self
    }
}

/// The kinds of [`AuthEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthEventKind {
    /// The account was created.
    Register,
    /// A login succeeded.
    Login,
    /// A session ended.
    Logout,
    /// The address was verified.
    EmailVerified,
    /// The password was changed or reset.
    PasswordChanged,
    /// The user's role in a tenant changed.
    RoleChanged,
    /// The user joined a tenant.
    MemberAdded,
    /// The user left or was removed from a tenant.
    MemberRemoved,
    /// The user created a tenant.
    TenantCreated,
    /// A tenant the user administers changed (name, domain, settings, activation).
    TenantUpdated,
    /// The user invited someone to a tenant.
    InvitationSent,
}

impl AuthEventKind {
    /// The wire name (`password-changed`...), also stored in `notifications.event`.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthEventKind::Register => "register",
            AuthEventKind::Login => "login",
            AuthEventKind::Logout => "logout",
            AuthEventKind::EmailVerified => "email-verified",
            AuthEventKind::PasswordChanged => "password-changed",
            AuthEventKind::RoleChanged => "role-changed",
            AuthEventKind::MemberAdded => "member-added",
            AuthEventKind::MemberRemoved => "member-removed",
            AuthEventKind::TenantCreated => "tenant-created",
            AuthEventKind::TenantUpdated => "tenant-updated",
            AuthEventKind::InvitationSent => "invitation-sent",
        }
    }
}

/// A stored notification as real-time consumers receive it on Redis (and as the
/// gateway can return it): the JSON published on [`notification_channel`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationMessage {
    /// The notification id (the queue message id): consumers dedupe on it.
    pub id: Uuid,
    /// The owner.
    pub user_id: UserId,
    /// The tenant concerned, if any.
    #[serde(default)]
    pub tenant_id: Option<TenantId>,
    /// The event name (`login`, `role-changed`...).
    pub event: String,
    /// Event details.
    #[serde(default)]
    pub data: Value,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// When the user marked it read.
    #[serde(default)]
    pub read_at: Option<DateTime<Utc>>,
}

impl From<&crate::db::notifications::Notification> for NotificationMessage {
    fn from(n: &crate::db::notifications::Notification) -> Self {
        NotificationMessage {
            id: n.id,
            user_id: n.user_id,
            tenant_id: n.tenant_id.map(TenantId::from),
            event: n.event.clone(),
            data: n.data.clone(),
            at: n.at,
            read_at: n.read_at,
        }
    }
}

/// The Redis pub/sub channel a user's notifications are published on:
/// `{REDIS_KEY_PREFIX}notifications:user:{userId}`.
pub fn notification_channel(key_prefix: &str, user: UserId) -> String {
    format!("{key_prefix}notifications:user:{user}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_with_a_flat_type_tag() {
        let email = Email::parse("ada@example.com").unwrap();
        let job = EmailJob::new(&email, &Language::parse("de").unwrap(), templates::VERIFICATION)
            .with("token", "secret-token")
            .with("name", "Ada");
        let envelope = Envelope::new(Job::SendVerification(job));
        let json = serde_json::to_value(&envelope).unwrap();
        assert_eq!(json["type"], "send-verification");
        assert_eq!(json["schemaVersion"], 1);
        assert_eq!(json["to"], "ada@example.com");
        assert_eq!(json["data"]["name"], "Ada");
        let back: Envelope = serde_json::from_value(json).unwrap();
        assert_eq!(back, envelope);
        assert_eq!(back.queue(), JobQueue::Email);
        assert!(!format!("{envelope:?}").contains("secret-token"));
    }

    #[test]
    fn auth_event_parses_with_optional_tenant_and_refuses_unknown_types() {
        let body = br#"{"id":"0190b4e4-7d0e-7c4a-9a51-2f1c1f0a0a01","schemaVersion":1,
            "createdAt":"2026-11-27T10:00:00Z","type":"auth-event",
            "userId":"0190b4e4-7d0e-7c4a-9a51-2f1c1f0a0a02","event":"password-changed",
            "at":"2026-11-27T10:00:00Z"}"#;
        let envelope = Envelope::from_slice(body).unwrap();
        let Job::AuthEvent(event) = &envelope.job else { panic!("wrong job {envelope:?}") };
        assert_eq!(event.event, AuthEventKind::PasswordChanged);
        assert_eq!(event.tenant_id, None);
        assert_eq!(envelope.queue(), JobQueue::Notification);
        assert!(Envelope::from_slice(br#"{"id":"x","type":"launch-rockets"}"#).is_err());
        assert!(Envelope::from_slice(b"not json").is_err());
    }

    #[test]
    fn channel_names_carry_the_prefix() {
        let user = UserId::parse("0190b4e4-7d0e-7c4a-9a51-2f1c1f0a0a02").unwrap();
        assert_eq!(notification_channel("tg:", user), "tg:notifications:user:0190b4e4-7d0e-7c4a-9a51-2f1c1f0a0a02");
    }
}
