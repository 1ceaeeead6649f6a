//! The `handle` step: one delivery in, one [`Outcome`] out. It does the side effect
//! (send the email, store and publish the notification) but never touches the
//! channel; the consume loop ([`crate::consumer`]) settles the delivery according
//! to the outcome. Tests drive it directly.

use shared::portal_paths as paths;

use anyhow::Context;
use shared::config::{PublicUrl, Settings};
use shared::db::{notifications, processed_messages};
use shared::live::LiveFeed;
use shared::queue::{AuthEvent, EmailJob, Envelope, Job, JobQueue, NotificationMessage, SCHEMA_VERSION};
use shared::telemetry::error_chain;
use shared::tokens::TokenHasher;
use sqlx::PgPool;

use crate::mail::{Mailer, SendError, Templates};
use crate::metrics::Metrics;

/// What to do with a delivery once [`Jobs::handle`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done (or done before): acknowledge.
    Ack,
    /// Failed in a way that may pass later: retry after a backoff, or dead-letter
    /// once the attempts are used up. The reason is for logs and the dead-letter
    /// header; it never holds the body.
    Retry(String),
    /// Can never succeed (unparsable, unknown template, bad address): move to the
    /// dead-letter queue now.
    DeadLetter(String),
}

impl Outcome {
    /// The `outcome` label of `tenantgate_worker_jobs_total` (one of
    /// [`crate::metrics::OUTCOMES`]).
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Ack => "ok",
            Outcome::Retry(_) => "retried",
            Outcome::DeadLetter(_) => "dead",
        }
    }
}

/// One delivery as the handler sees it.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The queue it came from.
    pub queue: JobQueue,
    /// The raw body.
    pub body: &'a [u8],
    /// 1 for the first attempt, incremented by each retry.
    pub attempt: u32,
    /// Whether the broker delivered it before (a consumer died holding it).
    pub redelivered: bool,
}

/// Where links in emails point, and the product name they show.
#[derive(Debug, Clone)]
pub struct Links {
    /// `APP_URL`.
    pub app_url: PublicUrl,
    /// `APP_NAME`.
    pub app_name: String,
}

impl Links {
    /// The link for a job: `APP_URL` + the gateway's login-portal page for the job
    /// type + the token. Nothing from the message but the token (checked to be one
    /// of ours) enters the URL.
    fn for_job(&self, job: &Job, token: &str) -> Option<String> {
        let path = match job {
            Job::SendVerification(_) => paths::VERIFIED,
            Job::SendPasswordReset(_) => paths::RESET,
            Job::SendInvitation(_) => paths::INVITATION,
            Job::AuthEvent(_) => return None,
        };
        TokenHasher::looks_valid(token).then(|| format!("{}{path}?token={token}", self.app_url.base()))
    }
}

/// Everything a job needs. Shared by all in-flight jobs.
pub struct Jobs {
    /// Postgres: idempotency records and notifications.
    pub pool: PgPool,
    /// The mail transport.
    pub mailer: Mailer,
    /// The compiled templates.
    pub templates: Templates,
    /// Live delivery of stored notifications (Redis pub/sub, or in process).
    pub live: LiveFeed,
    /// Link building.
    pub links: Links,
    /// Metrics (SMTP errors are counted here).
    pub metrics: Metrics,
}

impl Jobs {
    /// The jobs `settings` describe, over `pool`, publishing notifications on `live`
    /// and counting into `metrics`. Opens no connection yet.
    ///
    /// # Errors
    /// An unusable `SMTP_FROM` or `MAIL_DIR`, or templates that do not compile.
    pub fn build(settings: &Settings, pool: PgPool, live: LiveFeed, metrics: Metrics) -> anyhow::Result<Jobs> {
        Ok(Jobs {
            pool,
            mailer: Mailer::new(&settings.smtp, &settings.mail).context("building the mail transport")?,
            templates: Templates::new().context("compiling email templates")?,
            live,
            links: Links { app_url: settings.app.url.clone(), app_name: settings.app.name.clone() },
            metrics,
        })
    }

    /// Runs one delivery to completion and says how to settle it.
    pub async fn handle(&self, incoming: &Incoming<'_>) -> Outcome {
        let envelope = match Envelope::from_slice(incoming.body) {
            Ok(envelope) => envelope,
            // serde's message may quote the input (an address, a token): keep only
            // the category and position.
            Err(e) => {
                return Outcome::DeadLetter(format!(
                    "unparsable message ({:?} error at line {} column {})",
                    e.classify(),
                    e.line(),
                    e.column()
                ))
            }
        };
        if envelope.schema_version > SCHEMA_VERSION {
            return Outcome::DeadLetter(format!(
                "schema version {} is newer than this worker's {SCHEMA_VERSION}",
                envelope.schema_version
            ));
        }
        if envelope.queue() != incoming.queue {
            return Outcome::DeadLetter(format!("a {} job on the {} queue", envelope.job.kind(), incoming.queue));
        }
        match &envelope.job {
            Job::SendVerification(email) | Job::SendPasswordReset(email) | Job::SendInvitation(email) => {
                self.send_email(&envelope, email).await
            }
            Job::AuthEvent(event) => self.notify(&envelope, event, incoming).await,
        }
    }

