//! The OpenAPI document the gateway serves at `/auth/openapi.json`, held against
//! the running gateway by schemathesis: for every documented operation it sends
//! generated requests (valid and invalid) with a real bearer token and checks that
//! none answers 5xx, that every status is documented and that every body matches
//! its schema.
//!
//! Needs schemathesis: `scripts/lib/ensure.sh` (`ensure_schemathesis`, run by
//! `scripts/test.sh`) installs the pinned version into `target/schemathesis-venv`;
//! `SCHEMATHESIS` names another binary. The test fails, never skips, without it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

/// The version `ensure_schemathesis` pins.
const VERSION: &str = "4.32.5";

/// The checks every answer must pass.
const CHECKS: &str = "not_a_server_error,status_code_conformance,response_schema_conformance";

/// Rate limits no run of generated requests reaches (429 stays documented).
const GENEROUS_LIMITS: &[(&str, &str)] = &[
    ("RATE_LIMIT_MAX", "100000"),
    ("RATE_LIMIT_WINDOW", "1h"),
    ("RATE_LIMIT_REGISTER", "100000/1h"),
    ("RATE_LIMIT_TENANT_CREATE", "100000/1h"),
    ("RATE_LIMIT_INVITATIONS", "100000/1h"),
    ("RATE_LIMIT_MAIL", "100000/1h"),
];

/// The schemathesis binary: `SCHEMATHESIS`, or the one `ensure_schemathesis` installs.
fn schemathesis() -> PathBuf {
    std::env::var_os("SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::portal_e2e::repo_root().join("target/schemathesis-venv/bin/schemathesis"))
}

/// The notification stream never ends by itself: schemathesis reads it for 2 s
/// (the `: connected` comment, no events), then cuts it.
const STREAM: &str = r#"
[[operations]]
include-path = "/auth/notifications/stream"
request-timeout = 2
"#;

/// Runs schemathesis against `app` with `token`, with `config` (TOML) and on the
/// operations `filter` selects; returns whether it passed. Its report goes to
/// stderr (shown with --nocapture, or when the test fails).
async fn run(app: &TestApp, token: &str, config: &str, filter: &[&str]) -> bool {
    let dir = tempfile::tempdir().expect("temp dir");
    let config_file = dir.path().join("schemathesis.toml");
    std::fs::write(&config_file, config).expect("write the schemathesis config");
    let mut command = tokio::process::Command::new(schemathesis());
    command
        .arg("--config-file")
        .arg(&config_file)
        .arg("run")
        .arg(app.url("/auth/openapi.json"))
        .args(["--url", app.base.as_str()])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", CHECKS])
        .args(["--max-examples", "20", "--seed", "20261206", "--workers", "1"])
        .args(["--generation-database", "none", "--no-color", "--suppress-health-check", "all"])
        .args(filter)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(150), command.output())
        .await
        .expect("schemathesis finished within 150 s")
        .unwrap_or_else(|e| panic!("{}: {e}", schemathesis().display()));
    eprintln!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out.status.success()
}

