//! Password hashing: argon2id with OWASP's parameters, on a bounded blocking pool.
//!
//! Hashing is deliberately slow (~20-50 ms of CPU). Running it on the async threads
//! would stall proxied traffic, and running an unbounded number at once would let a
//! burst of logins take every core; a semaphore caps the jobs in flight and the rest
//! wait asynchronously.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::domain::Password;

/// OWASP (2023) argon2id minimum: 19 MiB memory, 2 iterations, 1 lane.
pub const OWASP_MEMORY_KIB: u32 = 19_456;
/// See [`OWASP_MEMORY_KIB`].
pub const OWASP_ITERATIONS: u32 = 2;
/// See [`OWASP_MEMORY_KIB`].
pub const OWASP_PARALLELISM: u32 = 1;

/// Errors from hashing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// argon2 refused the input or parameters.
    #[error("password hashing failed: {0}")]
    Hash(argon2::password_hash::Error),
    /// The blocking task panicked or the pool shut down.
    #[error("password hashing task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// The result of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The password matches the stored hash.
    Match,
    /// It does not (or there was no account, or the stored hash was unreadable).
    Mismatch,
}

/// Hashes and verifies passwords on a bounded pool. Cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// A real hash of a random password, verified against when an account does not
    /// exist so that both paths cost the same.
    dummy_hash: Arc<str>,
}

fn argon2() -> Argon2<'static> {
    // The parameters are constants within argon2's bounds.
    #[allow(clippy::expect_used)]
    let params = Params::new(OWASP_MEMORY_KIB, OWASP_ITERATIONS, OWASP_PARALLELISM, None)
        .expect("OWASP argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &str) -> Result<String, Error> {
    let salt = SaltString::generate(&mut OsRng);
    argon2().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(Error::Hash)
}

impl PasswordHasher {
    /// A hasher running at most `concurrency` argon2 jobs at once. Computes the dummy
    /// hash up front (one hash's worth of CPU).
    ///
    /// # Errors
    /// [`Error::Hash`] if argon2 cannot hash at all.
    pub fn new(concurrency: usize) -> Result<PasswordHasher, Error> {
        let random: String = {
            use rand::RngCore;
            let mut bytes = [0u8; 24];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        };
        Ok(PasswordHasher {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: hash_blocking(&random)?.into(),
        })
    }

    /// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`).
    ///
    /// # Errors
    /// [`Error`] when argon2 fails or the task cannot run.
    pub async fn hash(&self, password: &Password) -> Result<String, Error> {
        let _permit = self.permits.acquire().await.map_err(|_| Error::Hash(argon2::password_hash::Error::Crypto))?;
        let password = password.expose().to_owned();
        tokio::task::spawn_blocking(move || hash_blocking(&password)).await?
    }

    /// Checks `candidate` against `stored`; with no stored hash (unknown account) it
    /// checks against a dummy hash and reports a mismatch, in the same time.
    /// The comparison inside argon2 is constant-time.
    ///
    /// # Errors
    /// [`Error::Task`] when the task cannot run.
    pub async fn verify(&self, candidate: &str, stored: Option<&str>) -> Result<Verification, Error> {
        let _permit = self.permits.acquire().await.map_err(|_| Error::Hash(argon2::password_hash::Error::Crypto))?;
        let known = stored.is_some();
        let stored = stored.map(str::to_owned).unwrap_or_else(|| self.dummy_hash.to_string());
        let candidate = candidate.to_owned();
        let matched = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&stored)
                .is_ok_and(|parsed| argon2().verify_password(candidate.as_bytes(), &parsed).is_ok())
        })
        .await?;
        Ok(if matched && known { Verification::Match } else { Verification::Mismatch })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_with_owasp_argon2id_and_verifies() {
        let hasher = PasswordHasher::new(2).unwrap();
        let pw = Password::parse("correct horse battery".into()).unwrap();
        let hash = hasher.hash(&pw).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert_eq!(hasher.verify("correct horse battery", Some(&hash)).await.unwrap(), Verification::Match);
        assert_eq!(hasher.verify("wrong horse battery", Some(&hash)).await.unwrap(), Verification::Mismatch);
        assert_eq!(hasher.verify("correct horse battery", None).await.unwrap(), Verification::Mismatch);
        assert_eq!(hasher.verify("x", Some("not a phc string")).await.unwrap(), Verification::Mismatch);
    }
}
