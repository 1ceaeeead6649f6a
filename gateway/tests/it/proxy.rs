//! The proxy: tenant resolution by every mode, 401/403/404, cross-tenant denial,
//! header stripping and injection, path normalization, upstream failures.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

/// A registered user with their token and tenant.
#[derive(Clone)]
pub struct Member {
    pub token: String,
    pub user_id: String,
    pub tenant_id: String,
    pub slug: String,
    pub email: String,
}

pub async fn member(app: &TestApp, tenant_name: &str) -> Member {
    let email = unique_email();
    let body = app.register(&email, Some(tenant_name)).await;
    Member {
        token: body["accessToken"].as_str().unwrap().to_owned(),
        user_id: body["user"]["id"].as_str().unwrap().to_owned(),
        tenant_id: body["tenants"][0]["id"].as_str().unwrap().to_owned(),
        slug: body["tenants"][0]["slug"].as_str().unwrap().to_owned(),
        email,
    }
}

/// GET `path` through the gateway with `token` and extra headers; returns status
/// and the JSON body (the upstream's echo or the gateway's error).
pub async fn get(app: &TestApp, path: &str, token: Option<&str>, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = app.client.get(app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn assert_injected(echo: &Value, m: &Member, role: &str) {
    let h = &echo["headers"];
    assert_eq!(h["x-user-id"], m.user_id.as_str(), "{echo}");
    assert_eq!(h["x-user-email"], m.email.as_str());
    assert_eq!(h["x-tenant-id"], m.tenant_id.as_str());
    assert_eq!(h["x-tenant-slug"], m.slug.as_str());
    assert_eq!(h["x-tenant-role"], role);
    assert!(h["x-request-id"].as_str().is_some_and(|id| !id.is_empty()));
}

#[tokio::test]
async fn every_tenant_source_resolves_and_injects_identity() {
    let app = spawn_app_with(&[("GATEWAY_BASE_DOMAIN", "tenants.test")]).await;
    let m = member(&app, "Acme").await;
    sqlx::query("UPDATE tenants SET domain = 'acme-app.test' WHERE id = $1::uuid")
        .bind(&m.tenant_id)
        .execute(&app.db.pool().await)
        .await
        .unwrap();

    let (status, echo) = get(&app, "/app/x?q=1", Some(&m.token), &[("x-tenant-id", &m.tenant_id)]).await;
    assert_eq!(status, 200, "{echo}");
    assert_injected(&echo, &m, "owner");
    assert_eq!(echo["path"], "/app/x");
    assert_eq!(echo["query"], "q=1");

    let (status, echo) = get(&app, "/app/y", Some(&m.token), &[("x-tenant-slug", &m.slug)]).await;
    assert_eq!(status, 200, "{echo}");
    assert_injected(&echo, &m, "owner");

    // Path mode: the /t/{slug} prefix is removed upstream.
    let (status, echo) = get(&app, &format!("/t/{}/app/z", m.slug), Some(&m.token), &[]).await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["path"], "/app/z");
    assert_injected(&echo, &m, "owner");

    let host = format!("{}.tenants.test", m.slug);
    let (status, echo) = get(&app, "/app/sub", Some(&m.token), &[("host", &host)]).await;
    assert_eq!(status, 200, "{echo}");
    assert_injected(&echo, &m, "owner");

    let (status, echo) = get(&app, "/app/dom", Some(&m.token), &[("host", "acme-app.test:8080")]).await;
    assert_eq!(status, 200, "{echo}");
    assert_injected(&echo, &m, "owner");
}

#[tokio::test]
async fn a_token_for_tenant_a_is_refused_for_tenant_b_by_every_mode() {
    let app = spawn_app_with(&[("GATEWAY_BASE_DOMAIN", "tenants.test")]).await;
    let a = member(&app, "Alpha").await;
    let b = member(&app, "Beta").await;
    sqlx::query("UPDATE tenants SET domain = 'beta.example' WHERE id = $1::uuid")
        .bind(&b.tenant_id)
        .execute(&app.db.pool().await)
        .await
        .unwrap();
    let cases: Vec<(String, Vec<(&str, String)>)> = vec![
        ("/app".into(), vec![("x-tenant-id", b.tenant_id.clone())]),
        ("/app".into(), vec![("x-tenant-slug", b.slug.clone())]),
        (format!("/t/{}/app", b.slug), vec![]),
        ("/app".into(), vec![("host", format!("{}.tenants.test", b.slug))]),
        ("/app".into(), vec![("host", "beta.example".to_owned())]),
    ];
    for (path, headers) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = get(&app, &path, Some(&a.token), &headers).await;
        assert_eq!((status, body["error"].as_str()), (403, Some("not_a_member")), "{path} {headers:?}");
    }
}

