//! The decision memo never outlives what it remembers: for every event that evicts
//! the role cache (role change, removal, tenant deactivation, logout-all) and for a
//! route reload, a second instance that served the user from its memo refuses the
//! next request within the invalidation's delivery time, well inside the memo's
//! own 10 s lifetime (each wait below is shorter than that, so an entry that
//! outlived its event fails the test).

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use shared::domain::Role;

use crate::helpers::*;
use crate::proxy::{get, member, Member};
use crate::tenants::{add, call, expect};

const SUBSCRIBED: &str = "tenantgate_cache_invalidation_subscribed";
const HITS: &str = r#"tenantgate_decision_memo_total{result="hit"}"#;
/// Shorter than the memo's lifetime (`gateway::memo::TTL`).
const WITHIN: Duration = Duration::from_secs(5);

/// Two instances on one database and Redis prefix, an owner and a member of the
/// owner's tenant, both served from each instance's memo.
struct Pair {
    a: TestApp,
    b: TestApp,
    owner: Member,
    user: Member,
}

async fn pair() -> Pair {
    let a = spawn_gateway(MEMBER_ROUTES, &[], None).await;
    let b = spawn_gateway(MEMBER_ROUTES, &[], Some(&a)).await;
    let owner = member(&a, "Acme").await;
    let joined = member(&a, "Own").await;
    add(&a, &owner, &joined, Role::Member).await;
    let user = Member { tenant_id: owner.tenant_id.clone(), slug: owner.slug.clone(), ..joined };
    for gw in [&a, &b] {
        assert!(gw.eventually(Duration::from_secs(10), || async { gw.metric(SUBSCRIBED).await == 1.0 }).await);
    }
    let pair = Pair { a, b, owner, user };
    for gw in [&pair.a, &pair.b] {
        for who in [&pair.owner, &pair.user] {
            remembered(gw, who).await;
        }
    }
    pair
}

/// Asserts `who` is admitted by `gw`, the second and third time from its memo.
async fn remembered(gw: &TestApp, who: &Member) {
    assert_eq!(app_get(gw, who).await, (200, None), "first request");
    let before = gw.metric(HITS).await;
    for _ in 0..2 {
        assert_eq!(app_get(gw, who).await, (200, None));
    }
    assert!(gw.metric(HITS).await >= before + 2.0, "warm requests were not served from the memo");
}

async fn app_get(gw: &TestApp, who: &Member) -> (u16, Option<String>) {
    let (status, body) = get(gw, "/app/x", Some(&who.token), &[("x-tenant-id", &who.tenant_id)]).await;
    (status, body["error"].as_str().map(str::to_owned))
}

/// Asserts both instances refuse `who` with `status` and `code` within [`WITHIN`].
async fn refused_everywhere(p: &Pair, who: &Member, status: u16, code: &str) {
    for gw in [&p.a, &p.b] {
        let refused =
            gw.eventually(WITHIN, || async { app_get(gw, who).await == (status, Some(code.to_owned())) }).await;
        assert!(refused, "{} still admits after the event: {:?}", gw.base, app_get(gw, who).await);
    }
}

fn member_path(p: &Pair) -> String {
    format!("/auth/tenants/{}/members/{}", p.owner.tenant_id, p.user.user_id)
}

#[tokio::test]
async fn a_role_change_ends_remembered_decisions_on_both_instances() {
    let p = pair().await;
    let path = member_path(&p);
    expect(call(&p.a, Method::PATCH, &path, &p.owner.token, Some(json!({"role": "viewer"}))).await, 200).await;
    refused_everywhere(&p, &p.user, 403, "insufficient_role").await;
    // Only that membership changed: the owner is still served, and remembered again.
    remembered(&p.b, &p.owner).await;
}

#[tokio::test]
async fn a_removal_ends_remembered_decisions_on_both_instances() {
    let p = pair().await;
    expect(call(&p.a, Method::DELETE, &member_path(&p), &p.owner.token, None).await, 204).await;
    refused_everywhere(&p, &p.user, 403, "not_a_member").await;
}

