//! HTTPS upstreams: routes to real TLS servers (testkit's, with certificates from
//! a throw-away CA) are verified against the route's CA and name, refused with 502
//! `upstream_tls` when the certificate is not acceptable, present a client
//! certificate to apps that require one, and refuse unusable TLS files at
//! `check-config` and at reload (keeping the previous table).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use axum::extract::ConnectInfo;
use serde_json::{json, Value};
use testkit::tls::{https_upstream, Leaf, TestCa, TlsPeer};

use crate::helpers::*;
use crate::proxy::get;

/// An app that answers with the path it got and the client certificate's name.
fn app() -> axum::Router {
    axum::Router::new().fallback(|ConnectInfo(peer): ConnectInfo<TlsPeer>, uri: axum::http::Uri| async move {
        axum::Json(json!({ "path": uri.path(), "client_cn": peer.client_cn }))
    })
}

/// A route without auth or tenant on `/{name}` to `upstreams`, with `keys`.
fn route(name: &str, upstreams: &[String], keys: &str) -> String {
    let upstreams: Vec<String> = upstreams.iter().map(|u| format!("{u:?}")).collect();
    format!(
        "[[route]]\nname = \"{name}\"\npath_prefix = \"/{name}\"\nupstreams = [{}]\nauth = \"none\"\n{keys}\n\n",
        upstreams.join(", ")
    )
}

/// `tls_ca = "<path>"` for the CA written into `dir`.
fn ca_key(dir: &Path, ca: &TestCa, stem: &str) -> String {
    let path = dir.join(format!("{stem}.pem"));
    std::fs::write(&path, ca.cert_pem()).unwrap();
    format!("tls_ca = {:?}", path.display().to_string())
}

/// `tls_client_cert` and `tls_client_key` for `leaf` written into `dir`.
fn client_keys(dir: &Path, leaf: &Leaf, stem: &str) -> String {
    let (cert, key) = leaf.write(dir, stem);
    format!("tls_client_cert = {:?}\ntls_client_key = {:?}", cert.display().to_string(), key.display().to_string())
}

/// No Redis, no RabbitMQ: these tests need neither.
const SINGLE_NODE: &[(&str, &str)] = &[("REDIS_URL", ""), ("RABBITMQ_URL", "")];

/// Waits until `path` is proxied (the first health check may still be running).
async fn until_proxied(app: &TestApp, path: &str) -> Value {
    let live = app.eventually(Duration::from_secs(10), || async { get(app, path, None, &[]).await.0 == 200 });
    assert!(live.await, "{path} never answered 200");
    get(app, path, None, &[]).await.1
}

/// Asserts `path` answers 502 `upstream_tls` with `Connection: close` (the
/// gateway does not reuse a connection after a failed proxy attempt), on the
/// app's pooled client: the next request must open a new connection, not hit a
/// closed one.
async fn assert_upstream_tls(app: &TestApp, path: &str) {
    let res = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(res.headers().get("connection").map(|v| v.to_str().unwrap()), Some("close"));
    assert_error(res, 502, "upstream_tls").await;
}