#[tokio::test]
async fn authentication_failures_are_401_with_a_bearer_challenge() {
    let app = spawn_app().await;
    let m = member(&app, "Acme").await;
    let tenant = [("x-tenant-id", m.tenant_id.as_str())];
    for (token, code) in [(None, "missing_token"), (Some("not-a-jwt"), "invalid_token")] {
        let mut req = app.client.get(app.url("/app")).header("x-tenant-id", &m.tenant_id);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
        assert_error(res, 401, code).await;
    }
    // Revoked by logout-all: the cached user is invalidated at once.
    assert_eq!(get(&app, "/app", Some(&m.token), &tenant).await.0, 200);
    assert_eq!(app.post_bearer("/auth/logout-all", &m.token).await.status(), 204);
    let (status, body) = get(&app, "/app", Some(&m.token), &tenant).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("token_revoked")));
}

#[tokio::test]
async fn tenant_errors_404_400_and_403() {
    let app = spawn_app().await;
    let m = member(&app, "Acme").await;
    let (status, body) = get(&app, "/app", Some(&m.token), &[("x-tenant-slug", "no-such-tenant")]).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("tenant_not_found")));
    let (status, body) = get(&app, "/app", Some(&m.token), &[("x-tenant-id", &uuid::Uuid::new_v4().to_string())]).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("tenant_not_found")));
    let (status, body) = get(&app, "/app", Some(&m.token), &[]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("tenant_required")));
    let (status, body) = get(&app, "/nothing-here", Some(&m.token), &[]).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("route_not_found")));

    sqlx::query("UPDATE tenants SET is_active = false WHERE id = $1::uuid")
        .bind(&m.tenant_id)
        .execute(&app.db.pool().await)
        .await
        .unwrap();
    let invalidator = invalidator_for(&app).await;
    invalidator.invalidate(vec![shared::cache::Key::Tenant { tenant: m.tenant_id.parse().unwrap() }]).await.unwrap();
    let (status, body) = get(&app, "/app", Some(&m.token), &[("x-tenant-id", &m.tenant_id)]).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("tenant_inactive")));
}

pub async fn invalidator_for(app: &TestApp) -> shared::cache::Invalidator {
    let redis = shared::cache::RedisTier::new(redis::Client::open("redis://127.0.0.1:6379").unwrap());
    redis.connect_now().await.unwrap();
    shared::cache::Invalidator::new(Some(redis), app.prefix.clone(), None)
}

const ROLE_ROUTES: &str = r#"
[[route]]
name = "public"
path_prefix = "/public"
upstreams = ["{upstream}"]
auth = "none"
tenant = "none"

[[route]]
name = "admin"
path_prefix = "/admin"
upstreams = ["{upstream}"]
auth = "required"
tenant = "required"
tenant_from = ["header"]
min_role = "admin"

[[route]]
name = "app"
path_prefix = "/app"
upstreams = ["{upstream}"]
auth = "required"
tenant = "required"
tenant_from = ["header"]
min_role = "member"
"#;