#[tokio::test]
async fn a_tenant_deactivation_ends_remembered_decisions_on_both_instances() {
    let p = pair().await;
    let path = format!("/auth/tenants/{}/deactivate", p.owner.tenant_id);
    expect(call(&p.a, Method::POST, &path, &p.owner.token, None).await, 200).await;
    refused_everywhere(&p, &p.owner, 403, "tenant_inactive").await;
    refused_everywhere(&p, &p.user, 403, "tenant_inactive").await;
}

#[tokio::test]
async fn logout_all_ends_remembered_decisions_on_both_instances() {
    let p = pair().await;
    assert_eq!(p.a.post_bearer("/auth/logout-all", &p.user.token).await.status(), 204);
    refused_everywhere(&p, &p.user, 401, "token_revoked").await;
    remembered(&p.b, &p.owner).await;
}

#[tokio::test]
async fn a_route_reload_ends_remembered_decisions() {
    let p = pair().await;
    for gw in [&p.a, &p.b] {
        let file = gw.routes_dir.path().join("routes.toml");
        let routes = std::fs::read_to_string(&file).unwrap().replace("min_role = \"member\"", "min_role = \"admin\"");
        std::fs::write(&file, routes).unwrap();
    }
    refused_everywhere(&p, &p.user, 403, "insufficient_role").await;
    remembered(&p.b, &p.owner).await;
}

#[tokio::test]
async fn a_remembered_decision_is_only_for_its_own_token_and_tenant() {
    let p = pair().await;
    // Another tenant of the same user: not the remembered one.
    let nobody = uuid::Uuid::new_v4().to_string();
    let (status, body) = get(&p.b, "/app/x", Some(&p.user.token), &[("x-tenant-id", &nobody)]).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("tenant_not_found")));
    // The remembered token with a changed signature byte is not remembered.
    let mut forged = p.user.token.clone().into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let (status, body) = get(&p.b, "/app/x", Some(&forged), &[("x-tenant-id", &p.user.tenant_id)]).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_token")));
    // And the identity it carries is the user's own.
    let (status, body) = get(&p.b, "/app/x", Some(&p.user.token), &[("x-tenant-id", &p.user.tenant_id)]).await;
    assert_eq!(status, 200);
    assert_eq!(body["headers"]["x-user-id"], p.user.user_id.as_str());
    assert_eq!(body["headers"]["x-tenant-role"], "member");
}

#[tokio::test]
async fn identity_headers_are_the_routes_own_list() {
    let routes = MEMBER_ROUTES.to_owned()
        + r#"
[[route]]
name = "lean"
path_prefix = "/lean"
upstreams = ["{upstream}"]
auth = "required"
tenant = "required"
tenant_from = ["header"]
identity_headers = ["x-user-id", "x-tenant-role"]
"#;
    let app = spawn_gateway(&routes, &[], None).await;
    let m = member(&app, "Acme").await;
    let t = [("x-tenant-id", m.tenant_id.as_str())];
    for _ in 0..2 {
        let (status, body) = get(&app, "/lean/x", Some(&m.token), &t).await;
        assert_eq!(status, 200);
        let headers = body["headers"].as_object().unwrap();
        let mut identity: Vec<&str> = headers
            .keys()
            .map(String::as_str)
            .filter(|k| k.starts_with("x-user") || k.starts_with("x-tenant"))
            .collect();
        identity.sort_unstable();
        assert_eq!(identity, ["x-tenant-role", "x-user-id"], "{body}");
        assert_eq!(headers["x-user-id"], m.user_id.as_str());
    }
    // The default route still gets all six.
    let (_, body) = get(&app, "/app/x", Some(&m.token), &t).await;
    for name in ["x-user-id", "x-user-email", "x-user-email-verified", "x-tenant-id", "x-tenant-slug", "x-tenant-role"]
    {
        assert!(body["headers"][name].is_string(), "{name} missing: {body}");
    }
}
