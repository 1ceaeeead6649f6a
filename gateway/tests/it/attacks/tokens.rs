//! Token smuggling: one request, one token, and the gateway's credentials stay at
//! the edge.

use super::paths::setup;
use super::raw_request;

const ROUTES: &str = r#"
[[route]]
name = "members"
path_prefix = "/"
upstreams = ["{decoding}"]
tenant = "required"
tenant_from = ["header"]
min_role = "viewer"

[[route]]
name = "forwarding"
path_prefix = "/forwarding"
upstreams = ["{decoding}"]
tenant = "required"
tenant_from = ["header"]
min_role = "viewer"
forward_credentials = true

[[route]]
name = "public"
path_prefix = "/public"
upstreams = ["{decoding}"]
auth = "none"

[[route]]
name = "verified"
path_prefix = "/verified"
upstreams = ["{decoding}"]
require_verified_email = true
"#;

#[tokio::test]
async fn two_tokens_in_one_request_are_refused() {
    let s = setup(ROUTES, &[]).await;
    let (viewer, owner) = (format!("Bearer {}", s.viewer.token), format!("Bearer {}", s.owner.token));
    let tenant = s.owner.tenant_id.as_str();
    let viewer_cookie = format!("tg_access={}", s.viewer.token);
    let owner_cookie = format!("tg_access={}", s.owner.token);
    let both_cookies = format!("tg_access={}; tg_access={}", s.viewer.token, s.owner.token);
    for headers in [
        vec![("Authorization", viewer.as_str()), ("Authorization", owner.as_str())],
        vec![("Authorization", viewer.as_str()), ("Authorization", viewer.as_str())],
        vec![("Authorization", viewer.as_str()), ("Cookie", owner_cookie.as_str())],
        vec![("Cookie", both_cookies.as_str())],
        vec![("Cookie", viewer_cookie.as_str()), ("Cookie", owner_cookie.as_str())],
    ] {
        let mut all = headers.clone();
        all.push(("X-Tenant-Id", tenant));
        let answer = raw_request(&s.app.base, "GET", "/page", &all).await;
        assert_eq!((answer.status, answer.error()), (400, Some("ambiguous_credentials")), "{headers:?}: {answer:?}");
    }
}

#[tokio::test]
async fn the_gateways_credentials_do_not_reach_the_app_unless_the_route_asks() {
    let s = setup(ROUTES, &[]).await;
    let bearer = format!("Bearer {}", s.viewer.token);
    let tenant = s.owner.tenant_id.as_str();
    let cookies = format!("theme=dark; tg_access={}; tg_refresh=r3fr3sh; tg_tenant=acme; tg_csrf=x", s.viewer.token);
    for (path, headers) in [
        (
            "/page",
            vec![
                ("Authorization", bearer.as_str()),
                ("X-Tenant-Id", tenant),
                ("Cookie", "theme=dark; tg_refresh=r3fr3sh"),
            ],
        ),
        ("/page", vec![("Cookie", cookies.as_str()), ("X-Tenant-Id", tenant)]),
        ("/public/x", vec![("Authorization", bearer.as_str()), ("Cookie", cookies.as_str())]),
    ] {
        let answer = raw_request(&s.app.base, "GET", path, &headers).await;
        assert_eq!(answer.status, 200, "{path} {headers:?}: {answer:?}");
        let h = &answer.body["headers"];
        assert!(h.get("authorization").is_none(), "{path}: the gateway's token reached the app: {h}");
        assert_eq!(h["cookie"], "theme=dark", "{path}: {h}");
    }
    // The app's own Authorization scheme is the app's.
    let answer = raw_request(&s.app.base, "GET", "/public/x", &[("Authorization", "Basic dXNlcjpwYXNz")]).await;
    assert_eq!(answer.body["headers"]["authorization"], "Basic dXNlcjpwYXNz");
    // forward_credentials = true: the access token and cookie go on; the refresh
    // cookie never does.
    let answer = raw_request(
        &s.app.base,
        "GET",
        "/forwarding/x",
        &[("Authorization", bearer.as_str()), ("X-Tenant-Id", tenant), ("Cookie", cookies.as_str())],
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let h = &answer.body["headers"];
    assert_eq!(h["authorization"], bearer.as_str());
    let forwarded = h["cookie"].as_str().unwrap();
    assert!(forwarded.contains("tg_access=") && !forwarded.contains("tg_refresh"), "{forwarded}");
}

#[tokio::test]
async fn a_cookie_authenticated_write_needs_a_same_site_origin_even_with_a_bearer_header() {
    let s = setup(ROUTES, &[]).await;
    let bearer = format!("Bearer {}", s.viewer.token);
    let cookie = format!("tg_access={}", s.viewer.token);
    let tenant = s.owner.tenant_id.as_str();
    let base = [("Authorization", bearer.as_str()), ("Cookie", cookie.as_str()), ("X-Tenant-Id", tenant)];
    let answer = raw_request(&s.app.base, "POST", "/page", &[&base[..], &[("Content-Length", "0")]].concat()).await;
    assert_eq!((answer.status, answer.error()), (403, Some("csrf_rejected")), "{answer:?}");
    let origin = [("Content-Length", "0"), ("Origin", "https://evil.test")];
    let answer = raw_request(&s.app.base, "POST", "/page", &[&base[..], &origin[..]].concat()).await;
    assert_eq!((answer.status, answer.error()), (403, Some("csrf_rejected")), "{answer:?}");
    // A bearer request without the cookie is not a browser's: no CSRF check.
    let answer = raw_request(
        &s.app.base,
        "POST",
        "/page",
        &[("Authorization", bearer.as_str()), ("X-Tenant-Id", tenant), ("Content-Length", "0")],
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
}

#[tokio::test]
async fn unverified_addresses_are_told_to_apps_and_refused_where_routes_require_it() {
    let s = setup(ROUTES, &[]).await;
    let bearer = format!("Bearer {}", s.viewer.token);
    let answer = raw_request(&s.app.base, "GET", "/verified/x", &[("Authorization", bearer.as_str())]).await;
    assert_eq!((answer.status, answer.error()), (403, Some("email_not_verified")), "{answer:?}");
    sqlx::query("UPDATE users SET email_verified_at = now() WHERE id = $1::uuid")
        .bind(&s.viewer.user_id)
        .execute(&s.app.db.pool().await)
        .await
        .unwrap();
    let invalidator = crate::proxy::invalidator_for(&s.app).await;
    invalidator.invalidate(vec![shared::cache::Key::User { user: s.viewer.user_id.parse().unwrap() }]).await.unwrap();
    // The invalidation reaches the gateway by pub/sub, a moment after it is sent.
    let auth = [("Authorization", bearer.as_str())];
    let request = || raw_request(&s.app.base, "GET", "/verified/x", &auth);
    let verified = s.app.eventually(std::time::Duration::from_secs(5), || async { request().await.status == 200 });
    assert!(verified.await, "still refused after the invalidation");
    let answer = request().await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["headers"]["x-user-email-verified"], "true");
}

#[tokio::test]
async fn an_app_cannot_set_the_gateways_cookies() {
    let s = setup(ROUTES, &[]).await;
    let answer = raw_request(&s.app.base, "GET", "/public/set-cookie", &[]).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let set: Vec<&str> = answer.headers.iter().filter(|(k, _)| k == "set-cookie").map(|(_, v)| v.as_str()).collect();
    assert_eq!(set, ["app=1; Path=/"], "{set:?}");
}
