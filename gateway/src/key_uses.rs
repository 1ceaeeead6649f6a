//! When tenant API keys are used: `last_used_at`, and an audit entry for a key's
//! first use, written in batches off the proxied path.
//!
//! A request an API key authenticated calls [`KeyUses::touch`]: one atomic load
//! on its cached key, and a short lock at most once a minute per key (the first
//! use this process sees, then once per [`REPORT_EVERY`]). [`KeyUses::flush`],
//! every [`FLUSH_EVERY`] from the control plane, writes what was collected in one
//! transaction; a failed write keeps it for the next round.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use shared::cache::CachedApiKey;
use shared::db::api_keys::{self, Use};
use shared::db::audit::{self, AuditAction, NewEntry};
use shared::domain::ApiKeyId;
use sqlx::PgPool;

/// A key's use is reported at most this often per process (seconds).
pub const REPORT_EVERY: i64 = 60;

/// How often collected uses are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(2);

/// Uses not yet written, latest per key.
#[derive(Default)]
pub struct KeyUses {
    pending: Mutex<HashMap<ApiKeyId, DateTime<Utc>>>,
}

impl KeyUses {
    /// Notes a use of `key` now, if one is due (see the module docs).
    pub fn touch(&self, key: &CachedApiKey) {
        let now = Utc::now();
        if key.report_use(now.timestamp(), REPORT_EVERY) {
            self.note(key.id, now);
        }
    }

    fn note(&self, id: ApiKeyId, at: DateTime<Utc>) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let latest = pending.entry(id).or_insert(at);
        *latest = (*latest).max(at);
    }

    fn take(&self) -> Vec<Use> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.drain().map(|(id, at)| Use { id, at }).collect()
    }

    /// Writes the collected uses: `last_used_at`, and an `api_key.first_used`
    /// audit entry for each key never used before. On failure the uses are kept
    /// for the next call.
    ///
    /// # Errors
    /// When the database write fails.
    pub async fn flush(&self, pool: &PgPool) -> Result<usize, shared::db::Error> {
        let uses = self.take();
        if uses.is_empty() {
            return Ok(0);
        }
        match write(pool, &uses).await {
            Ok(()) => Ok(uses.len()),
            Err(e) => {
                for u in uses {
                    self.note(u.id, u.at);
                }
                Err(e)
            }
        }
    }
}

async fn write(pool: &PgPool, uses: &[Use]) -> Result<(), shared::db::Error> {
    let mut tx = pool.begin().await?;
    let first = api_keys::record_uses(&mut tx, uses).await?;
    for (id, tenant) in first {
        let at = uses.iter().find(|u| u.id == id).map(|u| u.at);
        audit::insert(
            &mut *tx,
            &NewEntry {
                tenant_id: Some(tenant),
                actor_id: None,
                action: AuditAction::ApiKeyFirstUsed,
                target: Some(format!("api_key:{id}")),
                metadata: serde_json::json!({ "at": at }),
                request_id: None,
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
