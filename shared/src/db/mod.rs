//! Database access: the only place SQL lives. One module per table or aggregate.
//!
//! Functions take `impl PgExecutor` when they run one statement and may run on the
//! pool, or `&mut PgConnection` when they are steps of a caller's transaction.

pub mod account_tokens;
pub mod api_keys;
pub mod audit;
pub mod domain_claims;
pub mod invitations;
pub mod memberships;
pub mod notifications;
pub mod outbox;
pub mod processed_messages;
pub mod sessions;
pub mod tenants;
pub mod users;

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::config::DatabaseSettings;

/// The embedded migrations (`migrations/` at the workspace root).
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Errors from the database layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A unique constraint refused the write; `constraint` names it.
    #[error("duplicate value for {constraint}")]
    Duplicate {
        /// The violated constraint or unique index.
        constraint: String,
    },
    /// A row held a value the domain types refuse (a bug or a manual edit).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The connection string could not be parsed.
    #[error("invalid DATABASE_URL: {0}")]
    Url(#[source] sqlx::Error),
    /// Anything else the driver reported (connection lost, timeout...).
    #[error("database query failed")]
    Query(#[source] sqlx::Error),
    /// A migration failed to apply.
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return Error::Duplicate { constraint: db.constraint().unwrap_or("unknown").to_owned() };
            }
        }
        Error::Query(e)
    }
}

/// Builds a lazily connecting pool: no connection is opened until the first query,
/// so a process starts (and reports not-ready) while Postgres is down.
///
/// # Errors
/// [`Error::Url`] when `DATABASE_URL` does not parse.
pub fn pool(settings: &DatabaseSettings) -> Result<PgPool, Error> {
    let options: PgConnectOptions = settings.url.expose_secret().parse().map_err(Error::Url)?;
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_secs(3))
        .idle_timeout(Duration::from_secs(300))
        .connect_lazy_with(options))
}

/// Applies pending migrations; safe to run concurrently from several processes
/// (sqlx takes an advisory lock).
///
/// # Errors
/// [`Error::Migrate`] when a migration fails or the database is unreachable.
pub async fn migrate(pool: &PgPool) -> Result<(), Error> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// `SELECT 1`, for readiness probes.
///
/// # Errors
/// [`Error::Query`] when the database does not answer.
pub async fn ping(pool: &PgPool) -> Result<(), Error> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}
