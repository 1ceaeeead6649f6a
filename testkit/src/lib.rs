//! Test support for tenantgate's integration tests and benches (a dev-dependency
//! only): the machine's service URLs, a database per test, free ports, an SMTP
//! sink, and certificates and HTTPS upstreams (`tls`). Every helper isolates the
//! caller; none stops, flushes or reconfigures a shared service.

// Test support panics on setup failures by design, like the tests it serves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;

use sqlx::{Connection, PgConnection, PgPool};

pub mod smtp;
pub mod tls;

/// The machine's PostgreSQL, as its superuser (trust auth): creates and drops the
/// per-test databases.
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The machine's Redis; tests isolate themselves by key prefix.
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
/// The machine's RabbitMQ; tests isolate themselves by queue-name prefix.
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// A short random id for names that must not collide between parallel tests.
pub fn unique_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A database that exists for one test: created empty (migrations are the
/// caller's, or the binary's with `DATABASE_AUTO_MIGRATE`), dropped on drop.
pub struct TestDb {
    /// The database name (`{prefix}_{id}`).
    pub name: String,
    /// Its connection URL.
    pub url: String,
}

impl TestDb {
    /// `tg_test_<id>`.
    pub async fn create() -> TestDb {
        TestDb::create_named("tg_test").await
    }

    /// `<prefix>_<id>`.
    pub async fn create_named(prefix: &str) -> TestDb {
        let name = format!("{prefix}_{}", unique_id());
        let mut admin = PgConnection::connect(PG_ADMIN_URL).await.expect("connect to postgres");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.expect("create database");
        TestDb { url: format!("postgres://postgres@127.0.0.1:5432/{name}"), name }
    }

    /// A handle on a database another `TestDb` owns (and drops).
    pub fn borrowed(url: &str) -> TestDb {
        TestDb { name: String::new(), url: url.to_owned() }
    }

    /// A pool on it.
    pub async fn pool(&self) -> PgPool {
        PgPool::connect(&self.url).await.expect("connect to test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.name.is_empty() {
            return; // borrowed: the owner drops it
        }
        let name = self.name.clone();
        // Drop runs inside the test's runtime; use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(PG_ADMIN_URL).await {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await;
                }
            });
        })
        .join();
    }
}

/// A port nothing listens on right now. The kernel does not hand the same
/// ephemeral port out again at once, so the race with another process is remote.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind port 0").local_addr().expect("local addr").port()
}
