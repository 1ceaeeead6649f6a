//! Password hashing: argon2id with OWASP's parameters, on a pool of its own.
//!
//! Hashing is deliberately slow (~20-50 ms of CPU). Running it on the async threads
//! would stall proxied traffic, and running an unbounded number at once would let a
//! burst of logins take every core. So it runs on `PASSWORD_HASH_CONCURRENCY`
//! dedicated threads (the rest wait asynchronously in their queue), and those
//! threads run at a lower scheduling priority ([`HASH_NICE`]): when a login storm
//! and proxied traffic want the same core, the proxy's threads get it first, and
//! logins take longer instead of proxied requests.

use std::sync::{mpsc, Arc, Mutex};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::oneshot;

use crate::domain::Password;

/// OWASP (2023) argon2id minimum: 19 MiB memory, 2 iterations, 1 lane.
pub const OWASP_MEMORY_KIB: u32 = 19_456;
/// See [`OWASP_MEMORY_KIB`].
pub const OWASP_ITERATIONS: u32 = 2;
/// See [`OWASP_MEMORY_KIB`].
pub const OWASP_PARALLELISM: u32 = 1;

/// The nice value of the hashing threads (0 is normal, 19 the lowest): on Linux's
/// scheduler a thread at 10 gets about a tenth of a core that a thread at 0 also
/// wants, and all of an idle one.
pub const HASH_NICE: i32 = 10;

/// How many jobs may wait per hashing thread before [`Error::Busy`] (at ~50 ms a
/// hash, 64 is about three seconds of waiting).
pub const QUEUED_PER_THREAD: usize = 64;

/// Errors from hashing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// argon2 refused the input or parameters.
    #[error("password hashing failed: {0}")]
    Hash(argon2::password_hash::Error),
    /// The hashing thread panicked or the pool stopped.
    #[error("password hashing task failed")]
    Task,
    /// [`QUEUED_PER_THREAD`] jobs per thread are already waiting: the caller
    /// should answer 503 rather than queue work nobody may wait for.
    #[error("password hashing is saturated")]
    Busy,
}

/// The result of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The password matches the stored hash.
    Match,
    /// It does not (or there was no account, or the stored hash was unreadable).
    Mismatch,
}

type Job = Box<dyn FnOnce() + Send>;

/// Hashes and verifies passwords on a bounded pool. Cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    jobs: mpsc::SyncSender<Job>,
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
    /// A hasher running at most `concurrency` argon2 jobs at once, on as many
    /// threads at nice [`HASH_NICE`] (they end when the last clone is dropped).
    /// Computes the dummy hash up front (one hash's worth of CPU).
    ///
    /// # Errors
    /// [`Error::Hash`] if argon2 cannot hash at all; [`Error::Task`] if the
    /// threads cannot start.
    pub fn new(concurrency: usize) -> Result<PasswordHasher, Error> {
        let random: String = {
            use rand::RngCore;
            let mut bytes = [0u8; 24];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        };
        let threads = concurrency.max(1);
        let (jobs, queue) = mpsc::sync_channel::<Job>(threads * QUEUED_PER_THREAD);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("tg-argon2-{i}"))
                .spawn(move || {
                    // Linux gives each thread its own nice value (setpriority on
                    // the calling thread); elsewhere this may lower the process.
                    if let Err(e) = rustix::process::setpriority_process(None, HASH_NICE) {
                        tracing::warn!(error = %e, "cannot lower the password hashing threads' priority");
                    }
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            // A panicking job drops its answer (the caller sees
                            // `Error::Task`) and leaves the thread serving.
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            }
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|_| Error::Task)?;
        }
        Ok(PasswordHasher { jobs, dummy_hash: hash_blocking(&random)?.into() })
    }

    /// Runs `work` on the pool and waits for its result without blocking.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            // The caller went away (the client hung up): no hash for nobody.
            if !tx.is_closed() {
                let _ = tx.send(work());
            }
        });
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => Error::Busy,
            mpsc::TrySendError::Disconnected(_) => Error::Task,
        })?;
        rx.await.map_err(|_| Error::Task)
    }

    /// The nice value of the hashing threads, read from one of them.
    ///
    /// # Errors
    /// [`Error::Task`] when the pool has stopped.
    pub async fn pool_nice(&self) -> Result<i32, Error> {
        self.run(|| rustix::process::getpriority_process(None).unwrap_or(i32::MIN)).await
    }

    /// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`).
    ///
    /// # Errors
    /// [`Error`] when argon2 fails or the task cannot run.
    pub async fn hash(&self, password: &Password) -> Result<String, Error> {
        let password = password.expose().to_owned();
        self.run(move || hash_blocking(&password)).await?
    }

    /// Checks `candidate` against `stored`; with no stored hash (unknown account) it
    /// checks against a dummy hash and reports a mismatch, in the same time.
    /// The comparison inside argon2 is constant-time.
    ///
    /// # Errors
    /// [`Error::Task`] when the task cannot run.
    pub async fn verify(&self, candidate: &str, stored: Option<&str>) -> Result<Verification, Error> {
        let known = stored.is_some();
        let stored = stored.map(str::to_owned).unwrap_or_else(|| self.dummy_hash.to_string());
        let candidate = candidate.to_owned();
        let matched = self
            .run(move || {
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

    #[tokio::test]
    async fn hashing_runs_on_lower_priority_threads_of_its_own() {
        let hasher = PasswordHasher::new(1).unwrap();
        let ours = rustix::process::getpriority_process(None).unwrap();
        assert_eq!(hasher.pool_nice().await.unwrap(), HASH_NICE.max(ours), "the pool's threads are niced");
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), ours, "the caller's thread is not");
        // One thread, many callers: all are answered, in turn.
        let pw = Password::parse("correct horse battery".into()).unwrap();
        let hashes = futures::future::join_all((0..4).map(|_| hasher.hash(&pw))).await;
        assert!(hashes.iter().all(|h| h.as_ref().is_ok_and(|h| h.starts_with("$argon2id$"))));
    }

    #[tokio::test]
    async fn a_panicking_job_leaves_the_pool_serving_and_a_full_queue_says_busy() {
        let hasher = PasswordHasher::new(1).unwrap();
        assert!(matches!(hasher.run(|| panic!("boom")).await, Err(Error::Task)));
        assert_eq!(hasher.verify("x", None).await.unwrap(), Verification::Mismatch, "still serving");

        // Hold the one thread, fill the queue: the next job is refused at once.
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let h = hasher.clone();
        let busy = tokio::spawn(async move { h.run(move || hold.recv().ok()).await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let waiting: Vec<_> = (0..QUEUED_PER_THREAD)
            .map(|_| {
                let h = hasher.clone();
                tokio::spawn(async move { h.run(|| 1).await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(matches!(hasher.run(|| 2).await, Err(Error::Busy)));
        release.send(()).unwrap();
        assert!(busy.await.unwrap().is_ok());
        for w in waiting {
            assert_eq!(w.await.unwrap().unwrap(), 1);
        }
    }
}
