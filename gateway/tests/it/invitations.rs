//! Invitations: emailed through the outbox, accepted once by the invited address
//! (logged in, or while registering), never after expiry or revocation.

use reqwest::Method;
use serde_json::{json, Value};
use shared::domain::Role;
use shared::queue::{AuthEventKind, Job};

use crate::helpers::*;
use crate::proxy::{get, member, Member};
use crate::tenants::{add, call, expect, next_event};

/// Invites `email` as `role` into `by`'s tenant; returns the 201 body and the
/// token from the email job.
async fn invite(app: &TestApp, by: &Member, email: &str, role: &str) -> (Value, String) {
    let path = format!("/auth/tenants/{}/invitations", by.tenant_id);
    let body =
        expect(call(app, Method::POST, &path, &by.token, Some(json!({"email": email, "role": role}))).await, 201).await;
    let queues = app.queues.as_ref().expect("queues");
    loop {
        if let Job::SendInvitation(mail) = queues.next("email", "send-invitation").await.job {
            if mail.to.as_str().eq_ignore_ascii_case(email) {
                assert_eq!(mail.data["role"], role);
                assert_eq!(mail.template, "invitation");
                assert!(mail.data["tenantName"].as_str().is_some_and(|n| !n.is_empty()));
                return (body, mail.data["token"].as_str().expect("a token").to_owned());
            }
        }
    }
}

async fn accept(app: &TestApp, who: &Member, token: &str) -> reqwest::Response {
    call(app, Method::POST, "/auth/invitations/accept", &who.token, Some(json!({ "token": token }))).await
}

#[tokio::test]
async fn an_invitation_is_accepted_once_and_only_by_the_invited_address() {
    let app = spawn_app().await;
    let owner = member(&app, "Acme").await;
    let invitee = member(&app, "Own").await;
    let other = member(&app, "Other").await;
    let (created, token) = invite(&app, &owner, &invitee.email.to_uppercase(), "admin").await;
    let inv = &created["invitation"];
    assert_eq!((inv["status"].as_str(), inv["role"].as_str()), (Some("pending"), Some("admin")));
    assert!(inv.get("token").is_none() && !created.to_string().contains(&token), "the token is only in the email");

    // Not a member yet: the proxy refuses (and caches that briefly).
    let t = [("x-tenant-id", owner.tenant_id.as_str())];
    assert_eq!(get(&app, "/app", Some(&invitee.token), &t).await.0, 403);

    assert_error(accept(&app, &other, &token).await, 403, "invitation_email_mismatch").await;
    let joined = expect(accept(&app, &invitee, &token).await, 200).await;
    assert_eq!(
        (joined["tenant"]["id"].as_str(), joined["tenant"]["role"].as_str()),
        (Some(owner.tenant_id.as_str()), Some("admin"))
    );
    // The negative cache entry went with the invalidation: admitted at once.
    assert_eq!(get(&app, "/app", Some(&invitee.token), &t).await.0, 200);
    assert_error(accept(&app, &invitee, &token).await, 400, "invalid_token").await;
    assert_error(accept(&app, &invitee, "not-a-token").await, 400, "invalid_token").await;
    next_event(&app, AuthEventKind::MemberAdded, &invitee.user_id).await;

    let list = expect(
        call(&app, Method::GET, &format!("/auth/tenants/{}/invitations", owner.tenant_id), &owner.token, None).await,
        200,
    )
    .await;
    assert_eq!(list["invitations"][0]["status"], "accepted");
    let audit = expect(
        call(&app, Method::GET, &format!("/auth/tenants/{}/audit", owner.tenant_id), &owner.token, None).await,
        200,
    )
    .await;
    let actions: Vec<&str> = audit["entries"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, ["member.added", "invitation.created", "tenant.created"]);
    assert_eq!(audit["entries"][0]["actorId"], invitee.user_id.as_str());
}

