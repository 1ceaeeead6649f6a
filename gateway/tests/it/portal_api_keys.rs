//! The portal's API keys page through the real gateway: an owner makes a key in a
//! form and sees it once (never in a URL, cookie or log), the key works through
//! the proxy until it is revoked in the same page; forged forms, members,
//! outsiders and admins reaching above their role change nothing.

use serde_json::Value;
use shared::domain::Role;

use crate::helpers::*;
use crate::portal::{location, open, portal_login, post_form, set_cookies, Jar};
use crate::proxy::{get, member, Member};

const ROUTES: &str = r#"
[[route]]
name = "app"
path_prefix = "/app"
upstreams = ["{upstream}"]
auth = "required"
tenant = "required"
tenant_from = ["header"]
min_role = "viewer"
"#;

/// A gateway with [`ROUTES`] whose log (debug level) goes to the returned file.
async fn app_with_log() -> (TestApp, tempfile::NamedTempFile) {
    let log = tempfile::NamedTempFile::new().unwrap();
    let env = [("RATE_LIMIT_MAX", "1000"), ("LOG_LEVEL", "debug")];
    let app = spawn_gateway_logging(ROUTES, &env, None, Some(log.reopen().unwrap())).await;
    (app, log)
}

fn host(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

fn page(slug: &str) -> String {
    format!("/auth/ui/tenants/{slug}/api-keys")
}

fn revoke_path(slug: &str) -> String {
    format!("/auth/ui/tenants/{slug}/api-keys/revoke")
}

/// `path` as minijinja writes it into an attribute (`/` escaped).
fn attr(path: &str) -> String {
    path.replace('/', "&#x2f;")
}

/// Every whole key (`tgk_` + 12 + `_` + 43 characters) in `text`.
fn whole_keys(text: &str) -> Vec<String> {
    text.match_indices("tgk_")
        .map(|(at, _)| text[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>())
        .filter(|k| k.len() == 4 + 12 + 1 + 43)
        .collect()
}

/// Signs `who` in through the portal; returns the browser's cookies.
async fn signed_in(app: &TestApp, who: &Member) -> Jar {
    let mut jar = Jar::default();
    let res = portal_login(app, &mut jar, &who.email, "/").await;
    assert_eq!(res.status(), 303, "login of {}", who.email);
    jar
}

async fn join(app: &TestApp, who: &Member, tenant: &Member, role: Role) {
    let mut conn = app.db.pool().await.acquire().await.unwrap();
    shared::db::memberships::insert(&mut conn, who.user_id.parse().unwrap(), tenant.tenant_id.parse().unwrap(), role)
        .await
        .unwrap();
}

/// The tenant's keys in the database: (id, role, revoked).
async fn stored(app: &TestApp, tenant: &Member) -> Vec<(uuid::Uuid, String, bool)> {
    sqlx::query_as(
        "SELECT id, role, revoked_at IS NOT NULL FROM api_keys WHERE tenant_id = $1::uuid ORDER BY created_at",
    )
    .bind(&tenant.tenant_id)
    .fetch_all(&app.db.pool().await)
    .await
    .unwrap()
}

/// [`post_form`] with the client's own `X-Request-Id` (which the gateway keeps).
async fn post_with_id(app: &TestApp, jar: &Jar, path: &str, id: &str, form: &[(&str, &str)]) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("origin", &app.base)
        .header("cookie", jar.header())
        .header("x-request-id", id)
        .form(form)
        .send()
        .await
        .unwrap()
}

/// The request id of the tenant's audit row `action`.
async fn audited(app: &TestApp, tenant: &Member, action: &str) -> Vec<Option<String>> {
    sqlx::query_scalar("SELECT request_id FROM audit_log WHERE tenant_id = $1::uuid AND action = $2")
        .bind(&tenant.tenant_id)
        .bind(action)
        .fetch_all(&app.db.pool().await)
        .await
        .unwrap()
}

/// GET `path` as a browser with `jar`: status and body.
async fn fetch(app: &TestApp, jar: &Jar, path: &str) -> (u16, String) {
    let res = app.client.get(app.url(path)).header("cookie", jar.header()).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test]
async fn an_owner_makes_a_key_in_the_portal_sees_it_once_uses_it_and_revokes_it() {
    let (app, log) = app_with_log().await;
    let owner = member(&app, "Keys Portal").await;
    mark_verified(&app, &owner.user_id).await;
    let host = host(&app);
    let mut jar = signed_in(&app, &owner).await;

    // The picker links to the page of a tenant the user owns.
    let (tenants, _) = open(&app, &mut jar, "/auth/ui/tenants", &host).await;
    assert!(tenants.contains(&format!(r#"href="{}""#, attr(&page(&owner.slug)))), "{tenants}");

    let (html, csrf) = open(&app, &mut jar, &page(&owner.slug), &host).await;
    assert!(html.contains("Keys Portal") && html.contains("no API keys yet"), "{html}");
    for role in ["viewer", "member", "admin", "owner"] {
        assert!(html.contains(&format!(r#"<option value="{role}""#)), "an owner may choose {role}: {html}");
    }
    assert!(html.contains(&format!(r#"action="{}""#, attr(&page(&owner.slug)))), "{html}");

    // Create: the answer is the page (no redirect) with the key, this once.
    let form = [("csrf", csrf.as_str()), ("name", "CI deploys"), ("role", "member"), ("expires", "30")];
    let res = post_with_id(&app, &jar, &page(&owner.slug), "portal-create-1", &form).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("location").is_none());
    assert_eq!(res.headers()["cache-control"], "no-store");
    let cookies = set_cookies(&res);
    let html = res.text().await.unwrap();
    let shown = whole_keys(&html);
    assert_eq!(shown.len(), 1, "the key is shown once: {html}");
    let key = shown[0].clone();
    assert!(cookies.iter().all(|c| !c.contains(&key[16..])), "{cookies:?}");
    assert!(html.contains("will not be shown again"), "{html}");
    assert!(html.contains("Authorization: Bearer") && html.contains("X-Api-Key"), "{html}");
    let keys = stored(&app, &owner).await;
    assert_eq!(keys.len(), 1);
    assert_eq!((keys[0].1.as_str(), keys[0].2), ("member", false));
    let (expires_in,): (f64,) =
        sqlx::query_as("SELECT extract(epoch FROM expires_at - now())::float8 FROM api_keys WHERE id = $1")
            .bind(keys[0].0)
            .fetch_one(&app.db.pool().await)
            .await
            .unwrap();
    assert!((29.9 * 86400.0..=30.0 * 86400.0).contains(&expires_in), "{expires_in}");

    // The key works through the proxy, with its role, as X-Api-Key or Bearer.
    let (status, echo) = get(&app, "/app/x", None, &[("x-api-key", &key)]).await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["headers"]["x-actor-type"], "api_key");
    assert_eq!(echo["headers"]["x-tenant-id"], owner.tenant_id.as_str());
    assert_eq!(echo["headers"]["x-tenant-role"], "member");
    assert_eq!(get(&app, "/app/x", Some(&key), &[]).await.0, 200);

    // Reloading shows the listing, never the key.
    let public_id = &key[4..16];
    let (html, csrf) = open(&app, &mut jar, &page(&owner.slug), &host).await;
    assert!(whole_keys(&html).is_empty(), "{html}");
    assert!(!html.contains(&key[16..]));
    assert!(html.contains("CI deploys") && html.contains(&format!("tgk_{public_id}_…")), "{html}");
    assert!(html.contains("<td>Member</td>") && html.contains(">active<"), "{html}");
    let id = keys[0].0.to_string();
    assert!(html.contains(&format!(r#"name="key" value="{id}""#)), "a Revoke button: {html}");
    // In German too.
    let res = app
        .client
        .get(app.url(&page(&owner.slug)))
        .header("cookie", jar.header())
        .header("accept-language", "de")
        .send()
        .await
        .unwrap();
    let german = res.text().await.unwrap();
    assert!(german.contains("API-Schlüssel") && german.contains("Widerrufen"), "{german}");

    // Revoke: back to the list, and the proxy refuses the key at once.
    let res =
        post_with_id(&app, &jar, &revoke_path(&owner.slug), "portal-revoke-1", &[("csrf", &csrf), ("key", &id)]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), format!("{}?revoked=1", page(&owner.slug)));
    assert_error(
        app.client.get(app.url("/app/x")).header("x-api-key", &key).send().await.unwrap(),
        401,
        "invalid_token",
    )
    .await;
    assert!(stored(&app, &owner).await[0].2);
    let (html, _) = open(&app, &mut jar, &location(&res), &host).await;
    assert!(html.contains("The key is revoked") && html.contains(">revoked<"), "{html}");
    assert!(!html.contains(&format!(r#"name="key" value="{id}""#)), "no button for a revoked key: {html}");

    // Audited by the API, under the portal request's id.
    assert_eq!(audited(&app, &owner, "api_key.created").await, [Some("portal-create-1".to_owned())]);
    assert_eq!(audited(&app, &owner, "api_key.revoked").await, [Some("portal-revoke-1".to_owned())]);

    // Never in the log.
    let logged = std::fs::read_to_string(log.path()).unwrap();
    assert!(logged.contains("API key created"), "the log is written");
    assert!(!logged.contains(&key[16..]), "the key's secret is in the gateway's log");
}

#[tokio::test]
async fn forged_forms_members_outsiders_and_visitors_change_nothing() {
    let (app, _log) = app_with_log().await;
    let owner = member(&app, "Guarded").await;
    mark_verified(&app, &owner.user_id).await;
    let (plain, outsider) = (member(&app, "Plain").await, member(&app, "Outsider").await);
    join(&app, &plain, &owner, Role::Member).await;
    let host = host(&app);
    let here = page(&owner.slug);

    // Signed out: to the login page, and back here after signing in.
    let res = app.client.get(app.url(&here)).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), format!("/auth/ui/login?return_to={}", here.replace('/', "%2F")));
    let mut jar = Jar::default();
    let res = portal_login(&app, &mut jar, &owner.email, &here).await;
    assert_eq!(location(&res), here);

    // A form without the page's token, or from another site, makes nothing.
    let (_, csrf) = open(&app, &mut jar, &here, &host).await;
    let fields = [("name", "sneaky"), ("role", "viewer"), ("expires", "never")];
    let res = post_form(&app, &jar, &here, &host, &app.base, &fields).await;
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("another site"));
    let zeros = "0".repeat(64);
    let wrong = [fields.as_slice(), &[("csrf", zeros.as_str())]].concat();
    assert_eq!(post_form(&app, &jar, &here, &host, &app.base, &wrong).await.status(), 403);
    let genuine = [fields.as_slice(), &[("csrf", csrf.as_str())]].concat();
    let res = post_form(&app, &jar, &here, &host, "https://evil.test", &genuine).await;
    assert_eq!(res.status(), 403);
    assert!(whole_keys(&res.text().await.unwrap()).is_empty());
    assert!(stored(&app, &owner).await.is_empty(), "a forged form made a key");
    // The same form, genuine, works (so the refusals above were the token's).
    let res = post_form(&app, &jar, &here, &host, &app.base, &genuine).await;
    assert_eq!(res.status(), 200);
    assert_eq!(stored(&app, &owner).await.len(), 1);
    let id = stored(&app, &owner).await[0].0.to_string();
    let res = post_form(&app, &jar, &revoke_path(&owner.slug), &host, &app.base, &[("key", id.as_str())]).await;
    assert_eq!(res.status(), 403);
    assert!(!stored(&app, &owner).await[0].2, "a forged form revoked a key");

    // A member: a refusal that says why, no form, and posts change nothing.
    let mut member_jar = signed_in(&app, &plain).await;
    let (tenants, member_csrf) = open(&app, &mut member_jar, "/auth/ui/tenants", &host).await;
    assert!(!tenants.contains(&attr(&here)), "no link for a member: {tenants}");
    assert!(tenants.contains(&attr(&page(&plain.slug))), "a link to their own tenant's keys: {tenants}");
    let (status, html) = fetch(&app, &member_jar, &here).await;
    assert_eq!(status, 403);
    assert!(html.contains("Only the owners and admins"), "{html}");
    assert!(!html.contains(r#"name="name""#) && !html.contains("<table"), "{html}");
    let form = [("csrf", member_csrf.as_str()), ("name", "mine"), ("role", "viewer"), ("expires", "30")];
    let res = post_form(&app, &member_jar, &here, &host, &app.base, &form).await;
    assert_eq!(res.status(), 403);
    let form = [("csrf", member_csrf.as_str()), ("key", id.as_str())];
    assert_eq!(post_form(&app, &member_jar, &revoke_path(&owner.slug), &host, &app.base, &form).await.status(), 403);
    let keys = stored(&app, &owner).await;
    assert_eq!((keys.len(), keys[0].2), (1, false), "a member changed keys: {keys:?}");

    // An outsider: the same 404 as a tenant that does not exist.
    let mut outsider_jar = signed_in(&app, &outsider).await;
    let (_, outsider_csrf) = open(&app, &mut outsider_jar, "/auth/ui/tenants", &host).await;
    let (status, foreign) = fetch(&app, &outsider_jar, &here).await;
    assert_eq!(status, 404);
    let (status, unknown) = fetch(&app, &outsider_jar, &page("no-such-tenant")).await;
    assert_eq!(status, 404);
    assert_eq!(foreign, unknown);
    let form = [("csrf", outsider_csrf.as_str()), ("name", "x"), ("role", "viewer"), ("expires", "30")];
    assert_eq!(post_form(&app, &outsider_jar, &here, &host, &app.base, &form).await.status(), 404);
    let form = [("csrf", outsider_csrf.as_str()), ("key", id.as_str())];
    let res = post_form(&app, &outsider_jar, &revoke_path(&owner.slug), &host, &app.base, &form).await;
    assert_eq!(res.status(), 404);
    let keys = stored(&app, &owner).await;
    assert_eq!((keys.len(), keys[0].2), (1, false), "an outsider changed keys: {keys:?}");
}

#[tokio::test]
async fn admins_cannot_reach_above_their_role_and_bad_input_keeps_the_form() {
    let (app, _log) = app_with_log().await;
    let owner = member(&app, "Ranked").await;
    let admin = member(&app, "Admin Own").await;
    mark_verified(&app, &owner.user_id).await;
    mark_verified(&app, &admin.user_id).await;
    join(&app, &admin, &owner, Role::Admin).await;
    let host = host(&app);
    let here = page(&owner.slug);
    let mut jar = signed_in(&app, &admin).await;

    // The picker links the admin to the page; the form offers no role above admin.
    let (tenants, _) = open(&app, &mut jar, "/auth/ui/tenants", &host).await;
    assert!(tenants.contains(&attr(&here)), "{tenants}");
    let (html, csrf) = open(&app, &mut jar, &here, &host).await;
    for role in ["viewer", "member", "admin"] {
        assert!(html.contains(&format!(r#"<option value="{role}""#)), "{role}: {html}");
    }
    assert!(!html.contains(r#"<option value="owner""#), "an admin is offered owner: {html}");

    // A forged owner key: the API's refusal on the page, the values kept.
    let form = [("csrf", csrf.as_str()), ("name", "Deploy bot"), ("role", "owner"), ("expires", "365")];
    let res = post_form(&app, &jar, &here, &host, &app.base, &form).await;
    assert_eq!(res.status(), 403);
    let html = res.text().await.unwrap();
    assert!(html.contains("cannot be above your own") && html.contains(r#"class="alert error""#), "{html}");
    assert!(html.contains(r#"value="Deploy bot""#) && html.contains(r#"<option value="365" selected>"#), "{html}");
    assert!(whole_keys(&html).is_empty());
    assert!(stored(&app, &owner).await.is_empty(), "an admin made an owner key");

    // An empty name: the API's refusal, the other values kept, nothing made.
    let form = [("csrf", csrf.as_str()), ("name", "   "), ("role", "admin"), ("expires", "never")];
    let res = post_form(&app, &jar, &here, &host, &app.base, &form).await;
    assert_eq!(res.status(), 400);
    let html = res.text().await.unwrap();
    assert!(html.contains("Give the key a name"), "{html}");
    assert!(html.contains(r#"<option value="admin" selected>"#), "{html}");
    assert!(html.contains(r#"<option value="never" selected>"#), "{html}");
    // A lifetime or role the form does not offer.
    for (role, expires) in [("admin", "7"), ("root", "30")] {
        let form = [("csrf", csrf.as_str()), ("name", "odd"), ("role", role), ("expires", expires)];
        let res = post_form(&app, &jar, &here, &host, &app.base, &form).await;
        assert_eq!(res.status(), 400, "{role} {expires}");
        assert!(res.text().await.unwrap().contains("Please check the form"));
    }
    assert!(stored(&app, &owner).await.is_empty());

    // The admin's own admin key works; an owner's key cannot be revoked by them.
    let form = [("csrf", csrf.as_str()), ("name", "Ops deploys"), ("role", "admin"), ("expires", "never")];
    let res = post_form(&app, &jar, &here, &host, &app.base, &form).await;
    assert_eq!(res.status(), 200);
    assert_eq!(whole_keys(&res.text().await.unwrap()).len(), 1);
    let made = app
        .client
        .post(app.url(&format!("/auth/tenants/{}/api-keys", owner.tenant_id)))
        .bearer_auth(&owner.token)
        .json(&serde_json::json!({"name": "Owner robot", "role": "owner"}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.unwrap();
    let owner_key_id = made["apiKey"]["id"].as_str().unwrap();
    let (html, _) = open(&app, &mut jar, &here, &host).await;
    assert!(html.contains("Owner robot") && html.contains("Ops deploys"), "{html}");
    assert!(!html.contains(&format!(r#"value="{owner_key_id}""#)), "a Revoke button above the admin's role: {html}");
    // Newest first.
    assert!(html.find("Owner robot").unwrap() < html.find("Ops deploys").unwrap(), "{html}");
    let form = [("csrf", csrf.as_str()), ("key", owner_key_id)];
    let res = post_form(&app, &jar, &revoke_path(&owner.slug), &host, &app.base, &form).await;
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("cannot revoke a key whose role is above your own"));
    let keys = stored(&app, &owner).await;
    assert!(keys.iter().all(|(_, _, revoked)| !revoked), "{keys:?}");
    // A key that does not exist.
    let form = [("csrf", csrf.as_str()), ("key", "5f0c0c4e-0000-4000-8000-000000000000")];
    let res = post_form(&app, &jar, &revoke_path(&owner.slug), &host, &app.base, &form).await;
    assert_eq!(res.status(), 404);
    assert!(res.text().await.unwrap().contains("no such key"));
}
