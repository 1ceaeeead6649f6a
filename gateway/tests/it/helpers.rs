//! The test harness: a fresh database per test and the real `gateway` binary
//! started against it on free ports, killed (and the database dropped) on drop.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, PgPool};

pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const JWT_SECRET: &str = "test-access-secret-0123456789abcdef0123456789";
pub const JWT_REFRESH_SECRET: &str = "test-refresh-secret-0123456789abcdef012345678";
pub const PASSWORD: &str = "correct horse battery staple";

/// A database that exists for one test.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create() -> TestDb {
        let name = format!("tg_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(PG_ADMIN_URL).await.expect("connect to postgres");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.expect("create database");
        TestDb { url: format!("postgres://postgres@127.0.0.1:5432/{name}"), name }
    }

    pub async fn pool(&self) -> PgPool {
        PgPool::connect(&self.url).await.expect("connect to test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime; use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(PG_ADMIN_URL).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await;
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

/// A running gateway.
pub struct TestApp {
    pub base: String,
    pub admin: String,
    pub db: TestDb,
    pub client: reqwest::Client,
    child: Child,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment every test gateway gets; `extra` overrides or adds.
pub fn base_env(db: &TestDb, listen: u16, admin: u16) -> Vec<(String, String)> {
    [
        ("APP_ENV", "production"),
        ("APP_URL", "http://localhost:8080"),
        ("DATABASE_URL", db.url.as_str()),
        ("DATABASE_MAX_CONNECTIONS", "5"),
        ("JWT_SECRET", JWT_SECRET),
        ("JWT_REFRESH_SECRET", JWT_REFRESH_SECRET),
        ("JWT_ISSUER", "tenantgate-test"),
        ("JWT_AUDIENCE", "tenantgate-test-apps"),
        ("CORS_ORIGINS", "https://app.example.test"),
        ("GATEWAY_THREADS", "1"),
        ("GATEWAY_SHUTDOWN_GRACE", "1s"),
        ("PASSWORD_HASH_CONCURRENCY", "2"),
        ("LOG_LEVEL", "info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain([
        ("GATEWAY_LISTEN".to_owned(), format!("127.0.0.1:{listen}")),
        ("GATEWAY_ADMIN_LISTEN".to_owned(), format!("127.0.0.1:{admin}")),
    ])
    .collect()
}

/// The gateway binary with a clean environment, run from a folder with no `.env`.
pub fn gateway_command(env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
    cmd.env_clear()
        .current_dir(std::env::temp_dir())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TENANTGATE_CONFIG", "/nonexistent/gateway.toml")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    if std::env::var_os("TEST_LOG").is_some() {
        cmd.stderr(Stdio::inherit());
    } else {
        cmd.stderr(Stdio::null());
    }
    cmd
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts a gateway on a fresh database with `extra` environment on top of
/// [`base_env`], and waits until `/readyz` answers 200.
pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let db = TestDb::create().await;
    let (listen, admin) = (free_port(), free_port());
    let mut env = base_env(&db, listen, admin);
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let child = gateway_command(&env).spawn().expect("spawn gateway");
    let mut app = TestApp {
        base: format!("http://127.0.0.1:{listen}"),
        admin: format!("http://127.0.0.1:{admin}"),
        db,
        client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client"),
        child,
    };
    app.wait_ready().await;
    app
}

impl TestApp {
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                panic!("gateway exited during start with {status}; rerun with TEST_LOG=1");
            }
            let ready = self.client.get(format!("{}/readyz", self.admin)).send().await;
            let proxy = self.client.get(format!("{}/healthz-probe", self.base)).send().await;
            if ready.is_ok_and(|r| r.status() == 200) && proxy.is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "gateway not ready after 30s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The child's pid, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("child status") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client.post(self.url(path)).json(body).send().await.expect("request")
    }

    pub async fn get_bearer(&self, path: &str, token: &str) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.expect("request")
    }

    pub async fn post_bearer(&self, path: &str, token: &str) -> reqwest::Response {
        self.client.post(self.url(path)).bearer_auth(token).send().await.expect("request")
    }

    /// Registers `email` with [`PASSWORD`]; returns the 201 body.
    pub async fn register(&self, email: &str, tenant_name: Option<&str>) -> Value {
        let mut body = json!({"email": email, "password": PASSWORD, "name": "Test User"});
        if let Some(t) = tenant_name {
            body["tenantName"] = json!(t);
        }
        let res = self.post_json("/auth/register", &body).await;
        assert_eq!(res.status(), 201, "register {email}");
        res.json().await.expect("json")
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_json("/auth/login", &json!({"email": email, "password": password})).await
    }
}

/// Asserts the status and the `error` code of a JSON error response; returns the body.
pub async fn assert_error(res: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status(), status, "status for expected {code}");
    let ct = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let body: Value = res.json().await.expect("json error body");
    assert_eq!(body["error"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    body
}

pub fn unique_email() -> String {
    format!("user-{}@example.test", uuid::Uuid::new_v4().simple())
}
