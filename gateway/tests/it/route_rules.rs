//! `[[route.rule]]`: method- and path-aware policies inside a route, through the
//! real proxy: the first rule that applies decides, the route's own policy
//! otherwise; path tricks and method spellings do not escape a rule; a reload
//! that adds a rule takes effect at once (the decision memo included);
//! `check-route` names the rule and `check-config` refuses unreachable ones.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use shared::domain::Role;

use crate::helpers::*;
use crate::proxy::{member, Member};

/// The README's example (the DELETE rule's header is line 11), and a route that
/// keeps encoded slashes with a private part.
const RULE_ROUTES: &str = r#"
[[route]]
name = "reports"
path_prefix = "/reports"
upstreams = ["{upstream}"]
auth = "required"
tenant = "required"
tenant_from = ["header"]
min_role = "viewer"

[[route.rule]]
methods = ["DELETE"]
min_role = "admin"

[[route.rule]]
methods = ["POST", "PUT", "PATCH"]
path_prefix = "/reports/shared"
min_role = "member"

[[route.rule]]
path_prefix = "/reports/public"
auth = "optional"

[[route]]
name = "files"
path_prefix = "/files"
upstreams = ["{upstream}"]
auth = "optional"
encoded_slashes = "keep"

[[route.rule]]
path_prefix = "/files/private"
auth = "required"
"#;

/// The `reports` route alone, without its rules.
fn without_rules(routes: &str) -> String {
    routes[..routes.find("\n[[route.rule]]").unwrap()].to_owned() + "\n"
}

/// An owner's tenant with a viewer, a member and an admin in it (each also owns
/// a tenant of their own).
struct Team {
    tenant: String,
    viewer: Member,
    member: Member,
    admin: Member,
}

async fn team(app: &TestApp) -> Team {
    let owner = member(app, "Reports Inc").await;
    let team = Team {
        viewer: member(app, "V").await,
        member: member(app, "M").await,
        admin: member(app, "A").await,
        tenant: owner.tenant_id,
    };
    let mut conn = app.db.pool().await.acquire().await.unwrap();
    for (who, role) in [(&team.viewer, Role::Viewer), (&team.member, Role::Member), (&team.admin, Role::Admin)] {
        let (user, tenant) = (who.user_id.parse().unwrap(), team.tenant.parse().unwrap());
        shared::db::memberships::insert(&mut conn, user, tenant, role).await.unwrap();
    }
    team
}

/// `method path` through the gateway (reqwest: the path as the URL parser
/// leaves it), with a token and the tenant header: status and JSON body.
async fn send(app: &TestApp, method: &str, path: &str, token: Option<&str>, tenant: &str) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = app.client.request(method, app.url(path)).header("x-tenant-id", tenant);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// `method target` written byte for byte on a connection of its own (no client
/// normalizes the path or the method): status and JSON body.
async fn raw(app: &TestApp, method: &str, target: &str, token: Option<&str>, tenant: &str) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nX-Tenant-Id: {tenant}\r\n{auth}\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut response)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.into() };
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

fn error(answer: &(u16, Value)) -> (u16, Option<&str>) {
    (answer.0, answer.1["error"].as_str())
}

