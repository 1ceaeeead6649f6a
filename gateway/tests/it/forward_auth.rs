//! Forward-auth through a real nginx (Debian's nginx-light, `auth_request`), as
//! docs/forward-auth.md configures it: nginx asks `/auth/verify`, passes the
//! identity headers tenantgate answers with to the app, sends browsers to the
//! login page, and never lets a client's own identity headers through.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::*;
use crate::proxy::member;

const ROUTES: &str = r#"
[[route]]
name = "app"
path_prefix = "/app"
upstreams = ["{upstream}"]
auth = "required"
tenant = "required"
tenant_from = ["header"]
min_role = "viewer"

[[route]]
name = "web"
path_prefix = "/web"
upstreams = ["{upstream}"]
auth = "required"
on_unauthenticated = "redirect"

[[route]]
name = "public"
path_prefix = "/public"
upstreams = ["{upstream}"]
auth = "none"
"#;

/// nginx in front of the echo upstream, asking the gateway; it connects to the
/// gateway from 127.0.0.2, the only trusted proxy.
pub struct Nginx {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The nginx configuration docs/forward-auth.md gives, with test addresses.
fn nginx_conf(dir: &std::path::Path, port: u16, gateway: &str, app: &str) -> String {
    let snippet = include_str!("../../../docs/examples/nginx-forward-auth.conf");
    let snippet = snippet.replace("127.0.0.1:8080", gateway).replace("127.0.0.1:3000", app);
    let snippet = snippet.replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
    // The test's own process: no daemon, no workers, everything under `dir`.
    format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\nevents {{}}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n{snippet}\n}}\n",
        d = dir.display()
    )
}

pub async fn start_nginx(gateway: &str, app: &str) -> Nginx {
    start_nginx_asking(gateway, None, app).await
}

/// nginx asking `verify_listener` (`GATEWAY_VERIFY_LISTEN`) instead when given,
/// from its usual address; else the gateway's listener from 127.0.0.2.
pub async fn start_nginx_asking(gateway: &str, verify_listener: Option<&str>, app: &str) -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("nginx.conf");
    let verify = "proxy_pass http://tenantgate_verify/auth/verify/nginx;";
    let conf_text = nginx_conf(dir.path(), port, gateway, app);
    assert!(conf_text.contains(verify), "the documented snippet asks /auth/verify");
    let server = format!("server {gateway};");
    assert!(conf_text.contains(&server), "the documented snippet keeps connections to tenantgate");
    let text = match verify_listener {
        Some(listener) => conf_text.replace(&server, &format!("server {listener};")),
        None => conf_text.replace(verify, &format!("proxy_bind 127.0.0.2;\n        {verify}")),
    };
    std::fs::write(&conf, text).unwrap();
    let nginx = if std::path::Path::new("/usr/sbin/nginx").exists() { "/usr/sbin/nginx" } else { "nginx" };
    let child = Command::new(nginx)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx is installed (scripts/test.sh installs nginx-light)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
        assert!(Instant::now() < deadline, "nginx did not start: {log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Nginx { port, child, _dir: dir }
}

