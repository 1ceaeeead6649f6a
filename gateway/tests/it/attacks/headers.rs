//! Header spellings and forwarding headers: nothing a client sends may become an
//! identity, a host, a path, a method or a client address the app believes.

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
name = "public"
path_prefix = "/public"
upstreams = ["{decoding}"]
auth = "none"
"#;

#[tokio::test]
async fn no_spelling_of_an_identity_header_reaches_a_cgi_app() {
    let s = setup(ROUTES, &[]).await;
    let bearer = format!("Bearer {}", s.viewer.token);
    let tenant = s.owner.tenant_id.clone();
    let spoofs = [
        ("X_User_Id", "00000000-0000-0000-0000-000000000000"),
        ("x.user.email", "ceo@victim.test"),
        ("X-Tenant-Role", "owner"),
        ("X_TENANT_ROLE", "owner"),
        ("x~tenant~slug", "victim"),
        ("X-Auth-Request-Email", "ceo@victim.test"),
        ("Remote_User", "root"),
        ("X-Tenantgate-Assertion", "forged"),
    ];
    let mut headers = vec![("Authorization", bearer.as_str()), ("X-Tenant-Id", tenant.as_str())];
    headers.extend(spoofs);
    let answer = raw_request(&s.app.base, "GET", "/page", &headers).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let cgi = &answer.body["cgi"];
    assert_eq!(cgi["HTTP_X_USER_ID"], s.viewer.user_id.as_str(), "{cgi}");
    assert_eq!(cgi["HTTP_X_USER_EMAIL"], s.viewer.email.as_str());
    assert_eq!(cgi["HTTP_X_USER_EMAIL_VERIFIED"], "false");
    assert_eq!(cgi["HTTP_X_TENANT_ROLE"], "viewer");
    assert_eq!(cgi["HTTP_X_TENANT_SLUG"], s.owner.slug.as_str());
    for var in ["HTTP_X_AUTH_REQUEST_EMAIL", "HTTP_REMOTE_USER", "HTTP_X_TENANTGATE_ASSERTION"] {
        assert!(cgi.get(var).is_none(), "{var} reached the app: {cgi}");
    }
    let names: Vec<String> =
        answer.body["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_owned()).collect();
    assert!(names.iter().all(|n| !n.contains('_') && !n.contains('.') && !n.contains('~')), "{names:?}");

    // Each attempt is counted under the canonical name it imitated.
    let count = |header: &str| {
        let series = format!("tenantgate_spoofed_headers_total{{header=\"{header}\"}}");
        let app = &s.app;
        async move { app.metric(&series).await }
    };
    assert_eq!(count("x-tenant-role").await, 2.0);
    assert_eq!(count("x-user-id").await, 1.0);
    assert_eq!(count("x-auth-*").await, 1.0);
    assert_eq!(count("remote-user").await, 1.0);
    // The tenant header this route reads is input, not an attempt.
    assert_eq!(count("x-tenant-id").await, 0.0);

    // Anonymous route: stripped as well, nothing injected.
    let answer = raw_request(&s.app.base, "GET", "/public/x", &spoofs).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let cgi = &answer.body["cgi"];
    for var in ["HTTP_X_USER_ID", "HTTP_X_USER_EMAIL", "HTTP_X_TENANT_ROLE", "HTTP_X_TENANT_SLUG", "HTTP_REMOTE_USER"] {
        assert!(cgi.get(var).is_none(), "{var} reached the app: {cgi}");
    }
    // Tenant headers on a route that does not read them are spoofs too.
    let answer = raw_request(&s.app.base, "GET", "/public/x", &[("X-Tenant-Id", tenant.as_str())]).await;
    assert!(answer.body["cgi"].get("HTTP_X_TENANT_ID").is_none());
    assert_eq!(count("x-tenant-id").await, 1.0);
}

const OVERRIDES: [(&str, &str); 10] = [
    ("X-Forwarded-Host", "evil.test"),
    ("X-Forwarded-Prefix", "/admin"),
    ("Forwarded", "for=6.6.6.6;host=evil.test;proto=https"),
    ("X-Real-IP", "6.6.6.6"),
    ("X-Original-URL", "/admin"),
    ("X-Rewrite-URL", "/admin"),
    ("X-HTTP-Method-Override", "DELETE"),
    ("True-Client-IP", "6.6.6.6"),
    ("X-Forwarded-For", "6.6.6.6"),
    ("X-Forwarded-Proto", "https"),
];

#[tokio::test]
async fn forwarding_headers_from_a_client_are_dropped_and_replaced() {
    let s = setup(ROUTES, &[]).await;
    let mut headers = OVERRIDES.to_vec();
    headers.push(("X_Forwarded_Host", "evil.test"));
    let answer = raw_request(&s.app.base, "GET", "/public/x", &headers).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let h = &answer.body["headers"];
    for (name, _) in OVERRIDES.iter().take(8) {
        assert!(h.get(name.to_ascii_lowercase()).is_none(), "{name} reached the app: {h}");
    }
    assert!(answer.body["cgi"].get("HTTP_X_FORWARDED_HOST").is_none(), "{h}");
    // Replaced, not appended to: the client cannot choose its address or scheme.
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    let spoofed = s.app.metric("tenantgate_spoofed_headers_total{header=\"x-forwarded-host\"}").await;
    assert_eq!(spoofed, 2.0);
}

#[tokio::test]
async fn a_trusted_proxy_keeps_its_forwarding_headers_and_names_the_client() {
    let s = setup(ROUTES, &[("GATEWAY_TRUSTED_PROXIES", "127.0.0.1/32, 10.0.0.0/8")]).await;
    let headers = [
        ("X-Forwarded-For", "6.6.6.6, 203.0.113.9, 10.1.2.3"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "app.example.test"),
        ("X_Forwarded_Host", "evil.test"),
    ];
    let answer = raw_request(&s.app.base, "GET", "/public/x", &headers).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let h = &answer.body["headers"];
    assert_eq!(h["x-forwarded-for"], "6.6.6.6, 203.0.113.9, 10.1.2.3, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-host"], "app.example.test", "the real header stays; its look-alike does not");
    assert_eq!(answer.body["cgi"]["HTTP_X_FORWARDED_HOST"], "app.example.test");
}

#[tokio::test]
async fn rate_limits_count_the_client_a_trusted_proxy_names_and_ipv6_per_64() {
    let routes = r#"
[[route]]
name = "limited"
path_prefix = "/limited"
upstreams = ["{decoding}"]
auth = "none"
rate_limit = { requests = 1, window = "1m", key = "ip" }
"#;
    let s = setup(routes, &[("GATEWAY_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let from = |client: &'static str| {
        let base = s.app.base.clone();
        async move { raw_request(&base, "GET", "/limited", &[("X-Forwarded-For", client)]).await.status }
    };
    // The limiter appears with the control plane's first refresh.
    let mut limited = false;
    for _ in 0..50 {
        if from("198.51.100.1").await == 429 {
            limited = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(limited, "never limited");
    assert_eq!(from("198.51.100.2").await, 200, "another client has its own budget");
    assert_eq!(from("2001:db8:1:2::1").await, 200);
    assert_eq!(from("2001:db8:1:2:ffff::9").await, 429, "the same /64 shares one budget");
    assert_eq!(from("2001:db8:1:3::1").await, 200);
}