#[tokio::test]
async fn the_first_rule_that_applies_decides_and_the_route_decides_the_rest() {
    let app = spawn_gateway(RULE_ROUTES, &[], None).await;
    let Team { tenant, viewer, member, admin } = team(&app).await;
    let t = tenant.as_str();
    let (viewer, member, admin) =
        (Some(viewer.token.as_str()), Some(member.token.as_str()), Some(admin.token.as_str()));

    // The route's own policy: viewers read, and write where no rule says
    // otherwise. GET /reports twice: the second is the memo's.
    for (method, path) in [
        ("GET", "/reports"),
        ("GET", "/reports"),
        ("GET", "/reports/x"),
        ("POST", "/reports/x"),
        ("GET", "/reports/shared/a"),
    ] {
        let (status, echo) = send(&app, method, path, viewer, t).await;
        assert_eq!(status, 200, "{method} {path}: {echo}");
        assert_eq!(echo["headers"]["x-tenant-role"], "viewer");
    }
    assert!(app.metric_sum(r#"tenantgate_decision_memo_total{result="hit""#).await >= 1.0);
    // DELETE anywhere under the route: admins only (before the public rule too).
    // The same token, host and tenant as the remembered GET: a rule's decision
    // is remembered under its own route id, never taken for the route's.
    for path in ["/reports/1", "/reports", "/reports/public/a"] {
        assert_eq!(error(&send(&app, "DELETE", path, viewer, t).await), (403, Some("insufficient_role")), "{path}");
        assert_eq!(error(&send(&app, "DELETE", path, member, t).await), (403, Some("insufficient_role")), "{path}");
        assert_eq!(send(&app, "DELETE", path, admin, t).await.0, 200, "{path}");
    }
    assert_eq!(error(&send(&app, "DELETE", "/reports/1", None, t).await), (401, Some("missing_token")));
    // Writes under /reports/shared: members.
    for (method, path) in [("POST", "/reports/shared/a"), ("PUT", "/reports/shared"), ("PATCH", "/reports/shared/a/b")]
    {
        assert_eq!(error(&send(&app, method, path, viewer, t).await), (403, Some("insufficient_role")), "{path}");
        let (status, echo) = send(&app, method, path, member, t).await;
        assert_eq!((status, echo["method"].as_str()), (200, Some(method)), "{method} {path}");
        assert_eq!(send(&app, method, path, admin, t).await.0, 200, "{path}");
    }
    // Segment-aware: /reports/sharedx is not under /reports/shared.
    assert_eq!(send(&app, "POST", "/reports/sharedx", viewer, t).await.0, 200);
    // /reports/public: anonymous requests pass; a user is still identified.
    let (status, echo) = send(&app, "GET", "/reports/public/a", None, t).await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["headers"]["x-tenant-id"], t);
    assert!(echo["headers"]["x-user-id"].is_null(), "{echo}");
    assert_eq!(send(&app, "POST", "/reports/public", None, t).await.0, 200);
    let (status, echo) = send(&app, "GET", "/reports/public/a", viewer, t).await;
    assert_eq!((status, echo["headers"]["x-tenant-role"].as_str()), (200, Some("viewer")));
    assert_eq!(error(&send(&app, "GET", "/reports/a", None, t).await), (401, Some("missing_token")));
    assert_eq!(error(&send(&app, "GET", "/reports/publicity", None, t).await), (401, Some("missing_token")));
    // Prefixes ignore case as the route does.
    assert_eq!(send(&app, "GET", "/REPORTS/Public/a", None, t).await.0, 200);
    assert_eq!(error(&send(&app, "POST", "/Reports/SHARED/a", viewer, t).await), (403, Some("insufficient_role")));

    // Metrics (and logs) keep the route's name.
    let refused = r#"tenantgate_http_requests_total{method="DELETE",route="reports",status="403""#;
    let counted = app.eventually(Duration::from_secs(5), || async { app.metric_sum(refused).await >= 6.0 });
    assert!(counted.await, "a rule's requests are counted under the route's name");
}

#[tokio::test]
async fn path_tricks_and_method_spellings_do_not_escape_a_rule() {
    let app = spawn_gateway(RULE_ROUTES, &[], None).await;
    let Team { tenant, viewer, admin, .. } = team(&app).await;
    let t = tenant.as_str();
    let (viewer, admin) = (Some(viewer.token.as_str()), Some(admin.token.as_str()));

    // The path is judged as the app will read it: /reports/public/../1 is /reports/1.
    for target in [
        "/reports/public/../1",
        "/reports/public/%2e%2e/1",
        "/reports/public/%2E%2E/1",
        "/reports/./public/.%2e/1",
        "/reports/public/x/../../1",
    ] {
        assert_eq!(error(&raw(&app, "DELETE", target, viewer, t).await), (403, Some("insufficient_role")), "{target}");
        assert_eq!(error(&raw(&app, "GET", target, None, t).await), (401, Some("missing_token")), "{target}");
        let (status, echo) = raw(&app, "DELETE", target, admin, t).await;
        assert_eq!((status, echo["path"].as_str()), (200, Some("/reports/1")), "{target}: {echo}");
    }
    // ... and into a rule: /reports/x/../public/a is public.
    assert_eq!(raw(&app, "GET", "/reports/x/../public/a", None, t).await.0, 200);
    assert_eq!(error(&raw(&app, "POST", "/reports/public/../shared/a", None, t).await), (401, Some("missing_token")));
    assert_eq!(
        error(&raw(&app, "POST", "/reports/public/%2e%2e/shared/a", viewer, t).await),
        (403, Some("insufficient_role"))
    );

    // Pingora passes a method on as sent: `delete` is not DELETE to it, but an
    // app may read it so. Rules compare methods without regard to case, so it is
    // judged by the DELETE rule (and forwarded as sent).
    for method in ["delete", "Delete", "dELETE"] {
        assert_eq!(
            error(&raw(&app, method, "/reports/1", viewer, t).await),
            (403, Some("insufficient_role")),
            "{method}"
        );
        let (status, echo) = raw(&app, method, "/reports/1", admin, t).await;
        assert_eq!((status, echo["method"].as_str()), (200, Some(method)), "{method}: {echo}");
    }
    assert_eq!(error(&raw(&app, "post", "/reports/shared/a", viewer, t).await), (403, Some("insufficient_role")));
    // A rule for GET would cover HEAD too; here HEAD is the route's own policy.
    assert_eq!(raw(&app, "HEAD", "/reports/1", viewer, t).await.0, 200);

    // Encoded slashes (a route that keeps them): a path passes only when reading
    // %2F as / selects the same rule, so /files/private%2Fx is no way around
    // the private rule.
    assert_eq!(raw(&app, "GET", "/files/a%2Fb", None, t).await.0, 200);
    assert_eq!(error(&raw(&app, "GET", "/files/private/x", None, t).await), (401, Some("missing_token")));
    assert_eq!(error(&raw(&app, "GET", "/files/private%2Fx", None, t).await), (400, Some("ambiguous_path")));
    assert_eq!(error(&raw(&app, "GET", "/files/private%2Fx", viewer, t).await), (400, Some("ambiguous_path")));
    assert_eq!(raw(&app, "GET", "/files/private/a%2Fb", viewer, t).await.0, 200);
}

#[tokio::test]
async fn a_reload_that_adds_a_rule_takes_effect_for_a_remembered_decision() {
    let app = spawn_gateway(&without_rules(RULE_ROUTES), &[], None).await;
    let Team { tenant, viewer, .. } = team(&app).await;
    let (t, viewer) = (tenant.as_str(), Some(viewer.token.as_str()));
    let hits = r#"tenantgate_decision_memo_total{result="hit""#;
    // Without rules a viewer may DELETE; the second decision is remembered.
    assert_eq!(send(&app, "DELETE", "/reports/1", viewer, t).await.0, 200);
    assert_eq!(send(&app, "DELETE", "/reports/1", viewer, t).await.0, 200);
    let remembered = app.metric_sum(hits).await;
    assert!(remembered >= 1.0, "the decision was not taken from the memo");

    let file = app.routes_dir.path().join("routes.toml");
    let upstream = app.upstream.addr.clone();
    std::fs::write(&file, RULE_ROUTES.replace("{upstream}", &upstream)).unwrap();
    let reloaded = app.eventually(Duration::from_secs(10), || async {
        app.metric(r#"tenantgate_route_reloads_total{result="ok"}"#).await >= 1.0
    });
    assert!(reloaded.await, "the edit was not loaded");
    // The same token, the same request: decided again, under the new rule.
    assert_eq!(error(&send(&app, "DELETE", "/reports/1", viewer, t).await), (403, Some("insufficient_role")));
    assert_eq!(send(&app, "GET", "/reports/1", viewer, t).await.0, 200);

    // An edit with an unreachable rule is refused like any invalid one.
    let shadowed = RULE_ROUTES.replace("{upstream}", &upstream).replacen(
        "[[route.rule]]\npath_prefix = \"/reports/public\"",
        "[[route.rule]]\nmethods = [\"DELETE\"]\npath_prefix = \"/reports/public\"",
        1,
    );
    std::fs::write(&file, shadowed).unwrap();
    let refused = app.eventually(Duration::from_secs(10), || async {
        app.metric(r#"tenantgate_route_reloads_total{result="error"}"#).await >= 1.0
    });
    assert!(refused.await, "the unreachable rule was not refused");
    assert_eq!(error(&send(&app, "DELETE", "/reports/1", viewer, t).await), (403, Some("insufficient_role")));
    assert_eq!(send(&app, "GET", "/reports/public/a", None, t).await.0, 200, "the previous table stays");
}

/// Runs a gateway subcommand with the app's settings: (exit code, stdout, stderr).
fn run(env: &[(String, String)], args: &[&str]) -> (i32, String, String) {
    let out = gateway_command(env).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[tokio::test]
async fn check_route_names_the_rule_and_check_config_refuses_an_unreachable_one() {
    let app = spawn_gateway(RULE_ROUTES, &[], None).await;
    let Team { tenant, viewer, .. } = team(&app).await;
    let header = format!("X-Tenant-Id: {tenant}");
    let check = |method: &'static str, path: &str| {
        let url = app.url(path);
        let args = ["check-route", "-X", method, "--user", &viewer.email, "-H", &header, &url];
        run(&app.env, &args)
    };
    let (code, out, err) = check("DELETE", "/reports/1");
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("route      reports ("), "{out}");
    assert!(out.contains("rule       line 11 (DELETE) -> min_role admin\n"), "{out}");
    assert!(out.contains("requires   role admin"), "{out}");
    assert!(out.contains("REFUSED at decision: 403 insufficient_role"), "{out}");
    let (code, out, _) = check("delete", "/reports/public/../1");
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("rule       line 11 (DELETE)"), "{out}");
    let (code, out, _) = check("GET", "/reports/public/a");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("rule       line 20 (any method under /reports/public) -> auth optional\n"), "{out}");
    assert!(out.contains("auth       optional") && out.contains("requires   role none"), "{out}");
    let (code, out, _) = check("GET", "/reports/x");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("rule       none of 3 applies: the route's own policy\n"), "{out}");
    assert!(out.contains("requires   role viewer"), "{out}");

    // check-config: the unreachable rule's file and line, and the earlier rule's.
    let routes = tempfile::tempdir().unwrap();
    let text = "[[route]]\nname = \"r\"\npath_prefix = \"/r\"\nupstreams = [\"127.0.0.1:1\"]\ntenant = \"required\"\n\
                tenant_from = [\"header\"]\n\n[[route.rule]]\nmethods = [\"DELETE\", \"PUT\"]\nmin_role = \"admin\"\n\n\
                [[route.rule]]\nmethods = [\"DELETE\"]\npath_prefix = \"/r/x\"\nmin_role = \"owner\"\n";
    std::fs::write(routes.path().join("rules.toml"), text).unwrap();
    let mut env = app.env.clone();
    env.retain(|(k, _)| k != "GATEWAY_ROUTES");
    env.push(("GATEWAY_ROUTES".into(), routes.path().display().to_string()));
    let (code, out, err) = run(&env, &["check-config"]);
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("rules.toml:12:1: this rule is unreachable: the rule at line 8 matches every request it would"),
        "{err}"
    );
    // Reordered, both apply somewhere: accepted.
    let reordered = text.replace("[\"DELETE\", \"PUT\"]", "[\"PUT\"]");
    std::fs::write(routes.path().join("rules.toml"), reordered).unwrap();
    let (code, out, err) = run(&env, &["check-config"]);
    assert_eq!(code, 0, "{out}{err}");
}
