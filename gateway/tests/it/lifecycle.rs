//! Start, health, metrics, config checks and graceful shutdown.

use std::time::{Duration, Instant};

use crate::helpers::*;

#[tokio::test]
async fn admin_listener_serves_health_readiness_and_metrics() {
    let app = spawn_app().await;
    let health = app.client.get(format!("{}/healthz", app.admin)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready: serde_json::Value =
        app.client.get(format!("{}/readyz", app.admin)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready");

    app.client.get(app.url("/auth/nope")).send().await.unwrap();
    // The request is counted in the logging hook, just after the response is sent.
    let series = r#"tenantgate_http_requests_total{method="GET",route="auth-api",status="404",tenant=""}"#;
    assert!(app.eventually(Duration::from_secs(5), || async { app.metric(series).await == 1.0 }).await);
    let metrics = app.client.get(format!("{}/metrics", app.admin)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tenantgate_http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn metrics_pass_promtool_check() {
    let app = spawn_app().await;
    let m = crate::proxy::member(&app, "Acme").await;
    crate::proxy::get(&app, "/app", Some(&m.token), &[("x-tenant-id", &m.tenant_id)]).await;
    crate::proxy::get(&app, "/app", None, &[]).await;
    let text = app.client.get(format!("{}/metrics", app.admin)).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("tenantgate_cache_lookups_total") && text.contains("tenantgate_auth_failures_total"));
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed by scripts/test.sh");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.trim().is_empty(), "promtool: {report}");
}

#[tokio::test]
async fn request_ids_are_kept_when_sane_and_replaced_otherwise() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/auth/nope")).header("x-request-id", "client-id-123").send().await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "client-id-123");
    let res = app.client.get(app.url("/auth/nope")).header("x-request-id", "bad id with spaces").send().await.unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[tokio::test]
async fn sigterm_stops_the_gateway_gracefully() {
    let mut app = spawn_app().await;
    let status = std::process::Command::new("kill").args(["-TERM", &app.pid().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || app.wait_exit(Duration::from_secs(20))).await.unwrap();
    assert_eq!(exit.map(|s| s.code()), Some(Some(0)), "gateway did not exit 0 after SIGTERM");
}

#[tokio::test]
async fn check_config_refuses_weak_secrets_naming_the_variable() {
    let db = TestDb::create().await;
    let mut env = base_env(&db, free_port(), free_port());
    env.retain(|(k, _)| k != "JWT_SECRET");
    env.push(("JWT_SECRET".into(), "too-short".into()));
    let out = gateway_command(&env).arg("check-config").stderr(std::process::Stdio::piped()).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("JWT_SECRET") && stderr.contains("32"), "{stderr}");

    let routes = tempfile::tempdir().unwrap();
    let mut good = base_env(&db, free_port(), free_port());
    good.push(("GATEWAY_ROUTES".into(), routes.path().display().to_string()));
    std::fs::write(routes.path().join("a.toml"), DEFAULT_ROUTES.replace("{upstream}", "127.0.0.1:3000")).unwrap();
    let out = gateway_command(&good).arg("check-config").stdout(std::process::Stdio::piped()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 route(s)") && stdout.contains("shared through Redis"), "{stdout}");
    // It says which mode the settings choose.
    good.extend([("REDIS_URL".into(), String::new()), ("RABBITMQ_URL".into(), String::new())]);
    let out = gateway_command(&good).arg("check-config").stdout(std::process::Stdio::piped()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("single-node mode") && stdout.contains("runs the email and notification jobs"), "{stdout}");
    good.truncate(good.len() - 2);

    // A broken route file is refused with its name and line.
    std::fs::write(routes.path().join("b.toml"), "[[route]]\nname = \"x\"\npath_prefix = \"nope\"\n").unwrap();
    let out = gateway_command(&good).arg("check-config").stderr(std::process::Stdio::piped()).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("b.toml:1:1") && stderr.contains("upstreams"), "{stderr}");
}

#[tokio::test]
async fn route_edits_are_picked_up_live_and_bad_edits_keep_the_old_table() {
    let app = spawn_app().await;
    let file = app.routes_dir.path().join("routes.toml");
    let (status, body) = crate::proxy::get(&app, "/open/x", None, &[]).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("route_not_found")));

    let mut routes = std::fs::read_to_string(&file).unwrap();
    routes.push_str(&format!(
        "\n[[route]]\nname = \"open\"\npath_prefix = \"/open\"\nupstreams = [\"{}\"]\nauth = \"none\"\ntenant = \"none\"\n",
        app.upstream.addr
    ));
    // Written again while not yet live: the watch starts with the control plane,
    // which may come up just after /readyz answers, and an edit before it is
    // seen only at the next one (a known gap, in the issue notes).
    let live = app.eventually(Duration::from_secs(10), || async {
        std::fs::write(&file, &routes).unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        crate::proxy::get(&app, "/open/x", None, &[]).await.0 == 200
    });
    assert!(live.await, "the new route never went live");
    assert!(app.metric(r#"tenantgate_route_reloads_total{result="ok"}"#).await >= 1.0);

    std::fs::write(&file, "[[route]]\nname = 42\n").unwrap();
    let refused = app.eventually(Duration::from_secs(10), || async {
        app.metric(r#"tenantgate_route_reloads_total{result="error"}"#).await >= 1.0
    });
    assert!(refused.await, "the bad edit was not noticed");
    assert_eq!(app.metric("tenantgate_route_last_reload_success").await, 0.0);
    assert_eq!(crate::proxy::get(&app, "/open/x", None, &[]).await.0, 200, "the previous table must stay");
}

#[tokio::test]
async fn migrate_subcommand_creates_the_schema() {
    let db = TestDb::create().await;
    let env = base_env(&db, free_port(), free_port());
    let out = gateway_command(&env).arg("migrate").output().unwrap();
    assert!(out.status.success());
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    )
    .fetch_all(&db.pool().await)
    .await
    .unwrap();
    let tables: Vec<&str> = tables.iter().map(|(t,)| t.as_str()).collect();
    for t in ["audit_log", "refresh_sessions", "tenants", "user_tenant_roles", "users"] {
        assert!(tables.contains(&t), "{t} missing from {tables:?}");
    }
    let (has_role,): (bool,) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'role')",
    )
    .fetch_one(&db.pool().await)
    .await
    .unwrap();
    assert!(!has_role, "users must not have a role column");
}

#[tokio::test]
async fn runtime_files_live_in_a_directory_only_the_gateway_user_can_enter() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let run = parent.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o777)).unwrap();
    let run_text = run.display().to_string();
    let _app = spawn_app_with(&[("GATEWAY_RUNTIME_DIR", &run_text)]).await;
    let mode = std::fs::metadata(&run).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "a world-writable runtime directory is tightened");

    let fresh = parent.path().join("a/b/run");
    let fresh_text = fresh.display().to_string();
    let _other = spawn_app_with(&[("GATEWAY_RUNTIME_DIR", &fresh_text)]).await;
    assert_eq!(std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777, 0o700);
}

