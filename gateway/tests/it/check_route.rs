//! `gateway check-route`: the dry run prints what a real request would get, and
//! exits 0 when it would be allowed, 2 when refused, 1 when it cannot check.

use std::process::Stdio;

use crate::helpers::*;
use crate::proxy::{get, member};

/// Runs `gateway check-route ARGS` with the app's settings: (exit code, stdout, stderr).
fn check_route(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    let out = gateway_command(&app.env)
        .arg("check-route")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[tokio::test]
async fn a_member_is_allowed_with_the_headers_the_proxy_sends() {
    let app = spawn_app().await;
    let m = member(&app, "Acme").await;
    let url = app.url("/app/reports?x=1");
    let (code, out, err) =
        check_route(&app, &["--user", &m.email, "-H", &format!("X-Tenant-Id: {}", m.tenant_id), &url]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("route      app ("), "{out}");
    assert!(out.contains("requires   role viewer"), "{out}");
    assert!(out.contains("decision   ALLOWED"), "{out}");
    assert!(out.contains(&format!("  tenant {} ({}), role owner", m.slug, m.tenant_id)), "{out}");
    assert!(out.contains(&format!("  x-user-id: {}", m.user_id)), "{out}");
    assert!(out.contains(&format!("  x-tenant-id: {}", m.tenant_id)), "{out}");
    assert!(out.contains("  x-tenant-role: owner"), "{out}");
    assert!(!out.contains("eyJ"), "no token is printed: {out}");

    // The same request through the proxy gets the same headers.
    let (status, echo) = get(&app, "/app/reports?x=1", Some(&m.token), &[("x-tenant-id", &m.tenant_id)]).await;
    assert_eq!(status, 200);
    assert_eq!(echo["headers"]["x-user-id"], m.user_id.as_str());
    assert_eq!(echo["headers"]["x-tenant-role"], "owner");

    // The tenant by slug path, the other source the route reads.
    let (code, out, _) = check_route(&app, &["-u", &m.email, &app.url(&format!("/t/{}/app/x", m.slug))]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("  path slug {}", m.slug)), "{out}");
}

#[tokio::test]
async fn refusals_say_where_and_why_and_exit_2() {
    let app = spawn_app().await;
    let owner = member(&app, "Acme").await;
    let stranger = member(&app, "Other").await;
    let url = app.url("/app/x");
    let tenant = format!("X-Tenant-Id: {}", owner.tenant_id);

    let (code, out, _) = check_route(&app, &["--user", &stranger.email, "-H", &tenant, &url]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("decision   REFUSED at decision: 403 not_a_member"), "{out}");

    let (code, out, _) = check_route(&app, &["-H", &tenant, &url]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("REFUSED at decision: 401"), "{out}");

    let (code, out, _) = check_route(&app, &[&app.url("/nothing/here")]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("REFUSED at no route takes this request: 404 route_not_found"), "{out}");

    // Paths are read as the proxy reads them: dot segments resolved, two
    // possible readings refused.
    let (code, out, _) = check_route(&app, &["-u", &owner.email, "-H", &tenant, &app.url("/zzz/%2e%2e/app/x")]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("route      app (") && out.contains(" /app/x"), "{out}");
    let (code, out, _) = check_route(&app, &[&app.url("/app/..%2Fadmin")]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("REFUSED at no route takes this request: 400 ambiguous_path"), "{out}");
}

#[tokio::test]
async fn what_cannot_be_checked_is_an_error_naming_the_input() {
    let app = spawn_app().await;
    let (code, _, err) = check_route(&app, &["--user", "nobody@example.test", &app.url("/app/x")]);
    assert_eq!(code, 1);
    assert!(err.contains("no user nobody@example.test"), "{err}");
    let (code, _, err) = check_route(&app, &["/app/x"]);
    assert_eq!(code, 1);
    assert!(err.contains("absolute http:// or https:// URL"), "{err}");
    let (code, _, err) = check_route(&app, &["-H", "no colon", &app.url("/app/x")]);
    assert_eq!(code, 1);
    assert!(err.contains("\"Name: value\""), "{err}");
    let (code, _, err) = check_route(&app, &["-X", "GE T", &app.url("/app/x")]);
    assert_eq!(code, 1);
    assert!(err.contains("not an HTTP method"), "{err}");
}