#[tokio::test]
async fn roles_below_the_minimum_are_refused_and_paths_are_normalized_first() {
    let app = spawn_gateway(ROLE_ROUTES, &[], None).await;
    let owner = member(&app, "Acme").await;
    let viewer = member(&app, "Elsewhere").await;
    let mut conn = app.db.pool().await.acquire().await.unwrap();
    shared::db::memberships::insert(
        &mut conn,
        viewer.user_id.parse().unwrap(),
        owner.tenant_id.parse().unwrap(),
        shared::domain::Role::Viewer,
    )
    .await
    .unwrap();
    let t = [("x-tenant-id", owner.tenant_id.as_str())];
    let (status, body) = get(&app, "/app", Some(&viewer.token), &t).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("insufficient_role")));
    assert_eq!(get(&app, "/app", Some(&owner.token), &t).await.0, 200);
    assert_eq!(get(&app, "/admin", Some(&owner.token), &t).await.0, 200);

    // /public/../admin is /admin: the admin route's rules apply, not the public one's.
    for sneaky in ["/public/../admin", "/public/%2e%2e/admin", "//admin", "/public/./../admin/"] {
        let (status, body) = get(&app, sneaky, Some(&viewer.token), &t).await;
        assert_eq!((status, body["error"].as_str()), (403, Some("insufficient_role")), "{sneaky}");
        let (status, echo) = get(&app, sneaky, Some(&owner.token), &t).await;
        assert_eq!(status, 200, "{sneaky}");
        assert!(echo["path"].as_str().unwrap().starts_with("/admin"), "{sneaky} -> {echo}");
    }
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_upstream() {
    let app = spawn_gateway(ROLE_ROUTES, &[], None).await;
    let m = member(&app, "Acme").await;
    let spoof = [
        ("x-user-id", "00000000-0000-0000-0000-000000000000"),
        ("x-user-email", "ceo@victim.test"),
        ("x-tenant-role", "owner"),
        ("x-tenant-slug", "victim"),
        ("x-forwarded-user", "root"),
        ("x-tenantgate-assertion", "forged"),
    ];
    // Anonymous public route: none of them get through, and none are added.
    let (status, echo) = get(&app, "/public/page", None, &spoof).await;
    assert_eq!(status, 200);
    for (name, _) in spoof {
        assert!(echo["headers"].get(name).is_none(), "{name} leaked: {echo}");
    }
    // Authenticated route: the real identity replaces the spoofed one.
    let mut headers = spoof.to_vec();
    headers.retain(|(k, _)| *k != "x-tenant-slug");
    headers.push(("x-tenant-id", &m.tenant_id));
    let (status, echo) = get(&app, "/app", Some(&m.token), &headers).await;
    assert_eq!(status, 200, "{echo}");
    assert_injected(&echo, &m, "owner");
    assert!(echo["headers"].get("x-forwarded-user").is_none());
}

#[tokio::test]
async fn the_upstream_sees_exactly_one_request_id_the_same_as_the_client() {
    let app = spawn_gateway(ROLE_ROUTES, &[], None).await;
    let m = member(&app, "Acme").await;
    let tenant = ("x-tenant-id", m.tenant_id.as_str());
    let cases: [&[(&str, &str)]; 4] = [
        &[tenant],
        &[tenant, ("x-request-id", "client-id-123")],
        &[tenant, ("x-request-id", "bad id\twith tab")],
        &[tenant, ("x-request-id", "first-id"), ("x-request-id", "second-id")],
    ];
    for headers in cases {
        let mut req = app.client.get(app.url("/app")).bearer_auth(&m.token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200);
        let answered = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        let echo: Value = res.json().await.unwrap();
        let seen = echo["headers"]["x-request-id"].as_str().unwrap();
        assert_eq!(seen, answered, "{headers:?}: upstream and client see different ids");
        assert!(!seen.contains(','), "{headers:?}: the upstream got several ids: {seen}");
        match headers.get(1) {
            Some((_, "client-id-123")) => assert_eq!(seen, "client-id-123"),
            Some((_, sent)) => assert_ne!(seen, *sent, "an invalid or repeated id was kept"),
            // The gateway's own: UUID-shaped, version 8 (process prefix + counter).
            None => assert_eq!(uuid::Uuid::parse_str(seen).map(|u| u.get_version_num()), Ok(8)),
        }
    }
}

#[tokio::test]
async fn upstream_failures_are_json_502_and_504() {
    let routes = r#"
[[route]]
name = "down"
path_prefix = "/down"
upstreams = ["127.0.0.1:1"]
auth = "none"
tenant = "none"

[[route]]
name = "slow"
path_prefix = "/slow"
upstreams = ["{upstream}"]
auth = "none"
tenant = "none"
read_timeout = "1s"
"#;
    let app = spawn_gateway(routes, &[], None).await;
    // Pingora closes the client connection after a failed proxy attempt (its safe
    // default), so each request here uses its own connection.
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let res = client.get(app.url("/down")).send().await.unwrap();
    assert_error(res, 502, "bad_gateway").await;
    let started = std::time::Instant::now();
    let res = client.get(app.url("/slow")).send().await.unwrap();
    assert_error(res, 504, "upstream_timeout").await;
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "the gateway must not hang");
}