#[tokio::test]
async fn debug_logs_never_carry_tokens_cookies_or_assertions() {
    let routes = r#"
[[route]]
name = "app"
path_prefix = "/app"
upstreams = ["{upstream}"]
auth = "required"
forward_credentials = true
signed_assertion = true
"#;
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("gateway.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let app = spawn_gateway_logging(routes, &[("LOG_LEVEL", "debug")], None, Some(log)).await;
    let body = app.register(&unique_email(), None).await;
    let (access, refresh) = (body["accessToken"].as_str().unwrap(), body["refreshToken"].as_str().unwrap());
    // Credentials in every place a request can carry them, and forwarded, so the
    // upstream request head holds them all.
    let res = app
        .client
        .get(app.url("/app/x"))
        .bearer_auth(access)
        .header("cookie", format!("tg_access={access}; app_session=app-cookie-secret-0042"))
        .header("x-tenantgate-assertion", "forged-assertion-secret-0042")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let echo: serde_json::Value = res.json().await.unwrap();
    let assertion = echo["headers"]["x-tenantgate-assertion"].as_str().unwrap().to_owned();
    let res = app.post_json("/auth/refresh", &serde_json::json!({"refreshToken": refresh})).await;
    assert_eq!(res.status(), 200);
    let rotated: serde_json::Value = res.json().await.unwrap();
    drop(app);

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("DEBUG"), "debug logging was on: {log}");
    assert!(log.contains("spoofed header stripped"), "the gateway's own debug lines are there");
    let secrets = [
        ("access token", access.to_owned()),
        ("refresh token", refresh.to_owned()),
        ("new access token", rotated["accessToken"].as_str().unwrap().to_owned()),
        ("new refresh token", rotated["refreshToken"].as_str().unwrap().to_owned()),
        ("app cookie", "app-cookie-secret-0042".to_owned()),
        ("forged assertion", "forged-assertion-secret-0042".to_owned()),
        ("assertion", assertion),
    ];
    for (what, secret) in secrets {
        assert!(!log.contains(&secret), "the {what} is in the debug log");
    }
}

