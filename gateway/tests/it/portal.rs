//! The login portal and browser sessions through the real gateway: redirects for
//! browsers and 401 JSON for APIs, cookie attributes, open-redirect and CSRF
//! refusals, silent refresh with rotation and reuse detection, the tenant
//! picker, logout.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::helpers::*;

/// `/web` is a browser app (redirects to the login page, tenant by header or
/// path), `/api` an API (default: redirect only for `Accept: text/html`), `/paths`
/// resolves tenants by `/t/{slug}/` only, `/open` takes anyone.
pub const PORTAL_ROUTES: &str = r#"
[[route]]
name = "web"
path_prefix = "/web"
upstreams = ["{upstream}"]
auth = "required"
tenant = "required"
tenant_from = ["header", "path"]
min_role = "viewer"
on_unauthenticated = "redirect"

[[route]]
name = "api"
path_prefix = "/api"
upstreams = ["{upstream}"]
auth = "required"
tenant = "required"
tenant_from = ["header"]
min_role = "viewer"

[[route]]
name = "paths"
path_prefix = "/paths"
upstreams = ["{upstream}"]
auth = "required"
tenant = "required"
tenant_from = ["path"]
min_role = "viewer"

[[route]]
name = "open"
path_prefix = "/open"
upstreams = ["{upstream}"]
auth = "optional"
tenant = "none"
"#;

/// A gateway with [`PORTAL_ROUTES`], generous login limits, and `extra`.
pub async fn portal_app(extra: &[(&str, &str)]) -> TestApp {
    let mut env = vec![("RATE_LIMIT_MAX", "1000")];
    env.extend_from_slice(extra);
    spawn_gateway(PORTAL_ROUTES, &env, None).await
}

/// The cookies a browser would hold, from `Set-Cookie` answers.
#[derive(Debug, Default, Clone)]
pub struct Jar(pub BTreeMap<String, String>);