#[tokio::test]
async fn nginx_auth_request_allows_denies_redirects_and_passes_only_our_identity() {
    let app = spawn_gateway(ROUTES, &[("GATEWAY_TRUSTED_PROXIES", "127.0.0.2")], None).await;
    let gateway = app.base.trim_start_matches("http://").to_owned();
    let nginx = start_nginx(&gateway, &app.upstream.addr).await;
    let m = member(&app, "Acme").await;
    let other = member(&app, "Globex").await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", nginx.port);

    // Allowed: the app gets tenantgate's identity, not the client's.
    let res = client
        .get(url("/app/reports?x=1"))
        .bearer_auth(&m.token)
        .header("x-tenant-id", &m.tenant_id)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let echo: Value = res.json().await.unwrap();
    assert_eq!(echo["path"], "/app/reports");
    assert_eq!(echo["headers"]["x-user-id"], m.user_id.as_str(), "{echo}");
    assert_eq!(echo["headers"]["x-tenant-slug"], m.slug.as_str());
    assert_eq!(echo["headers"]["x-tenant-role"], "owner");

    // Denied: no token, another tenant's member, an ambiguous path.
    let res = client.get(url("/app/reports")).header("x-tenant-id", &m.tenant_id).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res =
        client.get(url("/app/reports")).bearer_auth(&other.token).header("x-tenant-id", &m.tenant_id).send().await;
    assert_eq!(res.unwrap().status(), 403);
    // A path the gateway finds ambiguous: 403 (nginx passes on only 401 and 403).
    assert_eq!(client.get(url("/public/a%2Fb")).send().await.unwrap().status(), 403);
    // One that climbs above the root: nginx refuses it itself.
    assert_eq!(client.get(url("/public/..%2F..%2Fapp/reports")).send().await.unwrap().status(), 400);
    // nginx normalizes `..` for its own location match, and the gateway judges
    // the raw URI it was given the same way: /app, which needs a token.
    let res = client.get(url("/public/../app/reports")).header("x-tenant-id", &m.tenant_id).send().await.unwrap();
    assert_eq!(res.status(), 401);

    // Browsers on a redirect route go to the login page.
    let res = client.get(url("/web/page?a=1")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(res.status(), 302);
    let location = res.headers()["location"].to_str().unwrap();
    assert!(location.ends_with("/auth/ui/login?return_to=%2Fweb%2Fpage%3Fa%3D1"), "{location}");

    // A client's own identity headers would reach the app as sent (nginx passes
    // them on, and the gateway cannot remove them here): refused, on every route.
    for (name, value) in [("x-user-id", "00000000-0000-0000-0000-000000000000"), ("x-tenant-role", "owner")] {
        let res = client.get(url("/public/page")).header(name, value).send().await.unwrap();
        assert_eq!(res.status(), 403, "{name}");
        let res = client
            .get(url("/app/reports"))
            .bearer_auth(&m.token)
            .header("x-tenant-id", &m.tenant_id)
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{name} beside a valid token");
    }
    assert_eq!(client.get(url("/public/page")).send().await.unwrap().status(), 200, "anonymous is fine");

    // What nginx forwards as the client sent it must be what was judged: a path
    // in canonical form only, and no identity or override header the app reads.
    for target in ["/public//x", "/public/%61", "/public/./x", "/app/..//public/x"] {
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", nginx.port)).await.unwrap();
        let request = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        tokio::io::AsyncWriteExt::write_all(&mut socket, request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut socket, &mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 403") || answer.starts_with("HTTP/1.1 400"), "{target}: {answer}");
    }
    for (name, value) in [
        ("x-http-method-override", "DELETE"),
        ("x-original-url", "/app/reports"),
        ("remote-user", "root"),
        ("forwarded", "host=admin.test"),
    ] {
        let res = client.get(url("/public/page")).header(name, value).send().await.unwrap();
        assert_eq!(res.status(), 403, "{name} would reach the app as sent");
    }
    // A client's X-Forwarded-Host neither picks the host judged nor reaches the app.
    let res = client.get(url("/public/page")).header("x-forwarded-host", "admin.test").send().await.unwrap();
    assert_eq!(res.status(), 200);
    let echo: Value = res.json().await.unwrap();
    assert!(echo["headers"].get("x-forwarded-host").is_none(), "{echo}");

    // The endpoints answer only the trusted proxy, and nginx never passes them on.
    let res = client
        .get(format!("{}/auth/verify/nginx", app.base))
        .header("x-original-uri", "/public/page")
        .header("x-original-method", "GET")
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "untrusted_proxy").await;
    assert_eq!(client.get(url("/auth/verify/nginx")).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn traefik_caddy_and_envoy_requests_are_read_as_they_send_them() {
    let app = spawn_gateway(ROUTES, &[("GATEWAY_TRUSTED_PROXIES", "127.0.0.1")], None).await;
    let m = member(&app, "Acme").await;
    let verify = |path: &str| app.client.get(format!("{}{path}", app.base));

    // Traefik ForwardAuth / Caddy forward_auth: X-Forwarded-Method, -Uri, -Host.
    let res = verify("/auth/verify")
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-uri", "/app/reports?x=1")
        .header("x-forwarded-host", "shop.test")
        .header("x-forwarded-proto", "https")
        .bearer_auth(&m.token)
        .header("x-tenant-id", &m.tenant_id)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-user-id"], m.user_id.as_str());
    assert_eq!(res.headers()["x-tenant-role"], "owner");
    assert!(res.headers().get("x-request-id").is_some());
    // A browser on a redirect route: a 302 the proxy passes on.
    let res = verify("/auth/verify")
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-uri", "/web/page")
        .header("x-forwarded-host", "shop.test")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    assert!(res.headers()["location"].to_str().unwrap().starts_with("/auth/ui/login?return_to=%2Fweb%2Fpage"));
    // The method counts: a route rule or `methods` sees the original one.
    let res = verify("/auth/verify")
        .header("x-forwarded-method", "DELETE")
        .header("x-forwarded-uri", "/app/reports")
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "missing_token").await;

    // A client's X-Original-* copied into Traefik's check is not Traefik's word.
    let res = verify("/auth/verify")
        .header("x-forwarded-method", "DELETE")
        .header("x-forwarded-uri", "/app/reports")
        .header("x-original-uri", "/public/x")
        .header("x-original-method", "GET")
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "invalid_request").await;

    // Envoy ext_authz (HTTP service): the original path after the check path.
    let res = verify("/auth/verify/envoy/app/reports?x=1")
        .bearer_auth(&m.token)
        .header("x-tenant-id", &m.tenant_id)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-tenant-slug"], m.slug.as_str());
    let res = verify("/auth/verify/envoy/app/a%2Fb").bearer_auth(&m.token).send().await.unwrap();
    assert_error(res, 400, "ambiguous_path").await;

    // No original request, or two of them: refused.
    assert_error(verify("/auth/verify").send().await.unwrap(), 400, "invalid_request").await;
    let res = verify("/auth/verify")
        .header("x-forwarded-uri", "/app/a")
        .header("x-forwarded-host", "a.test")
        .header("x-forwarded-host", "b.test")
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "invalid_request").await;
}