#[tokio::test]
async fn a_client_that_hangs_up_is_counted_as_499_not_as_an_upstream_failure() {
    let routes = r#"
[[route]]
name = "slow"
path_prefix = "/slow"
upstreams = ["{upstream}"]
auth = "none"
tenant = "none"
"#;
    let app = spawn_gateway(routes, &[], None).await;
    let addr = app.url("").trim_start_matches("http://").trim_end_matches('/').to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut socket, b"GET /slow HTTP/1.1\r\nhost: gateway.test\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Reset, not a polite close: the gateway's write of the upstream's late answer
    // fails. (Deprecated because a non-zero linger blocks on drop; zero does not.)
    #[allow(deprecated)]
    socket.set_linger(Some(Duration::ZERO)).unwrap();
    drop(socket);

    let hung_up = r#"tenantgate_http_requests_total{method="GET",route="slow",status="499",tenant="#;
    assert!(app.eventually(Duration::from_secs(10), || async { app.metric_sum(hung_up).await == 1.0 }).await);
    for status in ["500", "502", "504"] {
        let series = format!(r#"tenantgate_http_requests_total{{method="GET",route="slow",status="{status}",tenant="#);
        assert_eq!(app.metric_sum(&series).await, 0.0, "counted as {status}");
    }
}

#[tokio::test]
async fn per_route_rate_limits_answer_429_with_retry_after() {
    let routes = r#"
[[route]]
name = "limited"
path_prefix = "/limited"
upstreams = ["{upstream}"]
auth = "none"
tenant = "none"
rate_limit = { requests = 3, window = "1m", key = "ip" }
"#;
    let app = spawn_gateway(routes, &[], None).await;
    // The limiter is installed by the control plane's first refresh.
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let res = app.client.get(app.url("/limited")).send().await.unwrap();
        statuses.push(res.status().as_u16());
        if res.status() == 429 {
            let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=60).contains(&retry), "{retry}");
            assert_error(res, 429, "rate_limited").await;
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("never limited: {statuses:?}");
}

/// A WebSocket-ish upstream: answers any request with `101 Switching Protocols`,
/// keeps the request head it got, then echoes every byte back.
async fn upgrade_upstream() -> (String, std::sync::Arc<std::sync::Mutex<String>>, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let keep = seen.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let keep = keep.clone();
            tokio::spawn(async move {
                let head = read_head(&mut socket).await;
                *keep.lock().unwrap() = head.to_ascii_lowercase();
                let answer = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
                if socket.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                let mut buf = [0u8; 1024];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 || socket.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, seen, task)
}

/// Reads up to the blank line that ends an HTTP head.
async fn read_head(socket: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if socket.read(&mut byte).await.unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test]
async fn a_websocket_upgrade_passes_through_after_auth_with_identity_injected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (upstream, seen, _task) = upgrade_upstream().await;
    let routes = format!(
        "[[route]]\nname = \"ws\"\npath_prefix = \"/ws\"\nupstreams = [\"{upstream}\"]\nauth = \"required\"\n\
         tenant = \"required\"\ntenant_from = [\"header\"]\nmin_role = \"viewer\"\n"
    );
    let app = spawn_gateway(&routes, &[], None).await;
    let m = member(&app, "Acme").await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let open = |auth: Option<String>| {
        let (addr, tenant) = (addr.clone(), m.tenant_id.clone());
        async move {
            let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let auth = auth.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
            let request = format!(
                "GET /ws/chat HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
                 X-Tenant-Id: {tenant}\r\nX-User-Id: spoofed\r\n{auth}\r\n"
            );
            socket.write_all(request.as_bytes()).await.unwrap();
            let head = read_head(&mut socket).await;
            (socket, head)
        }
    };

    let (_, refused) = open(None).await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert!(seen.lock().unwrap().is_empty(), "an unauthenticated upgrade reached the upstream");

    let (mut socket, head) = open(Some(m.token.clone())).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let upstream_saw = seen.lock().unwrap().clone();
    assert!(upstream_saw.contains(&format!("x-user-id: {}\r\n", m.user_id)), "{upstream_saw}");
    assert!(!upstream_saw.contains("spoofed"), "{upstream_saw}");
    assert!(upstream_saw.contains("x-tenant-role: owner"), "{upstream_saw}");
    for message in ["hello", "over the upgraded connection"] {
        socket.write_all(message.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(5), socket.read_exact(&mut buf)).await.unwrap().unwrap();
        assert_eq!(buf, message.as_bytes());
    }
}
