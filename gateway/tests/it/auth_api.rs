//! Register, login, me and the error contract of `/auth`.

use serde_json::{json, Value};
use shared::domain::{Role, TenantId, UserId};

use crate::helpers::*;

#[tokio::test]
async fn register_creates_user_tenant_owner_audit_and_tokens() {
    let app = spawn_app().await;
    let email = unique_email();
    let body = app.register(&email, Some("Acme Corp")).await;

    assert_eq!(body["user"]["email"], email.as_str());
    assert_eq!(body["user"]["name"], "Test User");
    assert_eq!(body["user"]["language"], "en");
    assert_eq!(body["user"]["emailVerified"], false);
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(body["expiresIn"], 900);
    assert!(body["accessToken"].as_str().is_some_and(|t| t.split('.').count() == 3));
    assert!(body["refreshToken"].as_str().is_some_and(|t| t.len() == 43));
    let tenants = body["tenants"].as_array().expect("tenants");
    assert_eq!(tenants.len(), 1);
    assert_eq!(tenants[0]["name"], "Acme Corp");
    assert_eq!(tenants[0]["slug"], "acme-corp");
    assert_eq!(tenants[0]["role"], "owner");

    let pool = app.db.pool().await;
    let user_id = body["user"]["id"].as_str().expect("id");
    let (role,): (String,) = sqlx::query_as("SELECT role FROM user_tenant_roles WHERE user_id = $1::uuid")
        .bind(user_id)
        .fetch_one(&pool)
        .await
        .expect("membership row");
    assert_eq!(role, "owner");
    let actions: Vec<(String,)> = sqlx::query_as("SELECT action FROM audit_log WHERE actor_id = $1::uuid ORDER BY id")
        .bind(user_id)
        .fetch_all(&pool)
        .await
        .expect("audit");
    let actions: Vec<&str> = actions.iter().map(|(a,)| a.as_str()).collect();
    assert_eq!(actions, ["user.registered", "tenant.created"]);
    let (hash,): (String,) = sqlx::query_as("SELECT password_hash FROM users WHERE id = $1::uuid")
        .bind(user_id)
        .fetch_one(&pool)
        .await
        .expect("user");
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
    // The refresh token is stored only as a keyed hash.
    let (stored,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM refresh_sessions WHERE token_hash = convert_to($1, 'UTF8')")
            .bind(body["refreshToken"].as_str())
            .fetch_one(&pool)
            .await
            .expect("sessions");
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn register_without_tenant_name_creates_a_personal_tenant_and_slugs_stay_unique() {
    let app = spawn_app().await;
    let first = app.register(&unique_email(), None).await;
    assert_eq!(first["tenants"][0]["name"], "Test User's workspace");
    assert_eq!(first["tenants"][0]["role"], "owner");
    let second = app.register(&unique_email(), None).await;
    let (a, b) = (first["tenants"][0]["slug"].as_str().unwrap(), second["tenants"][0]["slug"].as_str().unwrap());
    assert_eq!(a, "test-user-s-workspace");
    assert!(b.starts_with("test-user-s-workspace-") && a != b, "{a} {b}");
}

#[tokio::test]
async fn register_refuses_duplicate_email_case_insensitively() {
    let app = spawn_app().await;
    let email = unique_email();
    app.register(&email, None).await;
    let res = app
        .post_json("/auth/register", &json!({"email": email.to_uppercase(), "password": PASSWORD, "name": "Again"}))
        .await;
    assert_error(res, 409, "email_taken").await;
    // Nothing of the second attempt was kept.
    let (tenants,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM tenants").fetch_one(&app.db.pool().await).await.unwrap();
    assert_eq!(tenants, 1);
}

#[tokio::test]
async fn register_enforces_the_password_policy_and_field_rules() {
    let app = spawn_app().await;
    for password in ["short77", &"x".repeat(129)] {
        let res =
            app.post_json("/auth/register", &json!({"email": unique_email(), "password": password, "name": "N"})).await;
        assert_error(res, 400, "weak_password").await;
    }
    let accepted_edges = [&"y".repeat(8), &"é".repeat(128)];
    for password in accepted_edges {
        let res =
            app.post_json("/auth/register", &json!({"email": unique_email(), "password": password, "name": "N"})).await;
        assert_eq!(res.status(), 201);
    }
    let cases = [
        json!({"email": "not-an-email", "password": PASSWORD, "name": "N"}),
        json!({"email": unique_email(), "password": PASSWORD, "name": "   "}),
        json!({"email": unique_email(), "password": PASSWORD, "name": "N", "language": "klingon"}),
        json!({"email": unique_email(), "password": PASSWORD}),
        json!({"email": unique_email(), "password": 12345678, "name": "N"}),
        json!([1, 2, 3]),
    ];
    for case in cases {
        let body = assert_error(app.post_json("/auth/register", &case).await, 400, "invalid_request").await;
        assert!(!body["message"].as_str().unwrap().contains(PASSWORD));
    }
    let (users,): (i64,) = sqlx::query_as("SELECT count(*) FROM users").fetch_one(&app.db.pool().await).await.unwrap();
    assert_eq!(users, 2, "only the two valid registrations were stored");
}

#[tokio::test]
async fn malformed_bodies_content_types_sizes_and_paths_get_json_errors() {
    let app = spawn_app().await;
    let send = |body: &'static str, ct: &'static str| {
        app.client.post(app.url("/auth/login")).header("content-type", ct).body(body).send()
    };
    assert_error(send("{not json", "application/json").await.unwrap(), 400, "invalid_request").await;
    assert_error(send("{}", "application/json").await.unwrap(), 400, "invalid_request").await;
    assert_error(send("email=a", "application/x-www-form-urlencoded").await.unwrap(), 415, "unsupported_media_type")
        .await;

    let huge = format!(r#"{{"email":"a@b.co","password":"{}"}}"#, "x".repeat(70 * 1024));
    let res = app
        .client
        .post(app.url("/auth/login"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_error(res, 413, "payload_too_large").await;

    assert_error(app.client.get(app.url("/auth/nope")).send().await.unwrap(), 404, "not_found").await;
    assert_error(app.client.get(app.url("/auth/login")).send().await.unwrap(), 405, "method_not_allowed").await;
    assert_error(app.client.get(app.url("/elsewhere")).send().await.unwrap(), 404, "route_not_found").await;
}

#[tokio::test]
async fn body_cap_is_configurable() {
    let app = spawn_app_with(&[("GATEWAY_BODY_LIMIT", "2048")]).await;
    let body = json!({"email": unique_email(), "password": PASSWORD, "name": "x".repeat(3000)});
    assert_error(app.post_json("/auth/register", &body).await, 413, "payload_too_large").await;
}

#[tokio::test]
async fn login_returns_tokens_and_every_tenant_with_its_role() {
    let app = spawn_app().await;
    let alice = unique_email();
    let a = app.register(&alice, Some("Alpha")).await;
    let b = app.register(&unique_email(), Some("Beta")).await;
    // Alice also joins Beta as a member.
    let pool = app.db.pool().await;
    let mut conn = pool.acquire().await.unwrap();
    let alice_id = UserId::parse(a["user"]["id"].as_str().unwrap()).unwrap();
    let beta_id = TenantId::parse(b["tenants"][0]["id"].as_str().unwrap()).unwrap();
    shared::db::memberships::insert(&mut conn, alice_id, beta_id, Role::Member).await.unwrap();

    let res = app.login(&alice.to_uppercase(), PASSWORD).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["id"], a["user"]["id"]);
    assert_eq!(body["tokenType"], "Bearer");
    let mut tenants: Vec<(String, String)> = body["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_owned(), t["role"].as_str().unwrap().to_owned()))
        .collect();
    tenants.sort();
    assert_eq!(tenants, [("Alpha".to_owned(), "owner".to_owned()), ("Beta".to_owned(), "member".to_owned())]);

    let me: Value = app.get_bearer("/auth/me", body["accessToken"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(me["user"]["email"], alice.as_str());
    assert_eq!(me["tenants"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn wrong_password_and_unknown_email_answer_identically() {
    let app = spawn_app().await;
    let email = unique_email();
    app.register(&email, None).await;
    let wrong = app.login(&email, "not the password").await;
    let unknown = app.login(&unique_email(), PASSWORD).await;
    let malformed = app.login("nobody", PASSWORD).await;
    let mut bodies = Vec::new();
    for res in [wrong, unknown, malformed] {
        assert_eq!(res.headers().get("www-authenticate").unwrap().to_str().unwrap().split(' ').next(), Some("Bearer"));
        bodies.push(assert_error(res, 401, "invalid_credentials").await);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
}

#[tokio::test]
async fn me_requires_a_valid_bearer_token() {
    let app = spawn_app().await;
    let body = app.register(&unique_email(), None).await;
    let token = body["accessToken"].as_str().unwrap();
    assert_eq!(app.get_bearer("/auth/me", token).await.status(), 200);

    let res = app.client.get(app.url("/auth/me")).send().await.unwrap();
    assert!(res.headers().get("www-authenticate").is_some());
    assert_error(res, 401, "missing_token").await;
    assert_error(app.get_bearer("/auth/me", "garbage").await, 401, "invalid_token").await;

    // Same claims, re-signed with another key, or with alg "none": refused.
    let forged = jwt_with(token, "HS256", "another-secret-another-secret-another");
    assert_error(app.get_bearer("/auth/me", &forged).await, 401, "invalid_token").await;
    let none = {
        use base64::Engine;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = token.split('.').nth(1).unwrap();
        format!("{}.{payload}.", engine.encode(br#"{"alg":"none","typ":"JWT"}"#))
    };
    assert_error(app.get_bearer("/auth/me", &none).await, 401, "invalid_token").await;
    let expired = reissue(token, |c| {
        c["exp"] = json!(chrono::Utc::now().timestamp() - 120);
    });
    assert_error(app.get_bearer("/auth/me", &expired).await, 401, "token_expired").await;
    let other_issuer = reissue(token, |c| c["iss"] = json!("someone-else"));
    assert_error(app.get_bearer("/auth/me", &other_issuer).await, 401, "invalid_token").await;
    let other_audience = reissue(token, |c| c["aud"] = json!("another-app"));
    assert_error(app.get_bearer("/auth/me", &other_audience).await, 401, "invalid_token").await;
}

fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn jwt_with(token: &str, alg: &str, secret: &str) -> String {
    let header = jsonwebtoken::Header::new(alg.parse().unwrap());
    jsonwebtoken::encode(&header, &claims_of(token), &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()))
        .unwrap()
}

/// The token's claims changed by `edit`, signed with the gateway's real key.
pub fn reissue(token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut claims = claims_of(token);
    edit(&mut claims);
    let key = jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}

#[tokio::test]
async fn cors_answers_preflight_for_listed_origins_only() {
    let app = spawn_app().await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/auth/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let ok = preflight("https://app.example.test").await.unwrap();
    assert!(ok.status().is_success());
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://app.example.test");
    assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
    let evil = preflight("https://evil.example").await.unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());
}