/// Pingora's zero-downtime upgrade through a custom `GATEWAY_UPGRADE_SOCKET`: a
/// second gateway started with `serve --upgrade` takes over the listening socket
/// when the first gets SIGQUIT; requests are answered throughout, and the pid
/// file (`GATEWAY_PID_FILE`) names the new process.
#[tokio::test]
async fn serve_upgrade_takes_over_the_sockets_through_the_configured_upgrade_socket() {
    let run = tempfile::tempdir().unwrap();
    let socket = run.path().join("sock/upgrade.sock");
    let pid_file = run.path().join("pid/gw.pid");
    let (socket_s, pid_s) = (socket.display().to_string(), pid_file.display().to_string());
    let mut old = spawn_app_with(&[("GATEWAY_UPGRADE_SOCKET", &socket_s), ("GATEWAY_PID_FILE", &pid_s)]).await;
    let pid = |path: &std::path::Path| std::fs::read_to_string(path).unwrap_or_default().trim().to_owned();
    assert_eq!(pid(&pid_file), old.pid().to_string(), "the pid file is where GATEWAY_PID_FILE says");

    let mut new = gateway_command(&old.env).args(["serve", "--upgrade"]).spawn().unwrap();
    // The new process waits on the socket until the old one hands its listeners over.
    let started = Instant::now();
    while !socket.exists() {
        assert!(started.elapsed() < Duration::from_secs(20), "the new gateway never listened on {socket_s}");
        assert!(new.try_wait().unwrap().is_none(), "the new gateway exited before the handover");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let base = old.base.clone();
    let status = std::process::Command::new("kill").args(["-QUIT", &old.pid().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || {
        let exit = old.wait_exit(Duration::from_secs(20));
        (old, exit)
    });
    // Answered all along: by the old process until the handover, then by the new.
    let deadline = Instant::now() + Duration::from_secs(10);
    let client = reqwest::Client::new();
    let url = format!("{base}/auth/nope");
    while Instant::now() < deadline {
        let res = client.get(&url).send().await.expect("the listening socket stayed open");
        assert_eq!(res.status(), 404);
        if pid(&pid_file) == new.id().to_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pid(&pid_file), new.id().to_string(), "the new gateway did not take over");
    let (old, exit) = exit.await.unwrap();
    assert_eq!(exit.map(|s| s.code()), Some(Some(0)), "the old gateway did not exit cleanly after handing over");
    assert_eq!(client.get(&url).send().await.unwrap().status(), 404, "the new gateway answers");
    assert!(new.try_wait().unwrap().is_none(), "the new gateway is still running");
    let _ = new.kill();
    let _ = new.wait();
    drop(old);
}

/// Every log line an API request causes sits in a span carrying its request id
/// (and the handler's named span), in JSON logs too, including lines written by
/// work the handler spawned (the forgot-password mail runs after the answer).
#[tokio::test]
async fn api_log_lines_carry_their_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("gateway.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let app = spawn_gateway_logging(DEFAULT_ROUTES, &[("LOG_FORMAT", "json")], None, Some(log)).await;
    let email = unique_email();
    let body = serde_json::json!({"email": email, "password": PASSWORD, "name": "Span Test"});
    let res = app.client.post(app.url("/auth/register")).header("x-request-id", "span-test-0001").json(&body);
    assert_eq!(res.send().await.unwrap().status(), 201);
    let mut lines: Vec<serde_json::Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(&log_path).unwrap();
        lines = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        if lines.iter().any(|l| l["message"] == "user registered") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(app);
    let line = lines.iter().find(|l| l["message"] == "user registered").expect("the register handler logged");
    let spans = line["spans"].as_array().expect("a span list");
    assert!(
        spans
            .iter()
            .any(|s| s["name"] == "api" && s["request_id"] == "span-test-0001" && s["path"] == "/auth/register"),
        "{line}"
    );
    assert!(spans.iter().any(|s| s["name"] == "auth.register"), "{line}");
}

/// The access log's JSON lines in `path`, once `done` holds for them (10 s at most).
async fn access_lines(path: &std::path::Path, done: impl Fn(&[serde_json::Value]) -> bool) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|l| l["target"] == "tenantgate::access")
            .collect();
        if done(&lines) || Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One JSON access-log line per request with route, tenant, user, status,
/// duration and upstream; `LOG_ACCESS_SAMPLE=0` keeps only answers of 400 and more.
#[tokio::test]
async fn access_log_lines_name_route_tenant_user_status_and_upstream_and_sampling_keeps_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("gateway.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let app = spawn_gateway_logging(DEFAULT_ROUTES, &[("LOG_FORMAT", "json")], None, Some(log)).await;
    let m = crate::proxy::member(&app, "Acme").await;
    let tenant = [("x-tenant-id", m.tenant_id.as_str())];
    assert_eq!(crate::proxy::get(&app, "/app/x?token=secret-in-query", Some(&m.token), &tenant).await.0, 200);
    let lines = access_lines(&log_path, |l| l.iter().any(|l| l["route"] == "app")).await;
    let line = lines.iter().find(|l| l["route"] == "app").expect("the proxied request's line");
    assert_eq!(line["status"], 200, "{line}");
    assert_eq!(line["path"], "/app/x", "no query string: {line}");
    assert_eq!(line["user_id"], m.user_id.as_str(), "{line}");
    assert_eq!(line["tenant_id"], m.tenant_id.as_str(), "{line}");
    assert_eq!(line["tenant_slug"], m.slug.as_str(), "{line}");
    assert_eq!(line["upstream"], app.upstream.addr.as_str(), "{line}");
    assert!(line["duration_ms"].as_f64().is_some_and(|d| d > 0.0), "{line}");
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(!text.contains(&m.token) && !text.contains("secret-in-query"), "no token in the log");
    drop(app);

    let log_path = dir.path().join("sampled.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let extra = [("LOG_FORMAT", "json"), ("LOG_ACCESS_SAMPLE", "0")];
    let app = spawn_gateway_logging(DEFAULT_ROUTES, &extra, None, Some(log)).await;
    let m = crate::proxy::member(&app, "Acme").await;
    let tenant = [("x-tenant-id", m.tenant_id.as_str())];
    for _ in 0..3 {
        assert_eq!(crate::proxy::get(&app, "/app/x", Some(&m.token), &tenant).await.0, 200);
    }
    assert_eq!(crate::proxy::get(&app, "/app/x", None, &tenant).await.0, 401);
    let lines = access_lines(&log_path, |l| l.iter().any(|l| l["status"] == 401)).await;
    let statuses: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["route"] == "app").map(|l| &l["status"]).collect();
    assert_eq!(statuses, [&serde_json::json!(401)], "only the refusal is logged: {lines:?}");
    // The metrics still count every request.
    // Under the tenant's slug or `other`, depending on whether it was ranked yet.
    let ok = r#"tenantgate_http_requests_total{method="GET",route="app",status="200",tenant="#;
    assert_eq!(app.metric_sum(ok).await, 3.0);
}

/// `check-config` reads `.env` as the binaries do: a mistyped name of ours fails it
/// with the name it probably meant, another program's variable is only a note,
/// and a line that does not parse is an error, not silently the end of the file.
#[tokio::test]
async fn check_config_reads_dot_env_names_and_refuses_typos_and_broken_lines() {
    let db = TestDb::create().await;
    let routes = tempfile::tempdir().unwrap();
    std::fs::write(routes.path().join("a.toml"), DEFAULT_ROUTES.replace("{upstream}", "127.0.0.1:3000")).unwrap();
    let mut env = base_env(&db, free_port(), free_port());
    env.push(("GATEWAY_ROUTES".into(), routes.path().display().to_string()));
    let dir = tempfile::tempdir().unwrap();
    let run = |dot_env: &str| {
        std::fs::write(dir.path().join(".env"), dot_env).unwrap();
        let out = gateway_command(&env)
            .current_dir(dir.path())
            .arg("check-config")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };

    let (ok, text) = run("POSTGRES_PASSWORD=x\nLOG_FORMAT=json\n");
    assert!(ok, "{text}");
    assert!(text.contains("note: ") && text.contains("line 1: POSTGRES_PASSWORD is not read by tenantgate"), "{text}");

    let (ok, text) = run("LOG_FORMAT=json\nGATEWAY_COOKIE_SECUR=false\n");
    assert!(!ok, "{text}");
    assert!(
        text.contains("line 2: GATEWAY_COOKIE_SECUR is not a tenantgate setting; did you mean GATEWAY_COOKIE_SECURE?"),
        "{text}"
    );

    let (ok, text) = run("SMTP_FROM=App <no-reply@example.com>\nLOG_FORMAT=json\n");
    assert!(!ok, "{text}");
    assert!(text.contains(".env: a line does not parse"), "{text}");
    // A quote left open: the error must not print the rest of the file.
    let (ok, text) =
        run("SMTP_FROM=\"App <no-reply@example.com>\nJWT_SECRET=do-not-print-0123456789abcdef0123456789\n");
    assert!(!ok, "{text}");
    assert!(text.contains(".env: a line does not parse") && !text.contains("do-not-print"), "{text}");
}
