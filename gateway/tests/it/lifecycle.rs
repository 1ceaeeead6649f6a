//! Start, health, metrics, config checks and graceful shutdown.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn admin_listener_serves_health_readiness_and_metrics() {
    let app = spawn_app().await;
    let health = app.client.get(format!("{}/healthz", app.admin)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready: serde_json::Value = app.client.get(format!("{}/readyz", app.admin)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready");

    app.client.get(app.url("/auth/nope")).send().await.unwrap();
    let metrics = app.client.get(format!("{}/metrics", app.admin)).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"tenantgate_http_requests_total{method="GET",route="auth-api",status="404"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("tenantgate_http_request_duration_seconds_bucket"));
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

    let good = base_env(&db, free_port(), free_port());
    let out = gateway_command(&good).arg("check-config").stdout(std::process::Stdio::piped()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[tokio::test]
async fn migrate_subcommand_creates_the_schema() {
    let db = TestDb::create().await;
    let env = base_env(&db, free_port(), free_port());
    let out = gateway_command(&env).arg("migrate").output().unwrap();
    assert!(out.status.success());
    let tables: Vec<(String,)> =
        sqlx::query_as("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")
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
