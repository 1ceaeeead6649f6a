//! The test harness: a fresh database per test and the real `gateway` binary
//! started against it on free ports, killed (and the database dropped) on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub use testkit::{free_port, TestDb};
pub const JWT_SECRET: &str = "test-access-secret-0123456789abcdef0123456789";
pub const JWT_REFRESH_SECRET: &str = "test-refresh-secret-0123456789abcdef012345678";
pub const PASSWORD: &str = "correct horse battery staple";

/// A running gateway.
pub struct TestApp {
    pub base: String,
    pub admin: String,
    pub db: TestDb,
    pub client: reqwest::Client,
    /// The folder GATEWAY_ROUTES points at.
    pub routes_dir: tempfile::TempDir,
    /// This test's Redis key prefix.
    pub prefix: String,
    /// The echo upstream every default route points at.
    pub upstream: Upstream,
    /// This test's RabbitMQ queues (deleted on drop); `None` on a second instance.
    pub queues: Option<crate::accounts::Queues>,
    /// The environment the gateway was started with.
    pub env: Vec<(String, String)>,
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
        // The machine's Redis and RabbitMQ (tests isolate by prefix); a single-node
        // test sets them empty.
        ("REDIS_URL", testkit::REDIS_URL),
        ("RABBITMQ_URL", testkit::AMQP_URL),
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

/// The routes every test gateway starts with (`{upstream}` is the echo upstream):
/// `/app` needs a user who is a member of the tenant, found by any source.
pub const DEFAULT_ROUTES: &str = r#"
[[route]]
name = "app"
path_prefix = "/app"
upstreams = ["{upstream}"]
auth = "required"
tenant = "required"
tenant_from = ["header", "path", "subdomain", "domain"]
min_role = "viewer"
"#;

/// `/app` needs at least `member`, tenant from the `X-Tenant-Id` header.
pub const MEMBER_ROUTES: &str = r#"
[[route]]
name = "app"
path_prefix = "/app"
upstreams = ["{upstream}"]
auth = "required"
tenant = "required"
tenant_from = ["header"]
min_role = "member"
"#;

/// Starts a gateway with [`DEFAULT_ROUTES`] and `extra` environment.
pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    spawn_gateway(DEFAULT_ROUTES, extra, None).await
}

/// Starts a gateway on a fresh database (or `shared`'s database and Redis prefix, for
/// a second instance) with `routes` (`{upstream}` replaced by a fresh echo
/// upstream) and `extra` environment on top of [`base_env`]; waits until ready.
pub async fn spawn_gateway(routes: &str, extra: &[(&str, &str)], shared: Option<&TestApp>) -> TestApp {
    spawn_gateway_logging(routes, extra, shared, None).await
}

/// [`spawn_gateway`], with the gateway's log (stderr) written to `log` if given.
pub async fn spawn_gateway_logging(
    routes: &str,
    extra: &[(&str, &str)],
    shared: Option<&TestApp>,
    log: Option<std::fs::File>,
) -> TestApp {
    let db = match shared {
        Some(other) => TestDb::borrowed(&other.db.url),
        None => TestDb::create().await,
    };
    let prefix = shared.map_or_else(|| format!("tgtest:{}:", uuid::Uuid::new_v4().simple()), |o| o.prefix.clone());
    let upstream = Upstream::start().await;
    let routes_dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(routes_dir.path().join("routes.toml"), routes.replace("{upstream}", &upstream.addr))
        .expect("write routes");
    let (listen, admin) = (free_port(), free_port());
    let mut env = base_env(&db, listen, admin);
    env.push(("GATEWAY_ROUTES".into(), routes_dir.path().display().to_string()));
    env.push(("GATEWAY_RUNTIME_DIR".into(), routes_dir.path().join("run").display().to_string()));
    env.push(("REDIS_KEY_PREFIX".into(), prefix.clone()));
    // Every gateway runs the outbox relay: give it this test's own queues.
    let queues = shared.is_none().then(crate::accounts::Queues::new);
    let queue_env = match (&queues, shared.and_then(|o| o.queues.as_ref())) {
        (Some(own), _) | (None, Some(own)) => own.env(),
        (None, None) => Vec::new(),
    };
    env.extend(queue_env.into_iter().map(|(k, v)| (k.to_owned(), v)));
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let mut command = gateway_command(&env);
    if let Some(log) = log {
        command.stderr(log);
    }
    let child = command.spawn().expect("spawn gateway");
    let mut app = TestApp {
        base: format!("http://127.0.0.1:{listen}"),
        admin: format!("http://127.0.0.1:{admin}"),
        db,
        client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client"),
        routes_dir,
        prefix,
        upstream,
        queues,
        env,
        child,
    };
    app.wait_ready().await;
    app
}

/// A real HTTP upstream on a free port that answers every request with JSON
/// `{method, path, query, headers}`; `/slow` waits 3 s first.
pub struct Upstream {
    pub addr: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    pub async fn start() -> Upstream {
        use axum::extract::Request;
        async fn echo(req: Request) -> axum::Json<Value> {
            if req.uri().path().ends_with("/slow") {
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            let headers: serde_json::Map<String, Value> =
                req.headers().iter().map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap_or("")))).collect();
            axum::Json(json!({
                "method": req.method().as_str(),
                "path": req.uri().path(),
                "query": req.uri().query(),
                "headers": headers,
            }))
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
        let addr = listener.local_addr().expect("addr").to_string();
        let app = axum::Router::new().fallback(echo);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Upstream { addr, task }
    }
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

/// A TCP proxy the test owns, to cut a service off without touching the machine's
/// shared one: `cut()` drops every connection and refuses new ones until
/// `restore()`.
pub struct TcpProxy {
    pub port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}

impl TcpProxy {
    pub async fn start(target: &str) -> TcpProxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let target = target.to_owned();
        let (up2, conns2) = (up.clone(), conns.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let handle = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns2.lock().expect("lock").push(handle.abort_handle());
            }
        });
        TcpProxy { port, up, conns, task }
    }

    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for conn in self.conns.lock().expect("lock").drain(..) {
            conn.abort();
        }
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl TestApp {
    /// The value of one metric sample line (`name{labels}`), 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.client.get(format!("{}/metrics", self.admin)).send().await.unwrap().text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// The sum of every sample whose series starts with `prefix` (e.g. a series
    /// without its last labels, `name{method="GET",route="app",status="200",`).
    pub async fn metric_sum(&self, prefix: &str) -> f64 {
        let text = self.client.get(format!("{}/metrics", self.admin)).send().await.unwrap().text().await.unwrap();
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.trim().parse::<f64>().ok()))
            .sum()
    }

    /// Polls `check` every 25 ms until it is true or `timeout` passes; returns
    /// whether it became true.
    pub async fn eventually<F, Fut>(&self, timeout: Duration, mut check: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if check().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }
}

/// Marks the user's address verified (API keys are made only by verified makers).
pub async fn mark_verified(app: &TestApp, user_id: &str) {
    sqlx::query("UPDATE users SET email_verified_at = now() WHERE id = $1::uuid")
        .bind(user_id)
        .execute(&app.db.pool().await)
        .await
        .expect("mark verified");
}
