//! Tenant API keys end to end: the API that makes, lists and revokes them (with
//! its refusals and audit trail), the proxy accepting them for their own tenant
//! with their role, the upstream headers that mark the actor, revocation and
//! expiry on every instance, warm requests without I/O, uses recorded off the
//! request path, and per-key rate limits.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shared::domain::Role;

use crate::helpers::*;
use crate::proxy::{get, member, Member};

const KEY_ROUTES: &str = r#"
[[route]]
name = "app"
path_prefix = "/app"
upstreams = ["{upstream}"]
auth = "required"
tenant = "required"
tenant_from = ["header"]
min_role = "member"

[[route]]
name = "reports"
path_prefix = "/reports"
upstreams = ["{upstream}"]
auth = "required"
tenant = "required"
tenant_from = ["header"]
min_role = "viewer"
rate_limit = { requests = 3, window = "1m", key = "user" }

[[route]]
name = "whoami"
path_prefix = "/whoami"
upstreams = ["{upstream}"]
auth = "required"

[[route]]
name = "public"
path_prefix = "/public"
upstreams = ["{upstream}"]
auth = "none"
"#;

/// `POST /auth/tenants/{tenant}/api-keys` as `token`: status and body.
pub async fn create(app: &TestApp, token: &str, tenant: &str, body: Value) -> (u16, Value) {
    let res = app
        .client
        .post(app.url(&format!("/auth/tenants/{tenant}/api-keys")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

/// A key of `role` in `owner`'s tenant (whose address is first marked verified:
/// only verified makers make keys): (id, key).
pub async fn make_key(app: &TestApp, owner: &Member, role: &str) -> (String, String) {
    mark_verified(app, &owner.user_id).await;
    let (status, body) = create(app, &owner.token, &owner.tenant_id, json!({"name": "ci", "role": role})).await;
    assert_eq!(status, 201, "{body}");
    (body["apiKey"]["id"].as_str().unwrap().to_owned(), body["key"].as_str().unwrap().to_owned())
}

async fn list(app: &TestApp, token: &str, tenant: &str) -> (u16, Value) {
    let res = app.get_bearer(&format!("/auth/tenants/{tenant}/api-keys"), token).await;
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

async fn revoke(app: &TestApp, token: &str, tenant: &str, id: &str) -> (u16, Value) {
    let res = app
        .client
        .delete(app.url(&format!("/auth/tenants/{tenant}/api-keys/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

/// GET `path` with `headers` only (no bearer helper): status and body.
async fn send(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    get(app, path, None, headers).await
}

fn code(answer: &(u16, Value)) -> (u16, Option<&str>) {
    (answer.0, answer.1["error"].as_str())
}

async fn audit_actions(app: &TestApp, tenant: &str) -> Vec<String> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT action FROM audit_log WHERE tenant_id = $1::uuid AND action LIKE 'api_key.%' ORDER BY id",
    )
    .bind(tenant)
    .fetch_all(&app.db.pool().await)
    .await
    .unwrap();
    rows.into_iter().map(|(a,)| a).collect()
}

async fn join(app: &TestApp, who: &Member, tenant: &str, role: Role) {
    let mut conn = app.db.pool().await.acquire().await.unwrap();
    shared::db::memberships::insert(&mut conn, who.user_id.parse().unwrap(), tenant.parse().unwrap(), role)
        .await
        .unwrap();
}

#[tokio::test]
async fn owners_and_admins_manage_keys_shown_once_and_stored_only_as_a_hash() {
    let app = spawn_gateway(KEY_ROUTES, &[], None).await;
    let owner = member(&app, "Keys Inc").await;
    let (admin, plain, outsider) = (member(&app, "A").await, member(&app, "M").await, member(&app, "O").await);
    for maker in [&owner, &admin, &outsider] {
        mark_verified(&app, &maker.user_id).await;
    }
    // Only a verified maker: a key has no address of its own to verify.
    let unverified = member(&app, "U").await;
    let refused = create(&app, &unverified.token, &unverified.tenant_id, json!({"name": "a", "role": "viewer"})).await;
    assert_eq!(code(&refused), (403, Some("email_not_verified")));
    join(&app, &admin, &owner.tenant_id, Role::Admin).await;
    join(&app, &plain, &owner.tenant_id, Role::Member).await;
    let t = owner.tenant_id.as_str();

    let expires = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let (status, made) =
        create(&app, &owner.token, t, json!({"name": " CI deploys ", "role": "admin", "expiresAt": expires})).await;
    assert_eq!(status, 201, "{made}");
    let key = made["key"].as_str().unwrap();
    let public_id = made["apiKey"]["publicId"].as_str().unwrap();
    assert!(key.starts_with(&format!("tgk_{public_id}_")) && key.len() == 4 + 12 + 1 + 43, "{key}");
    assert_eq!(made["apiKey"]["name"], "CI deploys");
    assert_eq!((made["apiKey"]["role"].as_str(), made["apiKey"]["status"].as_str()), (Some("admin"), Some("active")));
    assert_eq!(made["apiKey"]["createdBy"], owner.user_id.as_str());
    assert!(made["apiKey"]["lastUsedAt"].is_null());

    // Stored: the public id and the SHA-256 of the secret, never the key.
    let secret = &key[4 + 12 + 1..];
    let (hash, name): (Vec<u8>, String) = sqlx::query_as("SELECT secret_hash, name FROM api_keys WHERE public_id = $1")
        .bind(public_id)
        .fetch_one(&app.db.pool().await)
        .await
        .unwrap();
    assert_eq!(hash, shared::api_key::hash_secret(secret).to_vec());
    assert_eq!(name, "CI deploys");
    let dump: (String,) = sqlx::query_as("SELECT string_agg(t::text, ' ') FROM api_keys t")
        .fetch_one(&app.db.pool().await)
        .await
        .unwrap();
    assert!(!dump.0.contains(secret), "the secret is stored somewhere");

    // Listed without the key; admins see it too, members and outsiders do not.
    for who in [&owner, &admin] {
        let (status, listed) = list(&app, &who.token, t).await;
        assert_eq!(status, 200);
        assert_eq!(listed["apiKeys"].as_array().unwrap().len(), 1);
        assert!(!listed.to_string().contains(secret), "a listing shows the secret");
        assert_eq!(listed["apiKeys"][0]["publicId"], public_id);
    }
    assert_eq!(code(&list(&app, &plain.token, t).await), (403, Some("insufficient_role")));
    assert_eq!(code(&list(&app, &outsider.token, t).await), (404, Some("tenant_not_found")));

    // Who may make what: admins up to admin, owners anything, members nothing.
    assert_eq!(create(&app, &admin.token, t, json!({"name": "a", "role": "admin"})).await.0, 201);
    let refused = create(&app, &admin.token, t, json!({"name": "a", "role": "owner"})).await;
    assert_eq!(code(&refused), (403, Some("api_key_role_too_high")));
    let refused = create(&app, &plain.token, t, json!({"name": "a", "role": "viewer"})).await;
    assert_eq!(code(&refused), (403, Some("insufficient_role")));
    let refused = create(&app, &outsider.token, t, json!({"name": "a", "role": "viewer"})).await;
    assert_eq!(code(&refused), (404, Some("tenant_not_found")));
    let (status, owner_key) = create(&app, &owner.token, t, json!({"name": "root", "role": "owner"})).await;
    assert_eq!(status, 201);

    // Bad input: a clear 400 and nothing made.
    let past = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    for body in [
        json!({"name": "", "role": "viewer"}),
        json!({"name": "x".repeat(101), "role": "viewer"}),
        json!({"name": "a\u{7}b", "role": "viewer"}),
        json!({"name": "a", "role": "god"}),
        json!({"name": "a", "role": "viewer", "expiresAt": past}),
        json!({"name": "a", "role": "viewer", "expiresAt": "tomorrow"}),
        json!({"name": "a", "role": "viewer", "key": "tgk_mine"}),
        json!({"role": "viewer"}),
    ] {
        let answer = create(&app, &owner.token, t, body.clone()).await;
        assert_eq!(code(&answer), (400, Some("invalid_request")), "{body}: {}", answer.1);
    }
    assert_eq!(
        list(&app, &owner.token, t).await.1["apiKeys"].as_array().unwrap().len(),
        3,
        "a refused request made a key"
    );

    // Revocation: admins revoke keys up to their role; only owners an owner key.
    let owner_key_id = owner_key["apiKey"]["id"].as_str().unwrap();
    assert_eq!(code(&revoke(&app, &admin.token, t, owner_key_id).await), (403, Some("api_key_role_too_high")));
    let id = made["apiKey"]["id"].as_str().unwrap();
    assert_eq!(code(&revoke(&app, &plain.token, t, id).await), (403, Some("insufficient_role")));
    assert_eq!(revoke(&app, &admin.token, t, id).await.0, 204);
    assert_eq!(revoke(&app, &admin.token, t, id).await.0, 204, "revoking twice changes nothing");
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_eq!(code(&revoke(&app, &owner.token, t, &unknown).await), (404, Some("api_key_not_found")));
    // Another tenant's key is not found through this one.
    let (other_id, _) = make_key(&app, &outsider, "viewer").await;
    assert_eq!(code(&revoke(&app, &owner.token, t, &other_id).await), (404, Some("api_key_not_found")));
    assert_eq!(code(&revoke(&app, &owner.token, t, "not-a-uuid").await).0, 400);
    let listed = list(&app, &owner.token, t).await.1;
    let revoked = listed["apiKeys"].as_array().unwrap().iter().find(|k| k["id"] == id).unwrap().clone();
    assert_eq!(revoked["status"], "revoked");
    assert!(revoked["revokedAt"].is_string());

    assert_eq!(
        audit_actions(&app, t).await,
        ["api_key.created", "api_key.created", "api_key.created", "api_key.revoked"]
    );
}

#[tokio::test]
async fn a_key_acts_in_its_own_tenant_with_its_role_and_the_app_sees_an_api_key_actor() {
    let app = spawn_gateway(KEY_ROUTES, &[], None).await;
    let owner = member(&app, "Acme").await;
    mark_verified(&app, &owner.user_id).await;
    let other = member(&app, "Other").await;
    let t = owner.tenant_id.as_str();
    let (id, member_key) = make_key(&app, &owner, "member").await;
    let (_, viewer_key) = make_key(&app, &owner, "viewer").await;
    let bearer = format!("Bearer {member_key}");

    // As a bearer token or in X-Api-Key, with or without naming its tenant.
    for headers in [
        vec![("authorization", bearer.as_str()), ("x-tenant-id", t)],
        vec![("x-api-key", member_key.as_str()), ("x-tenant-id", t)],
        vec![("x-api-key", member_key.as_str())],
        vec![("x-api-key", member_key.as_str()), ("x-tenant-slug", owner.slug.as_str())],
    ] {
        let (status, echo) = send(&app, "/app/x", &headers).await;
        assert_eq!(status, 200, "{headers:?}: {echo}");
        let seen = &echo["headers"];
        assert_eq!(seen["x-actor-type"], "api_key");
        assert_eq!(seen["x-api-key-id"], id.as_str());
        assert_eq!((seen["x-tenant-id"].as_str(), seen["x-tenant-role"].as_str()), (Some(t), Some("member")));
        assert_eq!(seen["x-tenant-slug"], owner.slug.as_str());
        for absent in ["x-user-id", "x-user-email", "x-user-email-verified", "authorization", "x-api-key"] {
            assert!(seen[absent].is_null(), "{absent} reached the app: {echo}");
        }
    }
    // A route without tenants still gets the key's own tenant.
    let (status, echo) = send(&app, "/whoami", &[("x-api-key", &member_key)]).await;
    assert_eq!((status, echo["headers"]["x-tenant-id"].as_str()), (200, Some(t)), "{echo}");

    // Its own tenant only; its role only.
    let foreign = send(&app, "/app/x", &[("x-api-key", &member_key), ("x-tenant-id", &other.tenant_id)]).await;
    assert_eq!(code(&foreign), (403, Some("api_key_wrong_tenant")));
    let unknown =
        send(&app, "/app/x", &[("x-api-key", &member_key), ("x-tenant-id", &uuid::Uuid::new_v4().to_string())]).await;
    assert_eq!(code(&unknown), (404, Some("tenant_not_found")));
    assert_eq!(code(&send(&app, "/app/x", &[("x-api-key", &viewer_key)]).await), (403, Some("insufficient_role")));
    assert_eq!(send(&app, "/reports/x", &[("x-api-key", &viewer_key)]).await.0, 200);

    // Wrong secret, unknown public id, malformed: the same 401.
    let wrong_secret =
        format!("{}{}", &member_key[..member_key.len() - 1], if member_key.ends_with('a') { "b" } else { "a" });
    let unknown_id = format!("tgk_ZZZZZZZZZZZZ{}", &member_key[16..]);
    for bad in [wrong_secret.as_str(), unknown_id.as_str(), "tgk_short", "tgk_AbCdEf123456_!!"] {
        let answer = send(&app, "/app/x", &[("authorization", &format!("Bearer {bad}"))]).await;
        assert_eq!(code(&answer), (401, Some("invalid_token")), "{bad}");
        assert_eq!(answer.1["message"], "the API key is not valid");
    }

    // One credential per request: a key beside a user's token, or two keys.
    let both =
        send(&app, "/app/x", &[("x-api-key", &member_key), ("authorization", &format!("Bearer {}", owner.token))])
            .await;
    assert_eq!(code(&both), (400, Some("ambiguous_credentials")));
    let two = send(&app, "/app/x", &[("x-api-key", &member_key), ("x-api-key", "app-own")]).await;
    assert_eq!(code(&two), (400, Some("ambiguous_credentials")));
    // Not in a cookie: keys are for machines.
    let cookie = format!("tg_access={member_key}");
    assert_eq!(code(&send(&app, "/app/x", &[("cookie", &cookie)]).await), (401, Some("invalid_token")));

    // Users are marked as users; a client cannot claim to be anything.
    let spoof = [("x-tenant-id", t), ("x-actor-type", "api_key"), ("X_Api_Key_Id", "forged")];
    let (status, echo) = get(&app, "/app/x", Some(&owner.token), &spoof).await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["headers"]["x-actor-type"], "user");
    assert!(echo["headers"]["x-api-key-id"].is_null() && echo["headers"]["x_api_key_id"].is_null(), "{echo}");
    // The app's own X-Api-Key (not one of ours) passes as sent; ours never does.
    let (status, echo) = get(&app, "/app/x", Some(&owner.token), &[("x-tenant-id", t), ("x-api-key", "app-own")]).await;
    assert_eq!((status, echo["headers"]["x-api-key"].as_str()), (200, Some("app-own")));
    let (status, echo) = send(&app, "/public/x", &[("x-api-key", &member_key), ("authorization", &bearer)]).await;
    assert_eq!(status, 200);
    assert!(echo["headers"]["x-api-key"].is_null() && echo["headers"]["authorization"].is_null(), "{echo}");
}

#[tokio::test]
async fn revocation_reaches_every_instance_within_a_second_and_expiry_holds_in_the_memo() {
    let a = spawn_gateway(KEY_ROUTES, &[], None).await;
    let b = spawn_gateway(KEY_ROUTES, &[], Some(&a)).await;
    let owner = member(&a, "Acme").await;
    mark_verified(&a, &owner.user_id).await;
    let (id, api_key) = make_key(&a, &owner, "member").await;
    let headers = [("x-api-key", api_key.as_str())];
    for gw in [&a, &b] {
        let subscribed = "tenantgate_cache_invalidation_subscribed";
        assert!(gw.eventually(Duration::from_secs(10), || async { gw.metric(subscribed).await == 1.0 }).await);
        // Twice: the second answer is the decision memo's.
        assert_eq!(send(gw, "/app/x", &headers).await.0, 200);
        assert_eq!(send(gw, "/app/x", &headers).await.0, 200);
    }
    assert!(b.metric_sum(r#"tenantgate_decision_memo_total{result="hit""#).await >= 1.0);

    assert_eq!(revoke(&a, &owner.token, &owner.tenant_id, &id).await.0, 204);
    let started = Instant::now();
    let refused = b
        .eventually(Duration::from_secs(5), || async {
            code(&send(&b, "/app/x", &headers).await) == (401, Some("invalid_token"))
        })
        .await;
    assert!(refused, "instance B still accepts the revoked key");
    // The key's cache TTL is ten minutes: this is the invalidation.
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(code(&send(&a, "/app/x", &headers).await), (401, Some("invalid_token")));

    // Expiry: a key that expires in two seconds works until then, memo or not.
    let expires = chrono::Utc::now() + chrono::Duration::seconds(2);
    let (status, made) = create(
        &a,
        &owner.token,
        &owner.tenant_id,
        json!({"name": "short", "role": "member", "expiresAt": expires.to_rfc3339()}),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let short = [("x-api-key", made["key"].as_str().unwrap())];
    assert_eq!(send(&b, "/app/x", &short).await.0, 200);
    assert_eq!(send(&b, "/app/x", &short).await.0, 200);
    let wait = (expires - chrono::Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(1100);
    tokio::time::sleep(wait).await;
    assert_eq!(code(&send(&b, "/app/x", &short).await), (401, Some("token_expired")));
    let listed = list(&a, &owner.token, &owner.tenant_id).await.1;
    let statuses: Vec<&str> =
        listed["apiKeys"].as_array().unwrap().iter().filter_map(|k| k["status"].as_str()).collect();
    assert_eq!(statuses, ["expired", "revoked"]);
}

#[tokio::test]
async fn warm_key_requests_make_no_network_call_uses_are_recorded_and_limits_are_per_key() {
    let app = spawn_gateway(KEY_ROUTES, &[], None).await;
    let owner = member(&app, "Acme").await;
    mark_verified(&app, &owner.user_id).await;
    let (id, api_key) = make_key(&app, &owner, "member").await;
    let (_, second) = make_key(&app, &owner, "member").await;
    let headers = [("x-api-key", api_key.as_str())];
    assert_eq!(send(&app, "/app/x", &headers).await.0, 200);

    let beyond_l1 = || async {
        let text = app.client.get(format!("{}/metrics", app.admin)).send().await.unwrap().text().await.unwrap();
        text.lines()
            .filter(|l| l.starts_with("tenantgate_cache_lookups_total") && !l.contains(r#"tier="l1""#))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let before = beyond_l1().await;
    assert!(before.iter().any(|l| l.contains(r#"cache="api_key""#)), "{before:?}");
    for _ in 0..30 {
        assert_eq!(send(&app, "/app/x", &headers).await.0, 200);
    }
    assert_eq!(beyond_l1().await, before, "a warm key request reached Redis or Postgres");

    // last_used_at is written off the request path, and the first use audited once.
    let pool = app.db.pool().await;
    let used = app
        .eventually(Duration::from_secs(10), || async {
            let row: (Option<chrono::DateTime<chrono::Utc>>,) =
                sqlx::query_as("SELECT last_used_at FROM api_keys WHERE id = $1::uuid")
                    .bind(&id)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            row.0.is_some()
        })
        .await;
    assert!(used, "last_used_at was never written");
    let listed = list(&app, &owner.token, &owner.tenant_id).await.1;
    let mine = listed["apiKeys"].as_array().unwrap().iter().find(|k| k["id"] == id.as_str()).unwrap().clone();
    assert!(mine["lastUsedAt"].is_string(), "{mine}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let first: (i64,) = sqlx::query_as(
        "SELECT count(*) FROM audit_log WHERE action = 'api_key.first_used' AND target = 'api_key:' || $1",
    )
    .bind(&id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(first.0, 1, "the first use is audited exactly once");

    // The route allows 3 requests a minute per user: per key for keys.
    for _ in 0..3 {
        assert_eq!(send(&app, "/reports/x", &headers).await.0, 200);
    }
    let limited = send(&app, "/reports/x", &headers).await;
    assert_eq!(code(&limited), (429, Some("rate_limited")));
    assert_eq!(send(&app, "/reports/x", &[("x-api-key", &second)]).await.0, 200, "another key has its own count");
    assert_eq!(get(&app, "/reports/x", Some(&owner.token), &[("x-tenant-id", &owner.tenant_id)]).await.0, 200);
}