impl Jar {
    /// Takes in every `Set-Cookie` of `res` (a `Max-Age=0` one deletes).
    pub fn absorb(&mut self, res: &reqwest::Response) {
        for line in set_cookies(res) {
            let (pair, attrs) = line.split_once(';').unwrap_or((&line, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.0.remove(name.trim());
            } else {
                self.0.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    pub fn header(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

pub fn set_cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect()
}

pub fn location(res: &reqwest::Response) -> String {
    res.headers().get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

/// The value of the hidden `csrf` input of a page.
fn csrf_field(html: &str) -> String {
    let start = html.find(r#"name="csrf" value=""#).expect("csrf field") + r#"name="csrf" value=""#.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// Opens `page` (as a browser with `jar`, on `host`); returns the body and the
/// form's CSRF token, keeping the CSRF cookie in `jar`.
pub async fn open(app: &TestApp, jar: &mut Jar, page: &str, host: &str) -> (String, String) {
    let res = app.client.get(app.url(page)).header("host", host).header("cookie", jar.header()).send().await.unwrap();
    assert_eq!(res.status(), 200, "{page}");
    jar.absorb(&res);
    let html = res.text().await.unwrap();
    let csrf = csrf_field(&html);
    (html, csrf)
}

/// Posts a portal form from `origin` with the browser's cookies.
pub async fn post_form(
    app: &TestApp,
    jar: &Jar,
    path: &str,
    host: &str,
    origin: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("host", host)
        .header("origin", origin)
        .header("cookie", jar.header())
        .form(form)
        .send()
        .await
        .unwrap()
}

/// Signs in through the portal with `return_to`; returns the answer (cookies
/// absorbed into `jar`).
pub async fn portal_login(app: &TestApp, jar: &mut Jar, email: &str, return_to: &str) -> reqwest::Response {
    let host = app.base.trim_start_matches("http://").to_owned();
    let (_, csrf) = open(app, jar, "/auth/ui/login", &host).await;
    let form = [("email", email), ("password", PASSWORD), ("csrf", &csrf), ("return_to", return_to)];
    let res = post_form(app, jar, "/auth/ui/login", &host, &app.base, &form).await;
    jar.absorb(&res);
    res
}

/// A GET through the proxy as a browser (HTML first) with `jar`.
async fn browse(app: &TestApp, jar: &Jar, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn browsers_are_sent_to_the_login_page_and_apis_get_401_json() {
    let app = portal_app(&[]).await;
    // The route says redirect: whatever the Accept header.
    let res = app.client.get(app.url("/web/page?x=1")).header("accept", "application/json").send().await.unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(location(&res), "/auth/ui/login?return_to=%2Fweb%2Fpage%3Fx%3D1");

    // The default: 401 JSON for API clients, the redirect for browsers.
    let res = app.client.get(app.url("/api/things")).header("accept", "application/json").send().await.unwrap();
    assert_error(res, 401, "missing_token").await;
    assert_error(app.client.get(app.url("/api/things")).send().await.unwrap(), 401, "missing_token").await;
    let res = browse(&app, &Jar::default(), "/api/things").await;
    assert_eq!(res.status(), 302);
    assert!(location(&res).starts_with("/auth/ui/login?return_to="));

    // A bearer request is an API request even from a browser.
    let res = app
        .client
        .get(app.url("/web/page"))
        .header("accept", "text/html")
        .bearer_auth("not-a-jwt")
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "invalid_token").await;

    // The login page itself: a real form with the fields password managers expect.
    let res = app.client.get(app.url("/auth/ui/login?return_to=%2Fweb%2Fpage")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = res.text().await.unwrap();
    for needle in [
        r#"<input id="email" name="email" type="email" autocomplete="username""#,
        r#"name="password" type="password" autocomplete="current-password""#,
        r#"<label for="password">"#,
        // minijinja escapes `/` in attribute values; browsers read it back as `/`.
        r#"name="return_to" value="&#x2f;web&#x2f;page""#,
    ] {
        assert!(html.contains(needle), "login page lacks {needle}");
    }
}

#[tokio::test]
async fn login_sets_httponly_secure_lax_cookies_on_the_base_domain() {
    let app = portal_app(&[("GATEWAY_BASE_DOMAIN", "tenants.test")]).await;
    let email = unique_email();
    app.register(&email, Some("Acme")).await;
    let mut jar = Jar::default();
    let host = "app.tenants.test";
    let (_, csrf) = open(&app, &mut jar, "/auth/ui/login", host).await;
    let form = [("email", email.as_str()), ("password", PASSWORD), ("csrf", &csrf), ("return_to", "/web/home")];
    let res = post_form(&app, &jar, "/auth/ui/login", host, "http://app.tenants.test", &form).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/web/home");
    let cookies = set_cookies(&res);
    for name in ["tg_access=", "tg_refresh=", "tg_tenant=acme"] {
        let cookie = cookies.iter().find(|c| c.starts_with(name)).unwrap_or_else(|| panic!("no {name} in {cookies:?}"));
        for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/", "Domain=tenants.test", "Max-Age="] {
            assert!(cookie.contains(attr), "{cookie} lacks {attr}");
        }
    }
    let access = cookies.iter().find(|c| c.starts_with("tg_access=")).unwrap();
    assert!(access.contains("Max-Age=900"), "the access cookie lives as long as its token: {access}");

    // The cookies authenticate proxied requests; the remembered tenant fills in for
    // the missing X-Tenant-* header; the gateway's cookies stay at the edge.
    jar.absorb(&res);
    let res = browse(&app, &jar, "/web/home").await;
    assert_eq!(res.status(), 200);
    let echo: Value = res.json().await.unwrap();
    assert_eq!(echo["headers"]["x-user-email"], email.as_str(), "{echo}");
    assert_eq!(echo["headers"]["x-tenant-slug"], "acme");
    let forwarded = echo["headers"]["cookie"].as_str().unwrap_or("");
    assert!(!forwarded.contains("tg_access") && !forwarded.contains("tg_refresh"), "{forwarded}");

    // Secure can be turned off for local plain-HTTP setups.
    let local = portal_app(&[("GATEWAY_COOKIE_SECURE", "false")]).await;
    let email = unique_email();
    local.register(&email, None).await;
    let res = portal_login(&local, &mut Jar::default(), &email, "/").await;
    assert_eq!(res.status(), 303);
    assert!(
        set_cookies(&res).iter().all(|c| !c.contains("Secure") && !c.contains("Domain")),
        "{:?}",
        set_cookies(&res)
    );
}

#[tokio::test]
async fn return_urls_to_other_sites_are_refused() {
    let app = portal_app(&[("GATEWAY_BASE_DOMAIN", "tenants.test"), ("GATEWAY_TRUSTED_DOMAINS", "partner.test")]).await;
    let email = unique_email();
    app.register(&email, None).await;
    for evil in [
        "https://evil.test/",
        "http://evil.test",
        "//evil.test",
        "///evil.test",
        "/\\evil.test",
        "\\\\evil.test",
        "https:evil.test",
        "https:/evil.test",
        "%2F%2Fevil.test",
        "/%2F%2Fevil.test",
        "/%2Fevil.test",
        "/%5Cevil.test",
        "%252F%252Fevil.test",
        "/\t/evil.test",
        "https://tenants.test@evil.test/",
        "https://eviltenants.test/",
        "javascript:alert(1)",
    ] {
        let res = portal_login(&app, &mut Jar::default(), &email, evil).await;
        assert_eq!(res.status(), 303, "{evil:?}");
        assert_eq!(location(&res), "/", "return_to {evil:?} was honoured");
        // The page does not carry it into its form either.
        let page = app.client.get(app.url("/auth/ui/login")).query(&[("return_to", evil)]).send().await.unwrap();
        assert!(page.text().await.unwrap().contains(r#"name="return_to" value="&#x2f;""#), "{evil:?}");
    }
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    for good in [
        "/web/ok?x=1".to_owned(),
        format!("http://127.0.0.1:{port}/web"),
        "https://acme.tenants.test/web".to_owned(),
        "https://www.partner.test/back".to_owned(),
    ] {
        let res = portal_login(&app, &mut Jar::default(), &email, &good).await;
        assert_eq!(location(&res), good);
    }
}

#[tokio::test]
async fn cross_site_writes_with_the_session_cookie_are_refused() {
    let app = portal_app(&[]).await;
    let email = unique_email();
    let reg = app.register(&email, None).await;
    let mut jar = Jar::default();
    portal_login(&app, &mut jar, &email, "/").await;
    let post = |origin: Option<&str>| {
        let mut req = app.client.post(app.url("/web/transfer")).header("cookie", jar.header()).body("amount=1");
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    let refused = assert_error(post(Some("https://evil.test")).await.unwrap(), 403, "csrf_rejected").await;
    assert!(refused["message"].as_str().unwrap().contains("Origin"), "{refused}");
    assert_error(post(None).await.unwrap(), 403, "csrf_rejected").await;
    assert_error(post(Some("null")).await.unwrap(), 403, "csrf_rejected").await;
    assert_eq!(post(Some(&app.base)).await.unwrap().status(), 200);
    // A Referer from this site stands in for a missing Origin.
    let res = app
        .client
        .post(app.url("/web/transfer"))
        .header("cookie", jar.header())
        .header("referer", format!("{}/web/form", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Bearer requests are not cookie-authenticated: no Origin needed.
    let token = reg["accessToken"].as_str().unwrap();
    let tenant = reg["tenants"][0]["id"].as_str().unwrap();
    let res = app
        .client
        .post(app.url("/web/transfer"))
        .bearer_auth(token)
        .header("x-tenant-id", tenant)
        .header("origin", "https://evil.test")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // The portal's own forms: a foreign Origin, or a right Origin without the
    // form's token, is refused with a page that says why.
    let host = app.base.trim_start_matches("http://").to_owned();
    let (_, csrf) = open(&app, &mut jar, "/auth/ui/logout", &host).await;
    let res = post_form(&app, &jar, "/auth/ui/logout", &host, "https://evil.test", &[("csrf", &csrf)]).await;
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("another site"));
    let res = post_form(&app, &jar, "/auth/ui/logout", &host, &app.base, &[("csrf", "0".repeat(64).as_str())]).await;
    assert_eq!(res.status(), 403);
    // Still signed in.
    assert_eq!(browse(&app, &jar, "/web/x").await.status(), 200);
}

#[tokio::test]
async fn an_expired_access_cookie_is_refreshed_on_the_fly_and_reuse_is_detected() {
    let app = portal_app(&[("GATEWAY_REFRESH_GRACE", "0s")]).await;
    let email = unique_email();
    app.register(&email, None).await;
    let mut jar = Jar::default();
    portal_login(&app, &mut jar, &email, "/").await;
    let first_refresh = jar.get("tg_refresh").unwrap().to_owned();

    // The browser dropped the access cookie when it expired (Max-Age): the
    // request goes through and the answer carries a rotated pair.
    let access = jar.0.remove("tg_access").unwrap();
    let res = browse(&app, &jar, "/web/page").await;
    assert_eq!(res.status(), 200);
    jar.absorb(&res);
    let echo: Value = res.json().await.unwrap();
    assert_eq!(echo["headers"]["x-user-email"], email.as_str());
    let second_refresh = jar.get("tg_refresh").unwrap().to_owned();
    assert_ne!(first_refresh, second_refresh, "the refresh cookie rotates");
    assert!(jar.get("tg_access").is_some());

    // On an optional route too: an expired browser session is refreshed, not
    // downgraded to anonymous.
    jar.0.remove("tg_access");
    let res = browse(&app, &jar, "/open/x").await;
    assert_eq!(res.status(), 200);
    jar.absorb(&res);
    let echo: Value = res.json().await.unwrap();
    assert_eq!(echo["headers"]["x-user-email"], email.as_str(), "{echo}");

    // A cookie whose token has expired is refreshed the same way.
    let expired =
        crate::auth_api::reissue(&access, |c| c["exp"] = serde_json::json!(chrono::Utc::now().timestamp() - 120));
    jar.0.insert("tg_access".into(), expired);
    let res = browse(&app, &jar, "/web/page").await;
    assert_eq!(res.status(), 200);
    jar.absorb(&res);
    assert_ne!(jar.get("tg_refresh").unwrap(), second_refresh);

    // A rotated refresh cookie presented again is reuse: the family is revoked,
    // the browser goes back to the login page with its cookies cleared, and the
    // newest cookie stops working too.
    let mut stale = Jar::default();
    stale.0.insert("tg_refresh".into(), first_refresh);
    let res = browse(&app, &stale, "/web/page").await;
    assert_eq!(res.status(), 302);
    assert!(location(&res).starts_with("/auth/ui/login"));
    assert!(
        set_cookies(&res).iter().any(|c| c.starts_with("tg_refresh=;") && c.contains("Max-Age=0")),
        "{:?}",
        set_cookies(&res)
    );
    let (reuse,): (i64,) = sqlx::query_as("SELECT count(*) FROM audit_log WHERE action = 'session.reuse_detected'")
        .fetch_one(&app.db.pool().await)
        .await
        .unwrap();
    assert_eq!(reuse, 1);
    jar.0.remove("tg_access");
    let res = app
        .client
        .get(app.url("/api/x"))
        .header("accept", "application/json")
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "invalid_token").await;
}

#[tokio::test]
async fn parallel_requests_with_one_expired_session_share_one_rotation() {
    let app = portal_app(&[]).await;
    let email = unique_email();
    app.register(&email, None).await;
    let mut jar = Jar::default();
    portal_login(&app, &mut jar, &email, "/").await;
    jar.0.remove("tg_access");
    let requests = (0..4).map(|i| browse(&app, &jar, if i % 2 == 0 { "/web/a" } else { "/web/b" }));
    let answers = futures::future::join_all(requests).await;
    let mut refreshed = std::collections::BTreeSet::new();
    for res in &answers {
        assert_eq!(res.status(), 200);
        let mut own = Jar::default();
        own.absorb(res);
        refreshed.insert(own.get("tg_refresh").unwrap().to_owned());
    }
    assert_eq!(refreshed.len(), 1, "one rotation, shared");
    let (reuse,): (i64,) = sqlx::query_as("SELECT count(*) FROM audit_log WHERE action = 'session.reuse_detected'")
        .fetch_one(&app.db.pool().await)
        .await
        .unwrap();
    assert_eq!(reuse, 0);
}

/// [`browse`] as a given client: its user agent, and its address as the trusted
/// local proxy forwards it.
async fn browse_as(app: &TestApp, jar: &Jar, path: &str, (user_agent, ip): (&str, &str)) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .header("cookie", jar.header())
        .header("user-agent", user_agent)
        .header("x-forwarded-for", ip)
        .send()
        .await
        .unwrap()
}

async fn reuse_detected(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'session.reuse_detected'")
        .fetch_one(&app.db.pool().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_grace_window_serves_only_the_client_that_rotated_and_anyone_else_is_reuse() {
    let app = portal_app(&[("GATEWAY_TRUSTED_PROXIES", "127.0.0.1/32"), ("GATEWAY_REFRESH_GRACE", "30s")]).await;
    let email = unique_email();
    app.register(&email, None).await;
    let browser = ("Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0", "203.0.113.5");
    let thieves = [("curl/8.5.0", "203.0.113.5"), ("Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0", "198.51.100.9")];
    for (n, thief) in thieves.into_iter().enumerate() {
        let mut jar = Jar::default();
        portal_login(&app, &mut jar, &email, "/").await;
        jar.0.remove("tg_access");
        let spent = jar.clone();
        let res = browse_as(&app, &jar, "/web/a", browser).await;
        assert_eq!(res.status(), 200);
        jar.absorb(&res);
        // The same browser again, from another address of its network: its twin
        // request gets the same new pair.
        let twin = browse_as(&app, &spent, "/web/b", (browser.0, "203.0.113.77")).await;
        assert_eq!(twin.status(), 200);
        let mut twin_jar = Jar::default();
        twin_jar.absorb(&twin);
        assert_eq!(twin_jar.get("tg_refresh"), jar.get("tg_refresh"));
        assert_eq!(reuse_detected(&app).await, n as i64);

        // Another client with the spent cookie inside the window: reuse, and the
        // whole family ends, the rotated session included.
        let stolen = browse_as(&app, &spent, "/web/a", thief).await;
        assert_eq!(stolen.status(), 302, "{thief:?}");
        assert_eq!(reuse_detected(&app).await, n as i64 + 1, "{thief:?}");
        let mut after = jar.clone();
        after.0.remove("tg_access");
        assert_eq!(browse_as(&app, &after, "/web/a", browser).await.status(), 302, "the family is revoked");
    }
}

#[tokio::test]
async fn users_with_several_tenants_pick_one_and_it_is_remembered() {
    let app = portal_app(&[]).await;
    let email = unique_email();
    let alpha = app.register(&email, Some("Alpha")).await;
    let beta = app.register(&unique_email(), Some("Beta")).await;
    sqlx::query("INSERT INTO user_tenant_roles (user_id, tenant_id, role) VALUES ($1::uuid, $2::uuid, 'member')")
        .bind(alpha["user"]["id"].as_str().unwrap())
        .bind(beta["tenants"][0]["id"].as_str().unwrap())
        .execute(&app.db.pool().await)
        .await
        .unwrap();

    let mut jar = Jar::default();
    let res = portal_login(&app, &mut jar, &email, "/web/home").await;
    assert_eq!(location(&res), "/auth/ui/tenants?return_to=%2Fweb%2Fhome");
    assert!(jar.get("tg_tenant").is_none());
    let host = app.base.trim_start_matches("http://").to_owned();
    let (html, csrf) = open(&app, &mut jar, "/auth/ui/tenants?return_to=%2Fweb%2Fhome", &host).await;
    assert!(html.contains(r#"value="alpha""#) && html.contains(r#"value="beta""#), "{html}");

    let form = [("tenant", "beta"), ("return_to", "/web/home"), ("csrf", csrf.as_str())];
    let res = post_form(&app, &jar, "/auth/ui/tenants", &host, &app.base, &form).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/web/home");
    jar.absorb(&res);
    assert_eq!(jar.get("tg_tenant"), Some("beta"));
    let echo: Value = browse(&app, &jar, "/web/home").await.json().await.unwrap();
    assert_eq!(echo["headers"]["x-tenant-slug"], "beta");
    assert_eq!(echo["headers"]["x-tenant-role"], "member");
    // An explicit tenant still wins over the remembered one.
    let echo: Value = browse(&app, &jar, "/t/alpha/web/home").await.json().await.unwrap();
    assert_eq!(echo["headers"]["x-tenant-slug"], "alpha");
    // A path-mode route sends the browser to the remembered tenant's path.
    let res = browse(&app, &jar, "/paths/report?y=2").await;
    assert_eq!(res.status(), 302);
    assert_eq!(location(&res), "/t/beta/paths/report?y=2");
    // A tenant the user is not a member of cannot be chosen.
    let form = [("tenant", "nobody"), ("return_to", "/web/home"), ("csrf", csrf.as_str())];
    let res = post_form(&app, &jar, "/auth/ui/tenants", &host, &app.base, &form).await;
    assert!(location(&res).starts_with("/auth/ui/tenants"));
    assert!(set_cookies(&res).iter().all(|c| !c.starts_with("tg_tenant=")));
}

#[tokio::test]
async fn logout_clears_the_cookies_and_revokes_the_session() {
    let app = portal_app(&[]).await;
    let email = unique_email();
    app.register(&email, None).await;
    let mut jar = Jar::default();
    portal_login(&app, &mut jar, &email, "/").await;
    let refresh = jar.get("tg_refresh").unwrap().to_owned();
    let host = app.base.trim_start_matches("http://").to_owned();
    let (_, csrf) = open(&app, &mut jar, "/auth/ui/logout", &host).await;
    let res = post_form(&app, &jar, "/auth/ui/logout", &host, &app.base, &[("csrf", &csrf)]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/auth/ui/login?signed_out=1");
    let cleared: Vec<String> = set_cookies(&res).into_iter().filter(|c| c.contains("Max-Age=0")).collect();
    for name in ["tg_access=;", "tg_refresh=;", "tg_tenant=;"] {
        assert!(cleared.iter().any(|c| c.starts_with(name)), "{name} not cleared: {cleared:?}");
    }
    let res = app.post_json("/auth/refresh", &serde_json::json!({"refreshToken": refresh})).await;
    assert_error(res, 401, "invalid_token").await;
    let mut stale = Jar::default();
    stale.0.insert("tg_refresh".into(), refresh);
    assert_eq!(browse(&app, &stale, "/web/x").await.status(), 302);
}

#[tokio::test]
async fn pages_render_in_the_browser_language_with_the_configured_brand() {
    let app = portal_app(&[("PORTAL_PRODUCT_NAME", "Acme Cloud"), ("PORTAL_PRIMARY_COLOR", "#0a7d5a")]).await;
    for page in [
        "/auth/ui/login",
        "/auth/ui/register",
        "/auth/ui/forgot",
        "/auth/ui/reset?token=x",
        "/auth/ui/verified?token=x",
        "/auth/ui/invitation?token=x",
        "/auth/ui/logout",
    ] {
        let res =
            app.client.get(app.url(page)).header("accept-language", "de-DE,de;q=0.9,en;q=0.5").send().await.unwrap();
        assert_eq!(res.status(), 200, "{page}");
        assert_eq!(res.headers()["cache-control"], "no-store");
        let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("form-action 'self'"), "{csp}");
        let html = res.text().await.unwrap();
        assert!(
            html.contains(r#"<html lang="de">"#) && html.contains("Acme Cloud") && html.contains("#0a7d5a"),
            "{page}"
        );
    }
    let html = app.client.get(app.url("/auth/ui/register?lang=en")).send().await.unwrap().text().await.unwrap();
    for needle in [
        r#"name="name" type="text" autocomplete="name""#,
        r#"name="email" type="email" autocomplete="email""#,
        r#"autocomplete="new-password""#,
    ] {
        assert!(html.contains(needle), "register lacks {needle}");
    }
    // Errors are pages too, and the forgot form never says whether an account exists.
    let mut jar = Jar::default();
    let host = app.base.trim_start_matches("http://").to_owned();
    let (_, csrf) = open(&app, &mut jar, "/auth/ui/forgot", &host).await;
    let known = unique_email();
    app.register(&known, None).await;
    let mut bodies = Vec::new();
    for email in [known.as_str(), "nobody@example.test"] {
        let res =
            post_form(&app, &jar, "/auth/ui/forgot", &host, &app.base, &[("email", email), ("csrf", &csrf)]).await;
        assert_eq!(res.status(), 200);
        bodies.push(res.text().await.unwrap());
    }
    assert_eq!(bodies[0], bodies[1]);
    let (_, csrf) = open(&app, &mut jar, "/auth/ui/login", &host).await;
    let form = [("email", known.as_str()), ("password", "wrong password!"), ("csrf", &csrf)];
    let res = post_form(&app, &jar, "/auth/ui/login", &host, &app.base, &form).await;
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("Email or password is incorrect"));
    assert_eq!(app.client.get(app.url("/auth/ui/nope")).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn logout_all_through_the_api_ends_browser_sessions_too() {
    let app = portal_app(&[]).await;
    let email = unique_email();
    app.register(&email, None).await;
    let mut browser = Jar::default();
    portal_login(&app, &mut browser, &email, "/").await;
    assert_eq!(browse(&app, &browser, "/web/x").await.status(), 200);

    let api: Value = app.login(&email, PASSWORD).await.json().await.unwrap();
    assert_eq!(app.post_bearer("/auth/logout-all", api["accessToken"].as_str().unwrap()).await.status(), 204);

    // The access cookie's token is revoked and its refresh session is gone: the
    // browser is sent to the login page and its cookies are cleared.
    let res = browse(&app, &browser, "/web/x").await;
    assert_eq!(res.status(), 302);
    assert!(location(&res).starts_with("/auth/ui/login"));
    assert!(set_cookies(&res).iter().any(|c| c.starts_with("tg_refresh=;")), "{:?}", set_cookies(&res));
}
