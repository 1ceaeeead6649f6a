//! Tenant management: tenants, members, roles and the audit trail, through the
//! real gateway, with the proxy enforcing every change at once.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use shared::domain::Role;
use shared::queue::{AuthEvent, AuthEventKind, Job};

use crate::helpers::*;
use crate::proxy::{get, member, Member};

/// Sends `method path` with the bearer token and an optional JSON body.
pub async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> reqwest::Response {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.expect("request")
}

/// Asserts the status and returns the JSON body.
pub async fn expect(res: reqwest::Response, status: u16) -> Value {
    let got = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body}");
    body
}

/// Adds `user` to `owner`'s tenant with `role`, straight in the database (setup
/// only; the invitation flow has its own tests).
pub async fn add(app: &TestApp, tenant_of: &Member, user: &Member, role: Role) {
    let mut conn = app.db.pool().await.acquire().await.unwrap();
    shared::db::memberships::insert(
        &mut conn,
        user.user_id.parse().unwrap(),
        tenant_of.tenant_id.parse().unwrap(),
        role,
    )
    .await
    .unwrap();
}

fn members_path(t: &Member) -> String {
    format!("/auth/tenants/{}/members", t.tenant_id)
}

/// Takes auth events from the test's notification queue until one of `kind` for
/// `user` arrives.
pub async fn next_event(app: &TestApp, kind: AuthEventKind, user: &str) -> AuthEvent {
    let queues = app.queues.as_ref().expect("queues");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "no {kind:?} event for {user}");
        if let Job::AuthEvent(e) = queues.next("notification", "auth-event").await.job {
            if e.event == kind && e.user_id.to_string() == user {
                return e;
            }
        }
    }
}

#[tokio::test]
async fn a_tenant_is_created_listed_read_and_updated_by_its_admins() {
    let app = spawn_gateway(MEMBER_ROUTES, &[("GATEWAY_BASE_DOMAIN", "tenants.test")], None).await;
    let owner = member(&app, "First").await;
    let body = json!({"name": "Acme Corp", "slug": "acme-corp", "domain": "App.Acme.IO"});
    let created = expect(call(&app, Method::POST, "/auth/tenants", &owner.token, Some(body)).await, 201).await;
    let t = &created["tenant"];
    assert_eq!(
        (t["slug"].as_str(), t["domain"].as_str(), t["role"].as_str()),
        (Some("acme-corp"), None, Some("owner"))
    );
    // A domain routes only once proven: it starts as a claim with its challenge.
    assert_eq!(t["pendingDomain"]["domain"], "app.acme.io");
    assert_eq!(t["pendingDomain"]["txtName"], "_tenantgate.app.acme.io");
    assert_eq!(t["pendingDomain"]["txtValue"].as_str().map(str::len), Some(64));
    assert_eq!(t["isActive"], true);
    let id = t["id"].as_str().unwrap().to_owned();

    let list = expect(call(&app, Method::GET, "/auth/tenants", &owner.token, None).await, 200).await;
    let slugs: Vec<&str> = list["tenants"].as_array().unwrap().iter().filter_map(|t| t["slug"].as_str()).collect();
    assert_eq!(slugs, [owner.slug.as_str(), "acme-corp"]);

    // A derived slug when none is given.
    let derived =
        expect(call(&app, Method::POST, "/auth/tenants", &owner.token, Some(json!({"name": "Acme Corp"}))).await, 201)
            .await;
    assert!(derived["tenant"]["slug"].as_str().unwrap().starts_with("acme-corp-"), "{derived}");

    // Any member reads it; a stranger learns nothing, not even that it exists.
    let viewer = member(&app, "Viewer's").await;
    let stranger = member(&app, "Stranger's").await;
    let mut conn = app.db.pool().await.acquire().await.unwrap();
    shared::db::memberships::insert(&mut conn, viewer.user_id.parse().unwrap(), id.parse().unwrap(), Role::Viewer)
        .await
        .unwrap();
    let path = format!("/auth/tenants/{id}");
    let read = expect(call(&app, Method::GET, &path, &viewer.token, None).await, 200).await;
    assert_eq!(read["tenant"]["role"], "viewer");
    assert_error(call(&app, Method::GET, &path, &stranger.token, None).await, 404, "tenant_not_found").await;
    let unknown = format!("/auth/tenants/{}", uuid::Uuid::new_v4());
    assert_error(call(&app, Method::GET, &unknown, &owner.token, None).await, 404, "tenant_not_found").await;
    assert_error(call(&app, Method::GET, "/auth/tenants/not-a-uuid", &owner.token, None).await, 400, "invalid_request")
        .await;
    assert_error(app.client.get(app.url("/auth/tenants")).send().await.unwrap(), 401, "missing_token").await;

    // Viewers do not edit; admins do; `null` removes the domain and its claim.
    let patch = json!({"name": "Acme Inc", "settings": {"theme": "dark"}});
    assert_error(call(&app, Method::PATCH, &path, &viewer.token, Some(patch.clone())).await, 403, "insufficient_role")
        .await;
    let updated = expect(call(&app, Method::PATCH, &path, &owner.token, Some(patch)).await, 200).await;
    assert_eq!(
        (updated["tenant"]["name"].as_str(), updated["tenant"]["pendingDomain"]["domain"].as_str()),
        (Some("Acme Inc"), Some("app.acme.io"))
    );
    assert_eq!(updated["tenant"]["settings"]["theme"], "dark");
    let cleared =
        expect(call(&app, Method::PATCH, &path, &owner.token, Some(json!({"domain": null}))).await, 200).await;
    assert_eq!(cleared["tenant"]["domain"], Value::Null);
    assert!(cleared["tenant"].get("pendingDomain").is_none(), "{cleared}");
    for (bad, why) in [
        (json!({}), "nothing"),
        (json!({"settings": [1, 2]}), "settings"),
        (json!({"slug": "new-slug"}), "unknown field"),
        (json!({"name": ""}), "name"),
    ] {
        let body =
            assert_error(call(&app, Method::PATCH, &path, &owner.token, Some(bad)).await, 400, "invalid_request").await;
        assert!(body["message"].as_str().unwrap().contains(why), "{body}");
    }

    // Audit: created, then two updates with before and after.
    let audit = expect(call(&app, Method::GET, &format!("{path}/audit"), &owner.token, None).await, 200).await;
    let actions: Vec<&str> = audit["entries"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, ["tenant.updated", "tenant.updated", "tenant.created"]);
    let first_update = &audit["entries"][1];
    assert_eq!(first_update["metadata"]["before"]["name"], "Acme Corp");
    assert_eq!(first_update["metadata"]["after"]["name"], "Acme Inc");
    assert_eq!(first_update["actorId"], owner.user_id.as_str());
    assert!(first_update["requestId"].as_str().is_some_and(|r| !r.is_empty()));
    next_event(&app, AuthEventKind::TenantCreated, &owner.user_id).await;
}