#[tokio::test]
async fn expired_revoked_and_replaced_invitations_are_refused() {
    let app = spawn_app().await;
    let owner = member(&app, "Acme").await;
    let invitee = member(&app, "Own").await;
    let (_, expired) = invite(&app, &owner, &invitee.email, "member").await;
    sqlx::query("UPDATE invitations SET expires_at = now() - interval '1 second'")
        .execute(&app.db.pool().await)
        .await
        .unwrap();
    assert_error(accept(&app, &invitee, &expired).await, 400, "invalid_token").await;

    let (first, replaced) = invite(&app, &owner, &invitee.email, "member").await;
    let (second, live) = invite(&app, &owner, &invitee.email, "viewer").await;
    assert_error(accept(&app, &invitee, &replaced).await, 400, "invalid_token").await;
    let path = format!("/auth/tenants/{}/invitations", owner.tenant_id);
    let list = expect(call(&app, Method::GET, &path, &owner.token, None).await, 200).await;
    let statuses: Vec<&str> =
        list["invitations"].as_array().unwrap().iter().filter_map(|i| i["status"].as_str()).collect();
    assert_eq!(statuses, ["pending", "revoked", "expired"]);
    assert_eq!(list["invitations"][1]["id"], first["invitation"]["id"]);

    let revoke = format!("{path}/{}", second["invitation"]["id"].as_str().unwrap());
    assert_eq!(call(&app, Method::DELETE, &revoke, &owner.token, None).await.status(), 204);
    assert_error(call(&app, Method::DELETE, &revoke, &owner.token, None).await, 404, "invitation_not_found").await;
    assert_error(accept(&app, &invitee, &live).await, 400, "invalid_token").await;
    let memberships: i64 = sqlx::query_scalar("SELECT count(*) FROM user_tenant_roles WHERE user_id = $1::uuid")
        .bind(&invitee.user_id)
        .fetch_one(&app.db.pool().await)
        .await
        .unwrap();
    assert_eq!(memberships, 1, "only their own tenant");
}

#[tokio::test]
async fn who_may_invite_whom() {
    let app = spawn_app().await;
    let owner = member(&app, "Acme").await;
    let admin = member(&app, "A").await;
    let user = member(&app, "B").await;
    add(&app, &owner, &admin, Role::Admin).await;
    add(&app, &owner, &user, Role::Member).await;
    let path = format!("/auth/tenants/{}/invitations", owner.tenant_id);
    let send = |who: &Member, email: &str, role: &str| {
        let (token, body) = (who.token.clone(), json!({"email": email, "role": role}));
        let (app, path) = (&app, path.clone());
        async move { call(app, Method::POST, &path, &token, Some(body)).await }
    };
    let fresh = unique_email();
    assert_error(send(&user, &fresh, "viewer").await, 403, "insufficient_role").await;
    assert_error(send(&admin, &fresh, "owner").await, 403, "owner_required").await;
    assert_error(send(&admin, &user.email, "viewer").await, 409, "already_member").await;
    assert_error(send(&admin, "not-an-email", "viewer").await, 400, "invalid_request").await;
    assert_error(send(&admin, &fresh, "root").await, 400, "invalid_request").await;
    assert_error(call(&app, Method::GET, &path, &user.token, None).await, 403, "insufficient_role").await;
    expect(send(&admin, &fresh, "admin").await, 201).await;
    expect(send(&owner, &unique_email(), "owner").await, 201).await;
    let stranger = member(&app, "C").await;
    assert_error(send(&stranger, &fresh, "viewer").await, 404, "tenant_not_found").await;

    expect(
        call(&app, Method::POST, &format!("/auth/tenants/{}/deactivate", owner.tenant_id), &owner.token, None).await,
        200,
    )
    .await;
    assert_error(send(&owner, &unique_email(), "viewer").await, 403, "tenant_inactive").await;
}

#[tokio::test]
async fn registering_with_an_invite_token_joins_that_tenant_instead_of_creating_one() {
    let app = spawn_app().await;
    let owner = member(&app, "Acme").await;
    let email = unique_email();
    let (_, token) = invite(&app, &owner, &email, "member").await;
    let tenants_before: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tenants").fetch_one(&app.db.pool().await).await.unwrap();

    // A bad or someone else's token: 4xx, and nothing is created.
    let register = |email: &str, token: &str| {
        let body = json!({"email": email, "password": PASSWORD, "name": "New Person", "inviteToken": token});
        let app = &app;
        async move { app.post_json("/auth/register", &body).await }
    };
    assert_error(register(&email, "bogus").await, 400, "invalid_token").await;
    assert_error(register(&unique_email(), &token).await, 403, "invitation_email_mismatch").await;
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&app.db.pool().await).await.unwrap();
    assert_eq!(users, 1, "refused registrations created no account");

    let res = register(&email, &token).await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    let tenants = body["tenants"].as_array().unwrap();
    assert_eq!(tenants.len(), 1, "{body}");
    assert_eq!(
        (tenants[0]["id"].as_str(), tenants[0]["role"].as_str()),
        (Some(owner.tenant_id.as_str()), Some("member"))
    );
    assert_eq!(body["user"]["emailVerified"], true, "the invitation proved the address");
    let tenants_after: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tenants").fetch_one(&app.db.pool().await).await.unwrap();
    assert_eq!(tenants_after, tenants_before);
    let t = [("x-tenant-id", owner.tenant_id.as_str())];
    assert_eq!(get(&app, "/app", body["accessToken"].as_str(), &t).await.0, 200);
    assert_error(register(&unique_email(), &token).await, 400, "invalid_token").await;
}