#[tokio::test]
async fn nginx_passes_an_api_key_actor_and_keeps_the_key_at_the_edge() {
    let app = spawn_gateway(ROUTES, &[("GATEWAY_TRUSTED_PROXIES", "127.0.0.2")], None).await;
    let gateway = app.base.trim_start_matches("http://").to_owned();
    let nginx = start_nginx(&gateway, &app.upstream.addr).await;
    let m = member(&app, "Acme").await;
    mark_verified(&app, &m.user_id).await;
    let other = member(&app, "Globex").await;
    let res = app
        .client
        .post(app.url(&format!("/auth/tenants/{}/api-keys", m.tenant_id)))
        .bearer_auth(&m.token)
        .json(&serde_json::json!({"name": "ci", "role": "viewer"}))
        .send()
        .await
        .unwrap();
    let made: Value = res.json().await.unwrap();
    let (key, id) = (made["key"].as_str().unwrap(), made["apiKey"]["id"].as_str().unwrap());
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", nginx.port);

    // In X-Api-Key or as a bearer token: the app sees the key's actor, never the key.
    for (name, value) in [("x-api-key", key.to_owned()), ("authorization", format!("Bearer {key}"))] {
        let res = client.get(url("/app/reports")).header(name, &value).send().await.unwrap();
        assert_eq!(res.status(), 200, "{name}");
        let echo: Value = res.json().await.unwrap();
        let seen = &echo["headers"];
        assert_eq!(
            (seen["x-actor-type"].as_str(), seen["x-api-key-id"].as_str()),
            (Some("api_key"), Some(id)),
            "{echo}"
        );
        assert_eq!(
            (seen["x-tenant-id"].as_str(), seen["x-tenant-role"].as_str()),
            (Some(m.tenant_id.as_str()), Some("viewer"))
        );
        assert!(
            seen["x-user-id"].is_null() && seen["x-api-key"].is_null() && seen["authorization"].is_null(),
            "{echo}"
        );
    }
    // Its own tenant only; a wrong key is a 401.
    let res = client.get(url("/app/reports")).header("x-api-key", key).header("x-tenant-id", &other.tenant_id).send();
    assert_eq!(res.await.unwrap().status(), 403);
    let wrong = format!("{}{}", &key[..key.len() - 1], if key.ends_with('a') { 'b' } else { 'a' });
    assert_eq!(client.get(url("/app/reports")).header("x-api-key", wrong).send().await.unwrap().status(), 401);
    // A user is marked as one; the app's own X-Api-Key passes as sent; a client
    // claiming an actor is refused.
    let res = client
        .get(url("/app/reports"))
        .bearer_auth(&m.token)
        .header("x-tenant-id", &m.tenant_id)
        .header("x-api-key", "app-own")
        .send()
        .await
        .unwrap();
    let echo: Value = res.json().await.unwrap();
    assert_eq!(echo["headers"]["x-actor-type"], "user", "{echo}");
    assert_eq!(echo["headers"]["x-api-key"], "app-own");
    assert!(echo["headers"]["x-api-key-id"].is_null());
    let res = client.get(url("/public/page")).header("x-actor-type", "api_key").send().await.unwrap();
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn a_private_verify_listener_answers_forward_auth_only_and_believes_its_peers() {
    let listener = format!("127.0.0.1:{}", free_port());
    let app = spawn_gateway(ROUTES, &[("GATEWAY_VERIFY_LISTEN", &listener)], None).await;
    let gateway = app.base.trim_start_matches("http://").to_owned();
    let nginx = start_nginx_asking(&gateway, Some(&listener), &app.upstream.addr).await;
    let m = member(&app, "Acme").await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", nginx.port);

    // Through nginx, with no GATEWAY_TRUSTED_PROXIES at all: allowed, denied, spoof refused.
    let res = client.get(url("/app/r")).bearer_auth(&m.token).header("x-tenant-id", &m.tenant_id).send().await;
    let res = res.unwrap();
    assert_eq!(res.status(), 200);
    let echo: Value = res.json().await.unwrap();
    assert_eq!(echo["headers"]["x-user-id"], m.user_id.as_str(), "{echo}");
    assert_eq!(client.get(url("/app/r")).header("x-tenant-id", &m.tenant_id).send().await.unwrap().status(), 401);
    let res = client.get(url("/public/p")).header("x-user-id", "forged").send().await.unwrap();
    assert_eq!(res.status(), 403);

    // The listener answers nothing but forward-auth: no proxying, no API, no portal.
    for path in ["/app/r", "/public/p", "/auth/login", "/auth/ui/login", "/metrics", "/"] {
        let res = client.get(format!("http://{listener}{path}")).bearer_auth(&m.token).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "route_not_found", "{path}");
    }
    // Asked directly, it answers (its peers are the proxies it serves).
    let res = client
        .get(format!("http://{listener}/auth/verify/nginx"))
        .header("x-original-uri", "/public/p")
        .header("x-original-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The public listener still answers forward-auth to trusted proxies only.
    let res = client
        .get(app.url("/auth/verify/nginx"))
        .header("x-original-uri", "/public/p")
        .header("x-original-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "untrusted_proxy");
}
