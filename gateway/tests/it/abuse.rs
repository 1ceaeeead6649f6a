//! Abuse limits of the auth API: sign-up, tenant creation, invitations and mail
//! sent on request are limited per account (the normalized address or the user
//! id) and per client IP (IPv6 per /64), with 429 `rate_limited` and
//! `Retry-After`, and a refused request changes nothing.
//!
//! Clients are told apart by the address a trusted proxy forwards
//! (`GATEWAY_TRUSTED_PROXIES=127.0.0.1`), as behind a load balancer.

use reqwest::Method;
use serde_json::{json, Value};

use shared::domain::Role;

use crate::helpers::*;
use crate::proxy::{member, Member};

const TRUST_LOCAL: (&str, &str) = ("GATEWAY_TRUSTED_PROXIES", "127.0.0.1/32");

/// `method path` as the client `ip` (forwarded by the trusted local proxy).
async fn send(
    app: &TestApp,
    ip: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut req = app.client.request(method, app.url(path)).header("x-forwarded-for", ip).json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.expect("request")
}

async fn register(app: &TestApp, ip: &str, email: &str) -> reqwest::Response {
    let body = json!({"email": email, "password": PASSWORD, "name": "Test User"});
    send(app, ip, Method::POST, "/auth/register", None, body).await
}

/// Asserts a 429 with a usable `Retry-After` (whole seconds, within the window).
/// The tests use hour-long windows: windows are fixed, and a minute-long one
/// could end between two sign-ups on a busy machine (seen once in a full run).
async fn assert_limited(res: reqwest::Response, window_secs: u64) {
    let retry: u64 = res.headers().get("retry-after").expect("Retry-After").to_str().unwrap().parse().unwrap();
    assert!((1..=window_secs).contains(&retry), "Retry-After {retry}");
    assert_error(res, 429, "rate_limited").await;
}

async fn user_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&app.db.pool().await).await.unwrap()
}

#[tokio::test]
async fn sign_ups_are_limited_per_ip_per_64_and_per_normalized_address() {
    let app = spawn_app_with(&[TRUST_LOCAL, ("RATE_LIMIT_REGISTER", "2/1h")]).await;
    assert_eq!(register(&app, "203.0.113.7", &unique_email()).await.status(), 201);
    assert_eq!(register(&app, "203.0.113.7", &unique_email()).await.status(), 201);
    let before = user_count(&app).await;
    assert_limited(register(&app, "203.0.113.7", &unique_email()).await, 3600).await;
    assert_eq!(user_count(&app).await, before, "a refused sign-up creates nothing");
    assert_eq!(register(&app, "198.51.100.1", &unique_email()).await.status(), 201, "another client is not limited");

    // IPv6: one /64 is one client.
    assert_eq!(register(&app, "2001:db8:1:2::1", &unique_email()).await.status(), 201);
    assert_eq!(register(&app, "2001:db8:1:2:ffff::9", &unique_email()).await.status(), 201);
    assert_limited(register(&app, "2001:db8:1:2:abcd::1", &unique_email()).await, 3600).await;
    assert_eq!(register(&app, "2001:db8:1:3::1", &unique_email()).await.status(), 201);

    // Per address, whatever its spelling and wherever it comes from.
    let local = format!("probe-{}", uuid::Uuid::new_v4().simple());
    let spellings = [format!("{local}@example.test"), format!("{}@EXAMPLE.test", local.to_uppercase())];
    assert_eq!(register(&app, "192.0.2.1", &spellings[0]).await.status(), 201);
    assert_error(register(&app, "192.0.2.2", &spellings[1]).await, 409, "email_taken").await;
    assert_limited(register(&app, "192.0.2.3", &format!(" {} ", spellings[1])).await, 3600).await;
}