    async fn send_email(&self, envelope: &Envelope, job: &EmailJob) -> Outcome {
        match processed_messages::is_processed(&self.pool, envelope.id).await {
            Ok(true) => {
                tracing::info!(message_id = %envelope.id, "email already sent; acknowledging the duplicate");
                return Outcome::Ack;
            }
            Ok(false) => {}
            Err(e) => return Outcome::Retry(format!("idempotency check failed: {}", error_chain(&e))),
        }
        let message = match self.compose(envelope, job) {
            Ok(message) => message,
            Err(reason) => return Outcome::DeadLetter(reason),
        };
        if let Err(e) = self.mailer.send(message).await {
            self.metrics.smtp_errors.with_label_values(&[e.kind()]).inc();
            return match e {
                SendError::Permanent(_) => Outcome::DeadLetter(e.to_string()),
                SendError::Transient(_) | SendError::Connection(_) => Outcome::Retry(e.to_string()),
            };
        }
        // The email is gone: whatever happens now, do not send it again. A failed
        // record only weakens the duplicate check for this one message.
        if let Err(e) =
            processed_messages::record(&self.pool, envelope.id, JobQueue::Email.as_str(), envelope.job.kind()).await
        {
            tracing::warn!(message_id = %envelope.id, error = %error_chain(&e), "sent, but not recorded as processed");
        }
        Outcome::Ack
    }

    /// Renders and assembles the email; `Err` is a dead-letter reason.
    fn compose(&self, envelope: &Envelope, job: &EmailJob) -> Result<crate::mail::Outgoing, String> {
        let token = job.data.get("token").and_then(|t| t.as_str()).unwrap_or_default();
        let link = self.links.for_job(&envelope.job, token).ok_or("data.token is missing or malformed")?;
        let mut context = job.data.clone();
        // Links are ours alone: whatever the message carried under these keys is
        // replaced.
        context.insert("token".into(), serde_json::Value::Null);
        context.insert("link".into(), link.into());
        context.insert("appName".into(), self.links.app_name.clone().into());
        context.insert("appUrl".into(), self.links.app_url.base().into());
        let rendered =
            self.templates.render(&job.template, job.language.as_str(), &context).map_err(|e| error_chain(&e))?;
        self.mailer.build(job.to.as_str(), envelope.id, rendered).map_err(|e| error_chain(&e))
    }

    async fn notify(&self, envelope: &Envelope, event: &AuthEvent, incoming: &Incoming<'_>) -> Outcome {
        let data = serde_json::Value::Object(event.data.clone());
        let new = notifications::NewNotification {
            id: envelope.id,
            user_id: event.user_id,
            tenant_id: event.tenant_id,
            event: event.event.as_str(),
            data: &data,
            at: event.at,
        };
        let message = match notifications::insert(&self.pool, &new).await {
            Ok(notifications::Inserted::New(row)) => NotificationMessage::from(row.as_ref()),
            // Stored by an earlier attempt, which may have died before publishing:
            // publish again (consumers dedupe on the id). A plain duplicate (the
            // relay sent it twice) is done.
            Ok(notifications::Inserted::Duplicate) if incoming.redelivered || incoming.attempt > 1 => {
                NotificationMessage {
                    id: envelope.id,
                    user_id: event.user_id,
                    tenant_id: event.tenant_id,
                    event: event.event.as_str().to_owned(),
                    data,
                    at: event.at,
                    read_at: None,
                }
            }
            Ok(notifications::Inserted::Duplicate) => return Outcome::Ack,
            Ok(notifications::Inserted::UnknownUser) => {
                tracing::info!(message_id = %envelope.id, "notification for a deleted user dropped");
                return Outcome::Ack;
            }
            Err(e) => return Outcome::Retry(format!("storing the notification failed: {}", error_chain(&e))),
        };
        let payload = match serde_json::to_string(&message) {
            Ok(payload) => payload,
            Err(e) => return Outcome::DeadLetter(format!("notification not encodable: {e}")),
        };
        match self.live.publish(event.user_id, &payload).await {
            Ok(_) => Outcome::Ack,
            Err(e) => Outcome::Retry(format!("publishing the notification failed: {}", error_chain(&e))),
        }
    }
}
