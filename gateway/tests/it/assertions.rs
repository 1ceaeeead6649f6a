//! The signed assertion (`X-Tenantgate-Assertion`): an app verifies it with the
//! public keys at `/.well-known/jwks.json`, in Rust (jsonwebtoken), Node (jose,
//! `e2e/verify-assertion.mjs`) and Python (PyJWT, `docs/examples/verify_assertion.py`);
//! it is bound to one app and one request; keys rotate without a restart.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::helpers::*;
use crate::portal_e2e::repo_root;
use crate::proxy::{get, member};

const ROUTES: &str = r#"
[[route]]
name = "billing"
path_prefix = "/billing"
upstreams = ["{upstream}"]
auth = "required"
tenant = "required"
tenant_from = ["header"]
signed_assertion = true
audience = "billing-app"

[[route]]
name = "crm"
path_prefix = "/crm"
upstreams = ["{upstream}"]
auth = "required"
tenant = "required"
tenant_from = ["header"]
signed_assertion = true

[[route]]
name = "plain"
path_prefix = "/plain"
upstreams = ["{upstream}"]
auth = "required"
"#;

const ISSUER: &str = "tenantgate-test";

/// A new key from `gateway assertion-key`.
fn new_key() -> String {
    let out = gateway_command(&[]).arg("assertion-key").stdout(Stdio::piped()).output().unwrap();
    assert!(out.status.success(), "gateway assertion-key failed");
    let pem = String::from_utf8(out.stdout).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    pem
}

async fn jwks(app: &TestApp) -> Value {
    let res = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "public, max-age=300");
    res.json().await.unwrap()
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.expect("a kid")
}

/// Verifies as an app does: the key named by `kid`, EdDSA only, this app's `aud`.
fn verify(token: &str, jwks: &Value, audience: &str) -> Result<Value, String> {
    let kid = kid(token);
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid.as_str()).ok_or("kid not published")?;
    let key = DecodingKey::from_ed_components(jwk["x"].as_str().unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[ISSUER]);
    jsonwebtoken::decode::<Value>(token, &key, &validation).map(|d| d.claims).map_err(|e| e.to_string())
}

fn assertion_of(echo: &Value) -> String {
    echo["headers"]["x-tenantgate-assertion"].as_str().unwrap_or_else(|| panic!("no assertion: {echo}")).to_owned()
}

#[tokio::test]
async fn an_app_verifies_the_assertion_from_the_jwks_for_itself_and_this_request_only() {
    let keys = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(keys.path(), new_key()).unwrap();
    let key_file = keys.path().display().to_string();
    let app = spawn_gateway(ROUTES, &[("GATEWAY_ASSERTION_KEY_FILE", &key_file)], None).await;
    let m = member(&app, "Acme").await;
    let tenant = [("x-tenant-id", m.tenant_id.as_str())];

    let (status, echo) = get(&app, "/billing/invoices/7?page=2", Some(&m.token), &tenant).await;
    assert_eq!(status, 200, "{echo}");
    let token = assertion_of(&echo);
    let jwks = jwks(&app).await;
    assert!(jwks["keys"][0].get("d").is_none(), "never the private part: {jwks}");
    let claims = verify(&token, &jwks, "billing-app").unwrap();
    assert_eq!(claims["sub"], m.user_id.as_str());
    assert_eq!(claims["email"], m.email.as_str());
    assert_eq!(claims["email_verified"], false);
    assert_eq!(claims["tid"], m.tenant_id.as_str());
    assert_eq!(claims["tslug"], m.slug.as_str());
    assert_eq!(claims["role"], "owner");
    assert_eq!((claims["htm"].as_str(), claims["htu"].as_str()), (Some("GET"), Some("/billing/invoices/7")));
    assert_eq!(claims["jti"], echo["headers"]["x-request-id"]);
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert!((1..=60).contains(&lifetime), "{claims}");
    // Bound to one app: the route's audience, or its name.
    assert!(verify(&token, &jwks, "crm").is_err());
    let (_, echo) = get(&app, "/crm/leads", Some(&m.token), &tenant).await;
    assert!(verify(&assertion_of(&echo), &jwks, "crm").is_ok());
    // Only where a route asks for it, and a client's own never gets through.
    let forged = [("x-tenantgate-assertion", token.as_str())];
    let (status, echo) = get(&app, "/plain/x", Some(&m.token), &forged).await;
    assert_eq!(status, 200, "{echo}");
    assert!(echo["headers"].get("x-tenantgate-assertion").is_none(), "{echo}");
    // The path it names is the one the app receives, normalized.
    let (_, echo) = get(&app, "/billing/a/./b/../c", Some(&m.token), &tenant).await;
    assert_eq!(echo["path"], "/billing/a/c");
    assert_eq!(verify(&assertion_of(&echo), &jwks, "billing-app").unwrap()["htu"], "/billing/a/c");
}

