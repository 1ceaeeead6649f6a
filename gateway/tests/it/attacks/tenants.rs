//! Tenant conflicts: a request names one tenant, or it is refused; precedence
//! never decides, since the app may read another source.

use super::raw_request;
use crate::helpers::*;
use crate::proxy::member;

#[tokio::test]
async fn two_sources_naming_different_tenants_are_a_conflict() {
    let app = spawn_app_with(&[("GATEWAY_BASE_DOMAIN", "tenants.test")]).await;
    let a = member(&app, "Alpha").await;
    let b = member(&app, "Beta").await;
    // a is also a member of b, so every refusal below is about the conflict alone.
    let mut conn = app.db.pool().await.acquire().await.unwrap();
    shared::db::memberships::insert(
        &mut conn,
        a.user_id.parse().unwrap(),
        b.tenant_id.parse().unwrap(),
        shared::domain::Role::Viewer,
    )
    .await
    .unwrap();
    sqlx::query("UPDATE tenants SET domain = 'alpha.example' WHERE id = $1::uuid")
        .bind(&a.tenant_id)
        .execute(&app.db.pool().await)
        .await
        .unwrap();
    let bearer = format!("Bearer {}", a.token);
    let a_sub = format!("{}.tenants.test", a.slug);
    let cases: Vec<(String, Vec<(&str, &str)>)> = vec![
        (format!("/t/{}/app", a.slug), vec![("X-Tenant-Slug", b.slug.as_str())]),
        ("/app".into(), vec![("Host", a_sub.as_str()), ("X-Tenant-Id", b.tenant_id.as_str())]),
        ("/app".into(), vec![("Host", "alpha.example"), ("X-Tenant-Slug", b.slug.as_str())]),
        (format!("/t/{}/app", b.slug), vec![("Host", "alpha.example")]),
        ("/app".into(), vec![("X-Tenant-Id", a.tenant_id.as_str()), ("X-Tenant-Slug", b.slug.as_str())]),
        ("/app".into(), vec![("X-Tenant-Id", a.tenant_id.as_str()), ("X-Tenant-Id", b.tenant_id.as_str())]),
    ];
    for (path, extra) in cases {
        let mut headers = vec![("Authorization", bearer.as_str())];
        headers.extend(extra.iter().copied());
        let answer = raw_request(&app.base, "GET", &path, &headers).await;
        assert_eq!((answer.status, answer.error()), (400, Some("tenant_conflict")), "{path} {extra:?}: {answer:?}");
    }
    // Sources that agree are fine.
    let answer = raw_request(
        &app.base,
        "GET",
        &format!("/t/{}/app", a.slug),
        &[("Authorization", bearer.as_str()), ("Host", a_sub.as_str()), ("X-Tenant-Slug", a.slug.as_str())],
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["headers"]["x-tenant-id"], a.tenant_id.as_str());
}

#[tokio::test]
async fn without_a_base_domain_no_host_is_a_tenant_subdomain() {
    let routes = r#"
[[route]]
name = "app"
path_prefix = "/app"
upstreams = ["{upstream}"]
tenant = "required"
tenant_from = ["subdomain"]
"#;
    let app = spawn_gateway(routes, &[], None).await;
    let m = member(&app, "Acme").await;
    let host = format!("{}.anything.test", m.slug);
    let bearer = format!("Bearer {}", m.token);
    let answer =
        raw_request(&app.base, "GET", "/app", &[("Authorization", bearer.as_str()), ("Host", host.as_str())]).await;
    assert_eq!((answer.status, answer.error()), (400, Some("tenant_required")), "{answer:?}");
}