#[tokio::test]
async fn slugs_and_domains_are_validated_and_unique() {
    let env = [
        ("GATEWAY_BASE_DOMAIN", "tenants.test"),
        ("GATEWAY_TRUSTED_DOMAINS", "partner.test"),
        ("APP_URL", "https://auth.gateway.test"),
    ];
    let app = spawn_gateway(MEMBER_ROUTES, &env, None).await;
    let a = member(&app, "A").await;
    let create = |body: Value| call(&app, Method::POST, "/auth/tenants", &a.token, Some(body));
    expect(create(json!({"name": "Taken", "slug": "taken", "domain": "taken.io"})).await, 201).await;
    for (slug, why) in
        [("ab", "3 to 63"), ("Acme", "a-z"), ("-acme", "start"), ("admin", "reserved"), ("auth", "reserved")]
    {
        let body = assert_error(create(json!({"name": "X", "slug": slug})).await, 400, "invalid_request").await;
        assert!(body["message"].as_str().unwrap().contains(why), "{slug}: {body}");
    }
    // Not hostnames, or the gateway's own names (base domain, trusted domains, the
    // APP_URL host) and names under them.
    for domain in [
        "localhost",
        "10.0.0.1",
        "acme..io",
        "ac_me.io",
        "tenants.test",
        "evil.tenants.test",
        "partner.test",
        "a.b.partner.test",
        "auth.gateway.test",
        "x.auth.gateway.test",
    ] {
        assert_error(create(json!({"name": "X", "domain": domain})).await, 400, "invalid_request").await;
        let patch = format!("/auth/tenants/{}", a.tenant_id);
        let res = call(&app, Method::PATCH, &patch, &a.token, Some(json!({"domain": domain}))).await;
        assert_error(res, 400, "invalid_request").await;
    }
    assert_error(create(json!({"name": "X", "slug": "taken"})).await, 409, "slug_taken").await;
    // A claim reserves nothing: another tenant may claim the same name (the first
    // to prove it gets it, see domains.rs).
    let second = expect(create(json!({"name": "X", "domain": "TAKEN.io"})).await, 201).await;
    assert_eq!(second["tenant"]["pendingDomain"]["domain"], "taken.io");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants").fetch_one(&app.db.pool().await).await.unwrap();
    assert_eq!(count, 3, "refused requests created nothing");
}