#[tokio::test]
async fn https_upstreams_are_verified_against_the_routes_ca_and_name() {
    let certs = tempfile::tempdir().unwrap();
    let ca = TestCa::new("upstream ca");
    let other_ca = TestCa::new("another ca");
    let serve = |leaf: Leaf| async move { https_upstream(&leaf, None, app()).await.port() };
    let good = serve(ca.issue(&["localhost"])).await;
    let by_ip = serve(ca.issue(&["127.0.0.1"])).await;
    let foreign = serve(other_ca.issue(&["localhost"])).await;
    let other_name = serve(ca.issue(&["other.test"])).await;
    let expired = serve(ca.issue_with_validity(&["localhost"], -10, -1)).await;
    let self_signed = serve(Leaf::self_signed(&["localhost"])).await;

    let trust = ca_key(certs.path(), &ca, "ca");
    let https = |host: &str, port: u16| vec![format!("https://{host}:{port}")];
    let routes = [
        route("good", &https("localhost", good), &trust),
        route("by-ip", &https("127.0.0.1", by_ip), &trust),
        route("both", &[https("localhost", good), https("127.0.0.1", by_ip)].concat(), &trust),
        route("foreign", &https("localhost", foreign), &trust),
        route("system-roots", &https("localhost", good), ""),
        route("mismatch", &https("localhost", other_name), &trust),
        route("renamed", &https("localhost", other_name), &format!("{trust}\ntls_server_name = \"other.test\"")),
        route("expired", &https("localhost", expired), &trust),
        route("unverified", &https("localhost", self_signed), "tls_verify = false"),
        route("self-signed", &https("localhost", self_signed), ""),
    ]
    .concat();
    let gw = spawn_gateway(&routes, SINGLE_NODE, None).await;

    let body = until_proxied(&gw, "/good/x?q=1").await;
    assert_eq!(body, json!({"path": "/good/x", "client_cn": null}));
    assert_eq!(until_proxied(&gw, "/by-ip/y").await["path"], "/by-ip/y", "an IP address is verified as one");
    // Two upstreams with different names: each request is verified against the
    // name of the upstream it went to, whichever the balancer picked.
    until_proxied(&gw, "/both").await;
    for _ in 0..6 {
        assert_eq!(get(&gw, "/both", None, &[]).await.0, 200);
    }
    assert_eq!(until_proxied(&gw, "/renamed").await["path"], "/renamed", "tls_server_name is sent and verified");
    assert_eq!(until_proxied(&gw, "/unverified").await["path"], "/unverified", "tls_verify = false");

    for refused in ["/foreign", "/system-roots", "/mismatch", "/expired", "/self-signed"] {
        assert_upstream_tls(&gw, refused).await;
    }
}

#[tokio::test]
async fn the_routes_client_certificate_is_presented_to_apps_that_require_one() {
    let certs = tempfile::tempdir().unwrap();
    let ca = TestCa::new("app ca");
    let port = https_upstream(&ca.issue(&["localhost"]), Some(&ca.cert_pem()), app()).await.port();
    let upstream = vec![format!("https://localhost:{port}")];
    let trust = ca_key(certs.path(), &ca, "ca");
    let ours = client_keys(certs.path(), &ca.issue_client("tenantgate-gateway"), "client");
    let strangers = client_keys(certs.path(), &TestCa::new("other").issue_client("stranger"), "stranger");
    let routes = [
        route("mtls", &upstream, &format!("{trust}\n{ours}")),
        route("no-client-cert", &upstream, &trust),
        route("wrong-client-cert", &upstream, &format!("{trust}\n{strangers}")),
    ]
    .concat();
    let gw = spawn_gateway(&routes, SINGLE_NODE, None).await;

    let body = until_proxied(&gw, "/mtls/x").await;
    assert_eq!(body, json!({"path": "/mtls/x", "client_cn": "tenantgate-gateway"}));
    assert_upstream_tls(&gw, "/no-client-cert").await;
    assert_upstream_tls(&gw, "/wrong-client-cert").await;
    assert_eq!(get(&gw, "/mtls/again", None, &[]).await.0, 200, "failed handshakes leave the app serving");
}

/// Runs `gateway check-config` on a routes file holding `routes`; returns
/// (success, stdout + stderr).
fn check_config(env: &[(String, String)], dir: &Path, routes: &str) -> (bool, String) {
    std::fs::write(dir.join("routes.toml"), routes).unwrap();
    let mut env = env.to_vec();
    env.push(("GATEWAY_ROUTES".into(), dir.join("routes.toml").display().to_string()));
    let out = gateway_command(&env).arg("check-config").stdout(Stdio::piped()).stderr(Stdio::piped()).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test]