/// Runs one of the documented verifiers; `Ok(claims)` or `Err(stderr)`.
fn run_verifier(program: &str, script: &Path, app: &TestApp, args: [&str; 4]) -> Result<Value, String> {
    let [audience, method, path, token] = args;
    let jwks_url = app.url("/.well-known/jwks.json");
    let out = Command::new(program)
        .arg(script)
        .args([jwks_url.as_str(), ISSUER, audience, method, path, token])
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("{program} not found ({e}): scripts/lib/ensure.sh installs it"));
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test]
async fn the_documented_node_and_python_verifiers_accept_it_and_refuse_replays() {
    let app = spawn_gateway(ROUTES, &[], None).await;
    let m = member(&app, "Acme").await;
    let (_, echo) = get(&app, "/billing/invoices", Some(&m.token), &[("x-tenant-id", &m.tenant_id)]).await;
    let token = assertion_of(&echo);
    let node = repo_root().join("e2e/verify-assertion.mjs");
    crate::portal_e2e::node_modules();
    // Debian's python3 (PyJWT and cryptography from apt), not a virtualenv's.
    let python = repo_root().join("docs/examples/verify_assertion.py");
    let verifiers = [("node", node.as_path()), ("/usr/bin/python3", python.as_path())];
    for (program, script) in verifiers {
        let claims = run_verifier(program, script, &app, ["billing-app", "GET", "/billing/invoices", &token])
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert_eq!((&claims["sub"], &claims["role"]), (&Value::from(m.user_id.as_str()), &Value::from("owner")));
        let replays = [
            ("crm", "GET", "/billing/invoices", "another app"),
            ("billing-app", "DELETE", "/billing/invoices", "another method"),
            ("billing-app", "GET", "/billing/admin", "another endpoint"),
        ];
        for (audience, method, path, what) in replays {
            let refused = run_verifier(program, script, &app, [audience, method, path, &token]);
            assert!(refused.is_err(), "{program} accepted it for {what}: {refused:?}");
        }
    }
}

#[tokio::test]
async fn keys_rotate_from_the_file_without_a_restart_and_old_assertions_keep_verifying() {
    let (old, new) = (new_key(), new_key());
    let keys = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(keys.path(), &old).unwrap();
    let key_file = keys.path().display().to_string();
    let app = spawn_gateway(ROUTES, &[("GATEWAY_ASSERTION_KEY_FILE", &key_file)], None).await;
    let m = member(&app, "Acme").await;
    let tenant = [("x-tenant-id", m.tenant_id.as_str())];
    let (_, echo) = get(&app, "/billing/x", Some(&m.token), &tenant).await;
    let before = assertion_of(&echo);
    assert_eq!(jwks(&app).await["keys"].as_array().unwrap().len(), 1);

    // Step 1: the next key is published first, not yet signing.
    std::fs::write(keys.path(), [old.as_str(), new.as_str()].concat()).unwrap();
    let published =
        app.eventually(Duration::from_secs(10), || async { jwks(&app).await["keys"].as_array().unwrap().len() == 2 });
    assert!(published.await, "the second key was not published");
    let (_, echo) = get(&app, "/billing/x", Some(&m.token), &tenant).await;
    assert_eq!(kid(&assertion_of(&echo)), kid(&before), "the first key still signs");

    // Step 2: the new key signs; the old one leaves the file but stays published.
    std::fs::write(keys.path(), &new).unwrap();
    let rotated = app.eventually(Duration::from_secs(10), || async {
        let (_, echo) = get(&app, "/billing/x", Some(&m.token), &tenant).await;
        kid(&assertion_of(&echo)) != kid(&before)
    });
    assert!(rotated.await, "the new key never started signing");
    let jwks = jwks(&app).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "the old key is still published: {jwks}");
    assert!(verify(&before, &jwks, "billing-app").is_ok());
    let (_, echo) = get(&app, "/billing/x", Some(&m.token), &tenant).await;
    assert!(verify(&assertion_of(&echo), &jwks, "billing-app").is_ok());

    // A bad edit keeps the keys, and the gateway keeps signing.
    std::fs::write(keys.path(), "not a key").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, echo) = get(&app, "/billing/x", Some(&m.token), &tenant).await;
    assert_eq!(status, 200, "{echo}");
    assert!(verify(&assertion_of(&echo), &self::jwks(&app).await, "billing-app").is_ok());
}

#[tokio::test]
async fn hs256_is_an_explicit_choice_with_its_own_secret_and_publishes_no_keys() {
    let secret = "assertion-secret-0123456789abcdef-assertion";
    let routes = ROUTES;
    // Chosen without a secret: refused at start, naming the variable.
    let db = TestDb::create().await;
    let mut env = base_env(&db, free_port(), free_port());
    env.push(("GATEWAY_ASSERTION_ALGORITHM".into(), "HS256".into()));
    let out = gateway_command(&env).arg("check-config").stderr(Stdio::piped()).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("GATEWAY_ASSERTION_SECRET"));

    let extra = [("GATEWAY_ASSERTION_ALGORITHM", "HS256"), ("GATEWAY_ASSERTION_SECRET", secret)];
    let app = spawn_gateway(routes, &extra, None).await;
    let m = member(&app, "Acme").await;
    let (_, echo) = get(&app, "/billing/x", Some(&m.token), &[("x-tenant-id", &m.tenant_id)]).await;
    let token = assertion_of(&echo);
    assert_eq!(jwks(&app).await, serde_json::json!({ "keys": [] }));
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&["billing-app"]);
    let claims = jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_secret(secret.as_bytes()), &validation);
    assert_eq!(claims.unwrap().claims["htu"], "/billing/x");
}

#[tokio::test]
async fn a_key_file_that_holds_no_ed25519_key_stops_the_start_with_a_clear_message() {
    let db = TestDb::create().await;
    let keys = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(keys.path(), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
    let mut env = base_env(&db, free_port(), free_port());
    env.push(("GATEWAY_ASSERTION_KEY_FILE".into(), keys.path().display().to_string()));
    let routes = tempfile::tempdir().unwrap();
    std::fs::write(routes.path().join("routes.toml"), ROUTES.replace("{upstream}", "127.0.0.1:9")).unwrap();
    env.push(("GATEWAY_ROUTES".into(), routes.path().display().to_string()));
    let out = gateway_command(&env).arg("check-config").stderr(Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("GATEWAY_ASSERTION_KEY_FILE") && stderr.contains("CERTIFICATE"), "{stderr}");
}
