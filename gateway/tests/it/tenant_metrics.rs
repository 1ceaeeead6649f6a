//! The `tenant` label of the request and refusal metrics: the busiest tenants
//! keep their slug, the others are `other`, requests without a tenant empty;
//! only tenants that exist ever get a label.

use std::time::Duration;

use crate::helpers::*;
use crate::proxy::{get, member};

#[tokio::test]
async fn the_busiest_tenant_keeps_its_slug_and_the_rest_count_as_other() {
    let app = spawn_app_with(&[("METRICS_TENANT_LABELS", "1")]).await;
    let busy = member(&app, "Busy Corp").await;
    let quiet = member(&app, "Quiet Corp").await;
    let busy_h = [("x-tenant-id", busy.tenant_id.as_str())];
    let quiet_h = [("x-tenant-id", quiet.tenant_id.as_str())];
    let series =
        |t: &str| format!(r#"tenantgate_http_requests_total{{method="GET",route="app",status="200",tenant="{t}"}}"#);

    // Until the busy tenant is ranked (the first ranking comes 10 s after start),
    // its traffic is `other`; then it has its slug, and the quiet one stays `other`.
    let ranked = app
        .eventually(Duration::from_secs(30), || async {
            for _ in 0..5 {
                assert_eq!(get(&app, "/app/x", Some(&busy.token), &busy_h).await.0, 200);
            }
            app.metric(&series(&busy.slug)).await > 0.0
        })
        .await;
    assert!(ranked, "the busy tenant got its own label");
    assert_eq!(get(&app, "/app/x", Some(&quiet.token), &quiet_h).await.0, 200);
    assert!(app.metric(&series("other")).await >= 1.0);
    assert_eq!(app.metric(&series(&quiet.slug)).await, 0.0, "past the limit: other");

    // Refusals: a member of another tenant is counted under the tenant asked for
    // (it exists); an unknown tenant never becomes a label.
    let (status, _) = get(&app, "/app/x", Some(&quiet.token), &busy_h).await;
    assert_eq!(status, 403);
    let refused = format!(r#"tenantgate_auth_failures_total{{reason="not_a_member",tenant="{}"}}"#, busy.slug);
    assert_eq!(app.metric(&refused).await, 1.0);
    let (status, _) = get(&app, "/app/x", Some(&quiet.token), &[("x-tenant-slug", "no-such-tenant")]).await;
    assert_eq!(status, 404);
    let text = app.client.get(format!("{}/metrics", app.admin)).send().await.unwrap().text().await.unwrap();
    assert!(!text.contains("no-such-tenant"), "a made-up slug never becomes a label");
    let none = r#"tenantgate_http_requests_total{method="POST",route="auth-api",status="201",tenant=""}"#;
    assert!(app.metric(none).await >= 2.0, "the API's requests name no tenant");
}