#[tokio::test]
async fn tenant_creation_is_limited_per_account_and_per_ip() {
    let app = spawn_app_with(&[TRUST_LOCAL, ("RATE_LIMIT_TENANT_CREATE", "2/1h")]).await;
    let (ann, bob) = (member(&app, "Ann's").await, member(&app, "Bob's").await);
    let create = |m: &Member, ip: &'static str, name: &'static str| {
        let token = m.token.clone();
        let app = &app;
        async move { send(app, ip, Method::POST, "/auth/tenants", Some(&token), json!({"name": name})).await }
    };
    assert_eq!(create(&ann, "203.0.113.1", "One").await.status(), 201);
    assert_eq!(create(&ann, "203.0.113.2", "Two").await.status(), 201);
    // Per account: a third from yet another address is refused, and not created.
    assert_limited(create(&ann, "203.0.113.3", "Three").await, 3600).await;
    let tenants = send(&app, "203.0.113.9", Method::GET, "/auth/tenants", Some(&ann.token), Value::Null).await;
    let listed: Value = tenants.json().await.unwrap();
    assert_eq!(listed["tenants"].as_array().map(Vec::len), Some(3), "{listed}");
    // Per IP: another account from an address that made two.
    assert_eq!(create(&bob, "198.51.100.6", "B1").await.status(), 201);
    assert_eq!(create(&bob, "198.51.100.6", "B2").await.status(), 201);
    let carol = member(&app, "Carol's").await;
    assert_limited(create(&carol, "198.51.100.6", "C1").await, 3600).await;
    assert_eq!(create(&carol, "198.51.100.7", "C1").await.status(), 201);
}

async fn invite(app: &TestApp, ip: &str, owner: &Member, email: &str) -> reqwest::Response {
    let path = format!("/auth/tenants/{}/invitations", owner.tenant_id);
    send(app, ip, Method::POST, &path, Some(&owner.token), json!({"email": email, "role": "member"})).await
}

#[tokio::test]
async fn invitations_are_limited_per_inviter_and_an_address_gets_only_so_many_mails() {
    let extra = [TRUST_LOCAL, ("RATE_LIMIT_INVITATIONS", "3/1h"), ("RATE_LIMIT_MAIL", "2/1h")];
    let app = spawn_app_with(&extra).await;
    let ann = member(&app, "Acme").await;
    for n in 0..3 {
        assert_eq!(invite(&app, &format!("203.0.113.{n}"), &ann, &unique_email()).await.status(), 201);
    }
    let refused = unique_email();
    assert_limited(invite(&app, "203.0.113.50", &ann, &refused).await, 3600).await;
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM invitations WHERE lower(email) = lower($1)")
        .bind(&refused)
        .fetch_one(&app.db.pool().await)
        .await
        .unwrap();
    assert_eq!(pending, 0, "a refused invitation is not stored");

    // One address, invited by two tenants from two clients: two mails, then 429.
    let victim = unique_email();
    let (bob, carol, dave) = (member(&app, "B").await, member(&app, "C").await, member(&app, "D").await);
    assert_eq!(invite(&app, "198.51.100.1", &bob, &victim).await.status(), 201);
    assert_eq!(invite(&app, "198.51.100.2", &carol, &victim.to_uppercase()).await.status(), 201);
    assert_limited(invite(&app, "198.51.100.3", &dave, &victim).await, 3600).await;
    // A caller who may not invite cannot spend the address's allowance.
    let other = unique_email();
    let eve = member(&app, "E").await;
    crate::tenants::add(&app, &bob, &eve, Role::Viewer).await;
    let viewer_of_bob = Member { tenant_id: bob.tenant_id.clone(), ..eve };
    for n in 0..3 {
        let refused = invite(&app, &format!("198.51.100.{}", 10 + n), &viewer_of_bob, &other).await;
        assert_error(refused, 403, "insufficient_role").await;
    }
    assert_eq!(invite(&app, "198.51.100.5", &dave, &other).await.status(), 201);
}

#[tokio::test]
async fn verification_mail_resends_are_limited_per_address_and_per_ip() {
    let app = spawn_app_with(&[TRUST_LOCAL, ("RATE_LIMIT_MAIL", "2/1h")]).await;
    let (ann, bob, carol) = (member(&app, "A").await, member(&app, "B").await, member(&app, "C").await);
    let resend = |m: &Member, ip: &'static str| {
        let token = m.token.clone();
        let app = &app;
        async move { send(app, ip, Method::POST, "/auth/resend-verification", Some(&token), json!({})).await }
    };
    assert_eq!(resend(&ann, "203.0.113.1").await.status(), 202);
    assert_eq!(resend(&ann, "203.0.113.2").await.status(), 202);
    assert_limited(resend(&ann, "203.0.113.3").await, 3600).await;
    // 203.0.113.3 has asked twice (the refused attempt counts): a third from it
    // is refused whoever asks.
    assert_eq!(resend(&bob, "203.0.113.3").await.status(), 202);
    assert_limited(resend(&carol, "203.0.113.3").await, 3600).await;
    assert_eq!(resend(&carol, "198.51.100.1").await.status(), 202);
}
