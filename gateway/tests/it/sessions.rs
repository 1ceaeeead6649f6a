//! Refresh-token rotation, reuse detection, logout and logout-all.

use serde_json::{json, Value};

use crate::helpers::*;

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_json("/auth/refresh", &json!({"refreshToken": token})).await
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_whole_family() {
    let app = spawn_app().await;
    let reg = app.register(&unique_email(), None).await;
    let first = reg["refreshToken"].as_str().unwrap().to_owned();

    let res = refresh(&app, &first).await;
    assert_eq!(res.status(), 200);
    let pair: Value = res.json().await.unwrap();
    let second = pair["refreshToken"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    assert_eq!(pair["tokenType"], "Bearer");
    assert_eq!(app.get_bearer("/auth/me", pair["accessToken"].as_str().unwrap()).await.status(), 200);

    // The first token is spent: presenting it again is reuse, and kills the family.
    assert_error(refresh(&app, &first).await, 401, "token_reused").await;
    assert_error(refresh(&app, &second).await, 401, "invalid_token").await;
    let (reuse,): (i64,) = sqlx::query_as("SELECT count(*) FROM audit_log WHERE action = 'session.reuse_detected'")
        .fetch_one(&app.db.pool().await)
        .await
        .unwrap();
    assert_eq!(reuse, 1);
}

#[tokio::test]
async fn refresh_rejects_unknown_malformed_and_expired_tokens() {
    let app = spawn_app().await;
    let reg = app.register(&unique_email(), None).await;
    assert_error(refresh(&app, "short").await, 401, "invalid_token").await;
    assert_error(refresh(&app, &"A".repeat(43)).await, 401, "invalid_token").await;
    assert_error(app.post_json("/auth/refresh", &json!({})).await, 400, "invalid_request").await;

    let token = reg["refreshToken"].as_str().unwrap();
    sqlx::query("UPDATE refresh_sessions SET expires_at = now() - interval '1 second'")
        .execute(&app.db.pool().await)
        .await
        .unwrap();
    assert_error(refresh(&app, token).await, 401, "token_expired").await;
}

#[tokio::test]
async fn logout_revokes_that_session_only() {
    let app = spawn_app().await;
    let email = unique_email();
    let reg = app.register(&email, None).await;
    let other: Value = app.login(&email, PASSWORD).await.json().await.unwrap();

    let res = app.post_json("/auth/logout", &json!({"refreshToken": reg["refreshToken"]})).await;
    assert_eq!(res.status(), 204);
    assert_error(refresh(&app, reg["refreshToken"].as_str().unwrap()).await, 401, "invalid_token").await;
    // The other login is untouched, and logging out twice (or an unknown token) is fine.
    assert_eq!(refresh(&app, other["refreshToken"].as_str().unwrap()).await.status(), 200);
    assert_eq!(app.post_json("/auth/logout", &json!({"refreshToken": reg["refreshToken"]})).await.status(), 204);
    assert_eq!(app.post_json("/auth/logout", &json!({"refreshToken": "unknown"})).await.status(), 204);
}

#[tokio::test]
async fn logout_all_ends_every_session_and_invalidates_access_tokens() {
    let app = spawn_app().await;
    let email = unique_email();
    let reg = app.register(&email, None).await;
    let second: Value = app.login(&email, PASSWORD).await.json().await.unwrap();
    let access = reg["accessToken"].as_str().unwrap();
    let other_access = second["accessToken"].as_str().unwrap();

    assert_error(app.client.post(app.url("/auth/logout-all")).send().await.unwrap(), 401, "missing_token").await;
    assert_eq!(app.post_bearer("/auth/logout-all", access).await.status(), 204);

    for token in [access, other_access] {
        assert_error(app.get_bearer("/auth/me", token).await, 401, "token_revoked").await;
    }
    for token in [&reg["refreshToken"], &second["refreshToken"]] {
        assert_error(refresh(&app, token.as_str().unwrap()).await, 401, "invalid_token").await;
    }
    // A new login works and is not affected.
    let fresh: Value = app.login(&email, PASSWORD).await.json().await.unwrap();
    assert_eq!(app.get_bearer("/auth/me", fresh["accessToken"].as_str().unwrap()).await.status(), 200);
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_succeed_at_most_once() {
    let app = spawn_app().await;
    let reg = app.register(&unique_email(), None).await;
    let token = reg["refreshToken"].as_str().unwrap();
    let results = futures::future::join_all((0..8).map(|_| refresh(&app, token))).await;
    let ok = results.iter().filter(|r| r.status() == 200).count();
    assert!(ok <= 1, "{ok} refreshes of one token succeeded");
    assert!(results.iter().all(|r| r.status() == 200 || r.status() == 401));
}