#[tokio::test]
async fn the_served_document_holds_for_schemathesis() {
    let program = schemathesis();
    let version = std::process::Command::new(&program).arg("--version").output();
    let installed = version.as_ref().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    assert!(
        installed.contains(VERSION),
        "schemathesis {VERSION} not found at {} (found: {installed:?}): install it with \
         `bash -c 'source scripts/lib/ensure.sh && ensure_schemathesis'` from the repository root \
         (a virtualenv in target/schemathesis-venv with `pip install schemathesis=={VERSION}`), \
         or set SCHEMATHESIS to its path",
        program.display()
    );

    // Domain proofs are looked up in this test's own DNS server (which has none),
    // never on the network.
    let dns = crate::domains::TestDns::start().await;
    let mut env = GENEROUS_LIMITS.to_vec();
    env.push(("GATEWAY_DNS_RESOLVER", dns.addr.as_str()));
    let app = spawn_app_with(&env).await;
    let res = app.client.get(app.url("/auth/openapi.json")).send().await.expect("request");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let doc: Value = res.json().await.expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/auth/tenants/{id}/members/{user}"]["patch"].is_object(), "{doc}");

    let session = app.register(&unique_email(), Some("Schemathesis")).await;
    let token = session["accessToken"].as_str().expect("access token");
    let (user, tenant) = (&session["user"]["id"], &session["tenants"][0]["id"]);
    let started = Instant::now();
    // Every operation but logout-all, which would revoke the token the others run
    // with; tenant ids are generated, so these mostly meet 404 and 400.
    let passed = run(&app, token, STREAM, &["--exclude-path", "/auth/logout-all"]).await;
    assert!(passed, "schemathesis found problems: its report is above");
    // The tenant operations again on the caller's own tenant (as its owner), with
    // their own user id for `{user}`: the handlers get past the lookups.
    let own = format!("[parameters]\n\"path.id\" = {tenant}\n\"path.user\" = {user}\n");
    let passed = run(&app, token, &own, &["--include-path-regex", "^/auth/tenants/[{]id[}]"]).await;
    assert!(passed, "schemathesis found problems on the caller's tenant: its report is above");
    // logout-all last.
    let passed = run(&app, token, "", &["--include-path", "/auth/logout-all"]).await;
    assert!(passed, "schemathesis found problems with logout-all: its report is above");
    eprintln!("schemathesis ran for {:.1} s", started.elapsed().as_secs_f64());
}

/// Found by schemathesis: `PATCH /auth/tenants/{id}` with settings holding U+0000
/// (in a value or a key) answered 500, since PostgreSQL's jsonb cannot store it.
#[tokio::test]
async fn settings_holding_nul_are_a_bad_request() {
    let app = spawn_app().await;
    let session = app.register(&unique_email(), Some("Nul")).await;
    let token = session["accessToken"].as_str().expect("access token");
    let url = app.url(&format!("/auth/tenants/{}", session["tenants"][0]["id"].as_str().expect("tenant id")));
    for settings in [json!({ "a": "x\u{0}y" }), json!({ "a\u{0}": 1 }), json!({ "a": [{ "b": ["\u{0}"] }] })] {
        let res =
            app.client.patch(&url).bearer_auth(token).json(&json!({ "settings": settings })).send().await.unwrap();
        let body = assert_error(res, 400, "invalid_request").await;
        assert!(body["message"].as_str().unwrap().starts_with("settings:"), "{body}");
    }
    let res =
        app.client.patch(&url).bearer_auth(token).json(&json!({ "settings": { "a": "x" } })).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["tenant"]["settings"], json!({ "a": "x" }));
}

/// Found by schemathesis: settings holding a number near `f64::MAX` were stored
/// (jsonb keeps the exact decimal, 309 digits) but could not be read back by
/// serde_json's default float parsing ("number out of range"): a 500 on the
/// update, and on every later read of the row or of its audit entry.
#[tokio::test]
async fn settings_holding_extreme_numbers_round_trip() {
    let app = spawn_app().await;
    let session = app.register(&unique_email(), Some("Extreme")).await;
    let token = session["accessToken"].as_str().expect("access token");
    let id = session["tenants"][0]["id"].as_str().expect("tenant id");
    let settings =
        json!({ "max": f64::MAX, "min": f64::MIN, "tiny": f64::MIN_POSITIVE, "big": u64::MAX, "neg": i64::MIN });
    let url = app.url(&format!("/auth/tenants/{id}"));
    let res = app.client.patch(&url).bearer_auth(token).json(&json!({ "settings": settings })).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["tenant"]["settings"], settings);
    let res = app.get_bearer(&format!("/auth/tenants/{id}"), token).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["tenant"]["settings"], settings);
    let res = app.get_bearer(&format!("/auth/tenants/{id}/audit"), token).await;
    assert_eq!(res.status(), 200);
    let audit: Value = res.json().await.unwrap();
    assert_eq!(audit["entries"][0]["metadata"]["after"]["settings"], settings, "{audit}");
}