#[tokio::test]
async fn the_emailed_link_is_accepted_through_the_portal_by_a_signed_in_browser() {
    use crate::portal::{location, open, portal_app, portal_login, post_form, Jar};
    let app = portal_app(&[]).await;
    let owner = member(&app, "Acme").await;
    let invitee = member(&app, "Own").await;
    let (_, token) = invite(&app, &owner, &invitee.email, "viewer").await;

    let mut jar = Jar::default();
    portal_login(&app, &mut jar, &invitee.email, "/auth/ui/tenants").await;
    let host = app.base.trim_start_matches("http://").to_owned();
    let (html, csrf) = open(&app, &mut jar, &format!("/auth/ui/invitation?token={token}"), &host).await;
    assert!(html.contains(&token), "the page carries the token in its form");
    let form = [("token", token.as_str()), ("csrf", csrf.as_str())];
    let res = post_form(&app, &jar, "/auth/ui/invitation", &host, &app.base, &form).await;
    assert_eq!((res.status().as_u16(), location(&res).as_str()), (303, "/auth/ui/tenants?accepted=1"));
    let role: String =
        sqlx::query_scalar("SELECT role FROM user_tenant_roles WHERE user_id = $1::uuid AND tenant_id = $2::uuid")
            .bind(&invitee.user_id)
            .bind(&owner.tenant_id)
            .fetch_one(&app.db.pool().await)
            .await
            .unwrap();
    assert_eq!(role, "viewer");
    // Spent: a second post shows the invalid-link page.
    let again = post_form(&app, &jar, "/auth/ui/invitation", &host, &app.base, &form).await;
    assert_eq!(again.status(), 400);
}

#[tokio::test]
async fn someone_without_an_account_registers_from_the_invitation_link_and_joins() {
    use crate::portal::{location, open, portal_app, post_form, Jar};
    let app = portal_app(&[]).await;
    let owner = member(&app, "Acme").await;
    let email = unique_email();
    let (_, token) = invite(&app, &owner, &email, "member").await;

    // Signed out, the invitation page offers an account that joins this tenant.
    let host = app.base.trim_start_matches("http://").to_owned();
    let mut jar = Jar::default();
    let res = app.client.get(app.url(&format!("/auth/ui/invitation?token={token}"))).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    let link = format!("/auth/ui/register?token={token}");
    assert!(page.contains(&link), "{page}");
    let (form_page, csrf) = open(&app, &mut jar, &link, &host).await;
    assert!(form_page.contains(&format!(r#"name="invite_token" value="{token}""#)), "{form_page}");

    // Another address: refused with the form again, nothing created.
    let other = unique_email();
    let wrong = [
        ("name", "New"),
        ("email", other.as_str()),
        ("password", PASSWORD),
        ("csrf", csrf.as_str()),
        ("invite_token", token.as_str()),
    ];
    let res = post_form(&app, &jar, "/auth/ui/register", &host, &app.base, &wrong).await;
    assert_eq!(res.status(), 403);
    assert!(
        res.text().await.unwrap().contains(&format!(r#"name="invite_token" value="{token}""#)),
        "the retry keeps the token"
    );

    let form = [
        ("name", "New"),
        ("email", email.as_str()),
        ("password", PASSWORD),
        ("csrf", csrf.as_str()),
        ("invite_token", token.as_str()),
    ];
    let res = post_form(&app, &jar, "/auth/ui/register", &host, &app.base, &form).await;
    assert_eq!(res.status(), 303, "{}", location(&res));
    let tenants: Vec<String> = sqlx::query_scalar(
        "SELECT m.tenant_id::text FROM user_tenant_roles m JOIN users u ON u.id = m.user_id WHERE lower(u.email) = lower($1)",
    )
    .bind(&email)
    .fetch_all(&app.db.pool().await)
    .await
    .unwrap();
    assert_eq!(tenants, std::slice::from_ref(&owner.tenant_id), "joined the inviting tenant and created none");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE lower(email) = lower($1)")
        .bind(&other)
        .fetch_one(&app.db.pool().await)
        .await
        .unwrap();
    assert_eq!(users, 0);
}