#[tokio::test]
async fn only_owners_deactivate_and_the_proxy_refuses_a_deactivated_tenant_at_once() {
    let a = spawn_gateway(MEMBER_ROUTES, &[], None).await;
    let b = spawn_gateway(MEMBER_ROUTES, &[], Some(&a)).await;
    let owner = member(&a, "Acme").await;
    let admin = member(&a, "Other").await;
    add(&a, &owner, &admin, Role::Admin).await;
    let t = [("x-tenant-id", owner.tenant_id.as_str())];
    for gw in [&a, &b] {
        assert_eq!(get(gw, "/app", Some(&admin.token), &t).await.0, 200, "warm-up");
    }
    let path = format!("/auth/tenants/{}", owner.tenant_id);
    assert_error(
        call(&a, Method::POST, &format!("{path}/deactivate"), &admin.token, None).await,
        403,
        "insufficient_role",
    )
    .await;
    let off = expect(call(&a, Method::POST, &format!("{path}/deactivate"), &owner.token, None).await, 200).await;
    assert_eq!(off["tenant"]["isActive"], false);

    // Both instances refuse at once: the tenant TTL is an hour, this is pub/sub.
    for gw in [&a, &b] {
        let refused = gw
            .eventually(Duration::from_secs(5), || async { get(gw, "/app", Some(&admin.token), &t).await.0 == 403 })
            .await;
        assert!(refused, "a deactivated tenant still served");
        let (status, body) = get(gw, "/app", Some(&owner.token), &t).await;
        assert_eq!((status, body["error"].as_str()), (403, Some("tenant_inactive")));
    }
    expect(call(&a, Method::POST, &format!("{path}/activate"), &owner.token, None).await, 200).await;
    assert!(
        b.eventually(Duration::from_secs(5), || async { get(&b, "/app", Some(&admin.token), &t).await.0 == 200 }).await
    );
}

#[tokio::test]
async fn members_are_listed_in_pages_to_members_but_not_viewers() {
    let app = spawn_gateway(MEMBER_ROUTES, &[], None).await;
    let owner = member(&app, "Acme").await;
    let mut others = Vec::new();
    for role in [Role::Viewer, Role::Member, Role::Admin, Role::Member] {
        let m = member(&app, "Own").await;
        add(&app, &owner, &m, role).await;
        others.push(m);
    }
    let path = members_path(&owner);
    let first = expect(call(&app, Method::GET, &format!("{path}?limit=2"), &others[1].token, None).await, 200).await;
    assert_eq!(first["total"], 5);
    let roles: Vec<&str> = first["members"].as_array().unwrap().iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles, ["owner", "admin"], "strongest first");
    assert_eq!(first["members"][0]["email"], owner.email.as_str());
    let rest =
        expect(call(&app, Method::GET, &format!("{path}?limit=2&offset=2"), &owner.token, None).await, 200).await;
    let roles: Vec<&str> = rest["members"].as_array().unwrap().iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles, ["member", "member"]);
    let last =
        expect(call(&app, Method::GET, &format!("{path}?limit=2&offset=4"), &owner.token, None).await, 200).await;
    assert_eq!(last["members"][0]["role"], "viewer");

    assert_error(call(&app, Method::GET, &path, &others[0].token, None).await, 403, "insufficient_role").await;
    for bad in ["?limit=0", "?limit=101", "?offset=-1", "?limit=x", "?page=2"] {
        assert_error(
            call(&app, Method::GET, &format!("{path}{bad}"), &owner.token, None).await,
            400,
            "invalid_request",
        )
        .await;
    }
}