async fn check_config_refuses_tls_files_and_keys_that_cannot_work() {
    let db = TestDb::create().await;
    let env = base_env(&db, free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("ca");
    let trust = ca_key(dir.path(), &ca, "ca");
    let (cert, _) = ca.issue_client("one").write(dir.path(), "one");
    let (_, other_key) = ca.issue_client("two").write(dir.path(), "two");
    let mismatched = format!("tls_client_cert = {:?}\ntls_client_key = {:?}", cert.display(), other_key.display());
    std::fs::write(dir.path().join("garbage.pem"), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        .unwrap();
    let upstream = vec!["https://app.internal:8443".to_owned()];

    let (ok, out) = check_config(&env, dir.path(), &route("app", &upstream, &trust));
    assert!(ok, "{out}");
    let (ok, out) = check_config(&env, dir.path(), &route("dev", &upstream, "tls_verify = false"));
    assert!(ok && out.contains("note: route dev") && out.contains("tls_verify = false"), "{out}");

    // Upstreams are on line 4, the keys from line 6 on; columns are the values'.
    let file = dir.path().join("routes.toml").display().to_string();
    for (keys, upstreams, at, why) in [
        (mismatched.as_str(), &upstream, ":7:18: tls_client_key", "does not match the certificate"),
        ("tls_ca = \"garbage.pem\"", &upstream, ":6:10: tls_ca", "is not valid X.509"),
        ("tls_ca = \"missing.pem\"", &upstream, ":6:10: tls_ca", "cannot read it"),
        (trust.as_str(), &vec!["127.0.0.1:3000".to_owned()], ":6:10: tls_ca", "only applies to https upstreams"),
        ("", &vec!["127.0.0.1:3000".to_owned(), "https://a.internal".to_owned()], ":4:", "mixes http and https"),
    ] {
        let (ok, out) = check_config(&env, dir.path(), &route("app", upstreams, keys));
        assert!(!ok && out.contains(&format!("{file}{at}")) && out.contains(why), "{keys}: {out}");
    }
}

#[tokio::test]
async fn a_reload_with_unusable_tls_files_keeps_the_previous_table() {
    let certs = tempfile::tempdir().unwrap();
    let ca = TestCa::new("ca");
    let port = https_upstream(&ca.issue(&["localhost"]), None, app()).await.port();
    let upstream = vec![format!("https://localhost:{port}")];
    let trust = ca_key(certs.path(), &ca, "ca");
    let log = tempfile::NamedTempFile::new().unwrap();
    let gw =
        spawn_gateway_logging(&route("app", &upstream, &trust), SINGLE_NODE, None, Some(log.reopen().unwrap())).await;
    until_proxied(&gw, "/app").await;

    // A client key that does not match its certificate: refused, the route stays.
    let (cert, _) = ca.issue_client("one").write(certs.path(), "one");
    let (_, key) = ca.issue_client("two").write(certs.path(), "two");
    let keys = format!("{trust}\ntls_client_cert = {:?}\ntls_client_key = {:?}", cert.display(), key.display());
    let file = gw.routes_dir.path().join("routes.toml");
    std::fs::write(&file, route("app", &upstream, &keys)).unwrap();
    let refused = gw.eventually(Duration::from_secs(10), || async {
        gw.metric(r#"tenantgate_route_reloads_total{result="error"}"#).await >= 1.0
    });
    assert!(refused.await, "the bad edit was not noticed");
    assert_eq!(get(&gw, "/app", None, &[]).await.0, 200, "the previous table must stay");

    // A route that does not verify its upstream loads, with a warning naming it.
    std::fs::write(&file, route("dev", &upstream, "tls_verify = false")).unwrap();
    assert_eq!(until_proxied(&gw, "/dev").await["path"], "/dev");
    let text = std::fs::read_to_string(log.path()).unwrap();
    let warning = text.lines().find(|l| l.contains("tls_verify = false")).unwrap_or_default();
    assert!(warning.contains("WARN") && warning.contains("dev"), "{text}");
    let refusal = text.lines().find(|l| l.contains("keeping the previous route table")).unwrap_or_default();
    assert!(refusal.contains("tls_client_key") && refusal.contains("does not match"), "{text}");
}
