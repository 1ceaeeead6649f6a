//! The harness: a fresh database, Redis key prefix and queue-name prefix per test,
//! an SMTP sink, and the worker either in-process or as the real binary. Everything
//! is removed on drop; nothing else on the shared services is touched.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use secrecy::SecretString;
use shared::config::{MailTransport, Profile, Settings};
use shared::queue::{self, Envelope, JobQueue, Publisher, Topology};
use sqlx::{Connection, PgConnection, PgPool};

pub use testkit::{AMQP_URL, PG_ADMIN_URL, REDIS_URL};
pub const APP_URL: &str = "https://app.example.test";
pub const JWT_SECRET: &str = "worker-test-access-secret-0123456789abcdef0123";
pub const JWT_REFRESH_SECRET: &str = "worker-test-refresh-secret-0123456789abcdef01";

pub fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var("TEST_LOG").is_ok() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("info,worker=debug,shared=debug")
                .with_test_writer()
                .try_init();
        }
    });
}

/// One test's slice of the shared services.
pub struct TestEnv {
    pub db_name: String,
    pub db_url: String,
    pub pool: PgPool,
    pub redis_prefix: String,
    pub settings: Settings,
    pub sink: testkit::smtp::SmtpSink,
}

impl TestEnv {
    /// A migrated database, unique prefixes, an SMTP sink, and settings pointing at
    /// all of them with fast retries (`max_attempts`, 150 ms doubling).
    pub async fn new(max_attempts: u32) -> TestEnv {
        init_logging();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let db_name = format!("tg_wtest_{id}");
        let mut admin = PgConnection::connect(PG_ADMIN_URL).await.expect("connect to postgres");
        sqlx::query(&format!("CREATE DATABASE {db_name}")).execute(&mut admin).await.expect("create database");
        let db_url = format!("postgres://postgres@127.0.0.1:5432/{db_name}");
        let pool = PgPool::connect(&db_url).await.expect("connect to test database");
        shared::db::migrate(&pool).await.expect("migrate");
        let sink = testkit::smtp::SmtpSink::start().await;
        let redis_prefix = format!("tgw{}:", &id[..12]);

        let mut settings = Settings::default();
        settings.app.env = Profile::Development;
        settings.app.url = shared::config::PublicUrl::parse(APP_URL).unwrap();
        settings.app.name = "Acme".into();
        settings.database.url = SecretString::from(db_url.clone());
        settings.database.max_connections = 10;
        settings.redis.url = Some(SecretString::from(REDIS_URL));
        settings.redis.key_prefix = redis_prefix.clone();
        settings.rabbitmq.url = Some(SecretString::from(AMQP_URL));
        settings.jwt.secret = SecretString::from(JWT_SECRET);
        settings.jwt.refresh_secret = SecretString::from(JWT_REFRESH_SECRET);
        settings.queue.prefix = format!("it.{}.", &id[..12]);
        settings.queue.max_attempts = max_attempts;
        settings.queue.retry_base_delay = Duration::from_millis(150);
        settings.queue.retry_max_delay = Duration::from_secs(2);
        settings.queue.outbox_poll_interval = Duration::from_millis(200);
        settings.smtp.host = "127.0.0.1".into();
        settings.smtp.port = sink.port();
        settings.smtp.timeout = Duration::from_secs(5);
        settings.mail.transport = MailTransport::Smtp;
        settings.worker.admin_listen = SocketAddr::from(([127, 0, 0, 1], 0));
        settings.worker.concurrency = 8;
        settings.worker.shutdown_grace = Duration::from_secs(5);
        settings.validate().expect("test settings are valid");
        TestEnv { db_name, db_url, pool, redis_prefix, settings, sink }
    }

    pub fn broker(&self) -> queue::Config {
        queue::Config::from_settings(&self.settings).expect("RABBITMQ_URL is set")
    }

    pub fn topology(&self) -> Topology {
        Topology::new(&self.settings.queue)
    }