#[tokio::test]
async fn role_rules_owners_admins_and_self() {
    let app = spawn_gateway(MEMBER_ROUTES, &[], None).await;
    let owner = member(&app, "Acme").await;
    let admin = member(&app, "A").await;
    let admin2 = member(&app, "B").await;
    let user = member(&app, "C").await;
    add(&app, &owner, &admin, Role::Admin).await;
    add(&app, &owner, &admin2, Role::Admin).await;
    add(&app, &owner, &user, Role::Member).await;
    let path = |m: &Member| format!("{}/{}", members_path(&owner), m.user_id);
    let set = |who: &Member, target: &Member, role: &'static str| {
        let (token, p) = (who.token.clone(), path(target));
        let app = &app;
        async move { call(app, Method::PATCH, &p, &token, Some(json!({ "role": role }))).await }
    };

    assert_error(set(&admin, &user, "owner").await, 403, "owner_required").await;
    assert_error(set(&admin, &owner, "member").await, 403, "owner_required").await;
    assert_error(set(&admin, &admin, "owner").await, 403, "cannot_promote_self").await;
    assert_error(set(&user, &user, "admin").await, 403, "cannot_promote_self").await;
    assert_error(set(&user, &admin, "viewer").await, 403, "insufficient_role").await;
    assert_error(set(&owner, &owner, "admin").await, 403, "last_owner").await;
    assert_error(set(&owner, &user, "superuser").await, 400, "invalid_request").await;
    let stranger = member(&app, "D").await;
    assert_error(set(&owner, &stranger, "viewer").await, 404, "member_not_found").await;

    // Admins manage admins; anyone may lower their own role.
    let demoted = expect(set(&admin, &admin2, "member").await, 200).await;
    assert_eq!(demoted["member"]["role"], "member");
    expect(set(&user, &user, "viewer").await, 200).await;
    // Only an owner makes an owner; then the first owner may step down.
    expect(set(&owner, &admin, "owner").await, 200).await;
    expect(set(&owner, &owner, "admin").await, 200).await;
    let event = next_event(&app, AuthEventKind::RoleChanged, &admin.user_id).await;
    assert_eq!((event.data["role"].as_str(), event.data["previousRole"].as_str()), (Some("owner"), Some("admin")));

    // Removing: the last owner cannot be removed or leave; others can.
    let remove = |who: &Member, target: &Member| {
        let (token, p) = (who.token.clone(), path(target));
        let app = &app;
        async move { call(app, Method::DELETE, &p, &token, None).await }
    };
    assert_error(remove(&owner, &admin).await, 403, "owner_required").await;
    assert_error(remove(&admin, &admin).await, 403, "last_owner").await;
    let leave = format!("/auth/tenants/{}/leave", owner.tenant_id);
    assert_error(call(&app, Method::POST, &leave, &admin.token, None).await, 403, "last_owner").await;
    assert_eq!(remove(&owner, &admin2).await.status(), 204);
    assert_eq!(call(&app, Method::POST, &leave, &user.token, None).await.status(), 204);
    assert_error(remove(&owner, &user).await, 404, "member_not_found").await;
    next_event(&app, AuthEventKind::MemberRemoved, &admin2.user_id).await;

    let audit = expect(
        call(&app, Method::GET, &format!("/auth/tenants/{}/audit", owner.tenant_id), &admin.token, None).await,
        200,
    )
    .await;
    let actions: Vec<&str> = audit["entries"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(
        actions,
        [
            "member.left",
            "member.removed",
            "member.role_changed",
            "member.role_changed",
            "member.role_changed",
            "member.role_changed",
            "tenant.created"
        ]
    );
    let owners: i64 =
        sqlx::query_scalar("SELECT count(*) FROM user_tenant_roles WHERE tenant_id = $1::uuid AND role = 'owner'")
            .bind(&owner.tenant_id)
            .fetch_one(&app.db.pool().await)
            .await
            .unwrap();
    assert_eq!(owners, 1);
}

