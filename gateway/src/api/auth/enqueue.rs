//! Work for the worker, written to the outbox inside the caller's transaction so it
//! is published if and only if the change that caused it commits.

use chrono::Utc;
use secrecy::ExposeSecret;
use shared::db::account_tokens::{self, NewToken, Purpose};
use shared::db::outbox;
use shared::db::users::User;
use shared::queue::{templates, AuthEvent, EmailJob, Envelope, Job};
use sqlx::PgConnection;

use crate::api::error::ApiError;
use crate::api::ApiState;

/// Issues a one-time token of `purpose` for `user` (stored hashed, expiring after
/// [`Purpose::lifetime`]) and enqueues the email that carries it.
///
/// # Errors
/// Database failures.
pub async fn token_email(
    state: &ApiState,
    conn: &mut PgConnection,
    purpose: Purpose,
    user: &User,
) -> Result<(), ApiError> {
    let token = state.opaque.issue();
    let new =
        NewToken { purpose, user_id: user.id, token_hash: &token.hash, expires_at: Utc::now() + purpose.lifetime() };
    account_tokens::insert(&mut *conn, &new).await?;
    let template = match purpose {
        Purpose::EmailVerification => templates::VERIFICATION,
        Purpose::PasswordReset => templates::PASSWORD_RESET,
    };
    let email = EmailJob::new(&user.email, &user.language, template)
        .with("token", token.plaintext.expose_secret())
        .with("name", user.name.as_str());
    let job = match purpose {
        Purpose::EmailVerification => Job::SendVerification(email),
        Purpose::PasswordReset => Job::SendPasswordReset(email),
    };
    outbox::insert(conn, &Envelope::new(job)).await?;
    Ok(())
}

/// Enqueues an auth event for the user's notification feed.
///
/// # Errors
/// Database failures.
pub async fn event(conn: &mut PgConnection, event: AuthEvent) -> Result<(), ApiError> {
    outbox::insert(conn, &Envelope::new(Job::AuthEvent(event))).await?;
    Ok(())
}