    /// A confirming publisher on a direct connection, with the topology declared.
    pub async fn publisher(&self) -> (lapin::Connection, Publisher) {
        let conn = queue::connect(&SecretString::from(AMQP_URL), "worker test").await.expect("connect to rabbitmq");
        let publisher = Publisher::open(&conn).await.expect("publisher");
        queue::declare(publisher.channel(), &self.topology()).await.expect("declare");
        (conn, publisher)
    }

    pub async fn publish(&self, envelope: &Envelope) {
        let (conn, publisher) = self.publisher().await;
        publisher.publish(&self.topology().queue(envelope.queue()), envelope).await.expect("publish");
        let _ = conn.close(200, "done".into()).await;
    }

    /// Publishes raw bytes (poison) to a queue.
    pub async fn publish_raw(&self, queue: JobQueue, body: &[u8]) {
        let (conn, publisher) = self.publisher().await;
        let id = uuid::Uuid::now_v7();
        let props = queue::properties(id, "garbage", 1, FieldTable::default());
        let pending = publisher.start(&self.topology().queue(queue), id, body, props).await.expect("publish");
        Publisher::finish(pending).await.expect("confirm");
        let _ = conn.close(200, "done".into()).await;
    }

    /// Messages ready in a queue (not counting unacknowledged ones).
    pub async fn depth(&self, queue_name: &str) -> u32 {
        let conn = queue::connect(&SecretString::from(AMQP_URL), "worker test").await.expect("connect");
        let channel = conn.create_channel().await.expect("channel");
        let q = channel
            .queue_declare(
                queue_name.into(),
                QueueDeclareOptions { passive: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .expect("passive declare");
        let _ = conn.close(200, "done".into()).await;
        q.message_count()
    }

    /// Takes (and acknowledges) every message in `queue_name`.
    pub async fn drain_queue(&self, queue_name: &str) -> Vec<lapin::message::Delivery> {
        let conn = queue::connect(&SecretString::from(AMQP_URL), "worker test").await.expect("connect");
        let channel = conn.create_channel().await.expect("channel");
        let mut out = Vec::new();
        while let Some(m) = channel.basic_get(queue_name.into(), BasicGetOptions { no_ack: true }).await.expect("get") {
            out.push(m.delivery);
        }
        let _ = conn.close(200, "done".into()).await;
        out
    }

    /// The environment for the real binary.
    pub fn env(&self) -> Vec<(String, String)> {
        let s = &self.settings;
        [
            ("APP_ENV", "development".to_owned()),
            ("APP_URL", s.app.url.to_string()),
            ("APP_NAME", s.app.name.clone()),
            ("DATABASE_URL", self.db_url.clone()),
            ("DATABASE_MAX_CONNECTIONS", "5".into()),
            ("REDIS_URL", REDIS_URL.into()),
            ("REDIS_KEY_PREFIX", self.redis_prefix.clone()),
            ("RABBITMQ_URL", AMQP_URL.into()),
            ("JWT_SECRET", JWT_SECRET.into()),
            ("JWT_REFRESH_SECRET", JWT_REFRESH_SECRET.into()),
            ("QUEUE_PREFIX", s.queue.prefix.clone()),
            ("QUEUE_MAX_ATTEMPTS", s.queue.max_attempts.to_string()),
            ("QUEUE_RETRY_BASE_DELAY", format!("{}ms", s.queue.retry_base_delay.as_millis())),
            ("QUEUE_RETRY_MAX_DELAY", format!("{}ms", s.queue.retry_max_delay.as_millis())),
            ("SMTP_HOST", "127.0.0.1".into()),
            ("SMTP_PORT", self.sink.port().to_string()),
            ("SMTP_TLS", "none".into()),
            ("MAIL_TRANSPORT", "smtp".into()),
            ("WORKER_ADMIN_LISTEN", "127.0.0.1:0".into()),
            ("WORKER_CONCURRENCY", "4".into()),
            ("WORKER_SHUTDOWN_GRACE", format!("{}ms", s.worker.shutdown_grace.as_millis())),
            ("LOG_LEVEL", "info".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Starts the real `worker` binary (in an empty folder, so no `.env` is read).
    pub fn spawn_process(&self) -> WorkerProcess {
        self.spawn_process_with(&[], None)
    }

    /// [`TestEnv::spawn_process`] with `extra` environment on top, its output
    /// (stdout and stderr) written to `log` if given.
    pub fn spawn_process_with(&self, extra: &[(&str, &str)], log: Option<&std::fs::File>) -> WorkerProcess {
        let dir = std::env::temp_dir().join(format!("tg-worker-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let show = std::env::var("TEST_LOG").is_ok();
        let child = Command::new(env!("CARGO_BIN_EXE_worker"))
            .args(["--config", "does-not-exist.toml", "run"])
            .current_dir(&dir)
            .env_clear()
            .envs(self.env())
            .envs(extra.iter().copied())
            .stdout(match log {
                Some(file) => Stdio::from(file.try_clone().expect("log file")),
                None if show => Stdio::inherit(),
                None => Stdio::null(),
            })
            .stderr(match log {
                Some(file) => Stdio::from(file.try_clone().expect("log file")),
                None if show => Stdio::inherit(),
                None => Stdio::null(),
            })
            .spawn()
            .expect("spawn worker");
        WorkerProcess { child, dir }
    }

    /// Runs the worker in this process until the returned handle is stopped.
    pub async fn spawn_in_process(&self) -> InProcess {
        let app = worker::Application::build(&self.settings).await.expect("build worker");
        let jobs = app.jobs();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        InProcess { jobs, stop: Some(tx), task: Some(task) }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let db_name = self.db_name.clone();
        let queues = self.topology().all_queue_names();
        let redis_prefix = self.redis_prefix.clone();
        // Drop runs inside the test's runtime; use a thread with its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                if let Ok(conn) = queue::connect(&SecretString::from(AMQP_URL), "worker test cleanup").await {
                    if let Ok(channel) = conn.create_channel().await {
                        for q in queues {
                            let _ = channel.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await;
                        }
                    }
                    let _ = conn.close(200, "cleanup".into()).await;
                }
                if let Ok(mut admin) = PgConnection::connect(PG_ADMIN_URL).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
                // Pub/sub leaves no keys, but be tidy if a test wrote any.
                if let Ok(client) = redis::Client::open(REDIS_URL) {
                    if let Ok(mut c) = client.get_multiplexed_async_connection().await {
                        let keys: Vec<String> = redis::cmd("KEYS")
                            .arg(format!("{redis_prefix}*"))
                            .query_async(&mut c)
                            .await
                            .unwrap_or_default();
                        if !keys.is_empty() {
                            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut c).await;
                        }
                    }
                }
            });
        })
        .join();
    }
}

/// The worker running inside the test process.
pub struct InProcess {
    pub jobs: std::sync::Arc<worker::Jobs>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl InProcess {
    pub fn jobs_total(&self, queue: &str, outcome: &str) -> u64 {
        self.jobs.metrics.jobs.with_label_values(&[queue, outcome]).get()
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("worker task").expect("worker stopped cleanly");
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The real binary.
pub struct WorkerProcess {
    pub child: Child,
    dir: PathBuf,
}

impl WorkerProcess {
    pub fn signal(&self, signal: &str) {
        let status =
            Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status().expect("kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the process to exit, at most `within`.
    pub async fn wait(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "worker did not exit within {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` at the deadline.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A token shaped like the gateway's (43 base64url characters).
pub fn token() -> String {
    let mut t = uuid::Uuid::new_v4().simple().to_string();
    t.push_str(&uuid::Uuid::new_v4().simple().to_string()[..11]);
    t
}

/// A user row, for notifications (which reference users).
pub async fn create_user(pool: &PgPool, email: &str) -> shared::domain::UserId {
    let mut conn = pool.acquire().await.expect("conn");
    let new = shared::db::users::NewUser {
        email: &shared::domain::Email::parse(email).expect("email"),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        name: &shared::domain::PersonName::parse("Ada Lovelace").expect("name"),
        language: &shared::domain::Language::parse("en").expect("language"),
    };
    shared::db::users::insert(&mut conn, &new).await.expect("insert user").id
}