#[tokio::test]
async fn two_owners_stepping_down_or_demoting_each_other_at_once_leave_one_owner() {
    // Twelve sign-ups from one address: more than the default allows.
    let app = spawn_gateway(MEMBER_ROUTES, &[("RATE_LIMIT_REGISTER", "100/1h")], None).await;
    let pool = app.db.pool().await;
    for round in 0..6 {
        let a = member(&app, "Acme").await;
        let b = member(&app, "B").await;
        add(&app, &a, &b, Role::Owner).await;
        let (path_a, path_b) =
            (format!("{}/{}", members_path(&a), a.user_id), format!("{}/{}", members_path(&a), b.user_id));
        // Even rounds: each steps down. Odd rounds: each demotes the other. Either
        // way, run one after the other both would pass the rule on their own.
        let (target_of_a, target_of_b) = if round % 2 == 0 { (&path_a, &path_b) } else { (&path_b, &path_a) };
        let (ra, rb) = tokio::join!(
            call(&app, Method::PATCH, target_of_a, &a.token, Some(json!({"role": "admin"}))),
            call(&app, Method::PATCH, target_of_b, &b.token, Some(json!({"role": "admin"}))),
        );
        let statuses = [ra.status().as_u16(), rb.status().as_u16()];
        let owners: i64 =
            sqlx::query_scalar("SELECT count(*) FROM user_tenant_roles WHERE tenant_id = $1::uuid AND role = 'owner'")
                .bind(&a.tenant_id)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(owners, 1, "round {round}: {statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "round {round}: {statuses:?}");
        assert!(statuses.contains(&403), "round {round}: {statuses:?}");
    }
}

#[tokio::test]
async fn a_demoted_or_removed_member_is_refused_by_a_second_instance_without_a_ttl() {
    let a = spawn_gateway(MEMBER_ROUTES, &[], None).await;
    let b = spawn_gateway(MEMBER_ROUTES, &[], Some(&a)).await;
    let owner = member(&a, "Acme").await;
    let user = member(&a, "Own").await;
    add(&a, &owner, &user, Role::Member).await;
    let t = [("x-tenant-id", owner.tenant_id.as_str())];
    assert!(
        b.eventually(Duration::from_secs(10), || async {
            b.metric("tenantgate_cache_invalidation_subscribed").await == 1.0
        })
        .await
    );
    assert_eq!(get(&b, "/app", Some(&user.token), &t).await.0, 200, "warm-up on B");

    let path = format!("{}/{}", members_path(&owner), user.user_id);
    expect(call(&a, Method::PATCH, &path, &owner.token, Some(json!({"role": "viewer"}))).await, 200).await;
    let started = Instant::now();
    let (status, body) = get(&b, "/app", Some(&user.token), &t).await;
    let refused = status == 403
        || b.eventually(Duration::from_secs(2), || async { get(&b, "/app", Some(&user.token), &t).await.0 == 403 })
            .await;
    assert!(refused, "B still admits the demoted user: {status} {body}");
    assert!(started.elapsed() < Duration::from_secs(2), "the role TTL is 10 minutes; this must be pub/sub");
    assert_eq!(get(&b, "/app", Some(&user.token), &t).await.1["error"], "insufficient_role");

    expect(call(&a, Method::PATCH, &path, &owner.token, Some(json!({"role": "member"}))).await, 200).await;
    assert!(
        b.eventually(Duration::from_secs(2), || async { get(&b, "/app", Some(&user.token), &t).await.0 == 200 }).await
    );
    assert_eq!(call(&a, Method::DELETE, &path, &owner.token, None).await.status(), 204);
    assert!(
        b.eventually(Duration::from_secs(2), || async { get(&b, "/app", Some(&user.token), &t).await.0 == 403 }).await
    );
    assert_eq!(get(&b, "/app", Some(&user.token), &t).await.1["error"], "not_a_member");
}

#[tokio::test]
async fn the_audit_trail_is_for_admins_and_pages_newest_first() {
    let app = spawn_gateway(MEMBER_ROUTES, &[], None).await;
    let owner = member(&app, "Acme").await;
    let user = member(&app, "Own").await;
    add(&app, &owner, &user, Role::Member).await;
    let path = format!("/auth/tenants/{}", owner.tenant_id);
    for i in 0..5 {
        let res = app
            .client
            .patch(app.url(&path))
            .bearer_auth(&owner.token)
            .header("x-request-id", format!("req-{i}"))
            .json(&json!({"name": format!("Acme {i}")}))
            .send()
            .await
            .unwrap();
        expect(res, 200).await;
    }
    let audit = format!("{path}/audit");
    assert_error(call(&app, Method::GET, &audit, &user.token, None).await, 403, "insufficient_role").await;
    let page = expect(call(&app, Method::GET, &format!("{audit}?limit=2"), &owner.token, None).await, 200).await;
    let names: Vec<&str> =
        page["entries"].as_array().unwrap().iter().filter_map(|e| e["metadata"]["after"]["name"].as_str()).collect();
    assert_eq!(names, ["Acme 4", "Acme 3"]);
    assert_eq!(page["entries"][0]["requestId"], "req-4");
    let before = page["nextBefore"].as_i64().expect("a next page");
    let next =
        expect(call(&app, Method::GET, &format!("{audit}?limit=4&before={before}"), &owner.token, None).await, 200)
            .await;
    let actions: Vec<&str> = next["entries"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, ["tenant.updated", "tenant.updated", "tenant.updated", "tenant.created"]);
    assert!(next["nextBefore"].as_i64().is_some(), "a full page points on");
    let end = expect(
        call(&app, Method::GET, &format!("{audit}?before={}", next["nextBefore"]), &owner.token, None).await,
        200,
    )
    .await;
    assert_eq!(end["entries"], json!([]));
    assert!(end.get("nextBefore").is_none());
}
