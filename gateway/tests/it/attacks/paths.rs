//! Path tricks: a viewer tries to reach an owner-only route through every
//! spelling a server behind the gateway could read as that route.

use serde_json::Value;

use super::{raw_request, DecodingUpstream, RawAnswer};
use crate::helpers::*;
use crate::proxy::{member, Member};

/// `/admin` needs an owner, everything else a viewer; `/objects` keeps encoded
/// slashes (an object store); `/Exact` is case-sensitive.
const ROUTES: &str = r#"
[[route]]
name = "owner-only"
path_prefix = "/admin"
upstreams = ["{decoding}"]
tenant = "required"
tenant_from = ["header"]
min_role = "owner"

[[route]]
name = "members"
path_prefix = "/"
upstreams = ["{decoding}"]
tenant = "required"
tenant_from = ["header"]
min_role = "viewer"

[[route]]
name = "objects"
path_prefix = "/objects"
upstreams = ["{decoding}"]
tenant = "required"
tenant_from = ["header"]
min_role = "viewer"
encoded_slashes = "keep"

[[route]]
name = "objects-private"
path_prefix = "/objects/private"
upstreams = ["{decoding}"]
tenant = "required"
tenant_from = ["header"]
min_role = "owner"
"#;

/// The gateway with [`ROUTES`], an owner and a viewer of one tenant.
pub struct Setup {
    pub app: TestApp,
    pub owner: Member,
    pub viewer: Member,
    _upstream: DecodingUpstream,
}

pub async fn setup(routes: &str, extra: &[(&str, &str)]) -> Setup {
    let upstream = DecodingUpstream::start().await;
    let app = spawn_gateway(&routes.replace("{decoding}", &upstream.addr), extra, None).await;
    let owner = member(&app, "Acme").await;
    let viewer = member(&app, "Elsewhere").await;
    let mut conn = app.db.pool().await.acquire().await.unwrap();
    shared::db::memberships::insert(
        &mut conn,
        viewer.user_id.parse().unwrap(),
        owner.tenant_id.parse().unwrap(),
        shared::domain::Role::Viewer,
    )
    .await
    .unwrap();
    Setup { app, owner, viewer, _upstream: upstream }
}

impl Setup {
    pub async fn get(&self, who: &Member, target: &str) -> RawAnswer {
        let bearer = format!("Bearer {}", who.token);
        let headers = [("Authorization", bearer.as_str()), ("X-Tenant-Id", self.owner.tenant_id.as_str())];
        raw_request(&self.app.base, "GET", target, &headers).await
    }
}

/// Whether any server reading of what the upstream got is under `/admin`.
fn reached(answer: &RawAnswer, prefix: &str) -> bool {
    answer.readings().iter().any(|r| {
        let r = r.to_lowercase();
        r == prefix || r.starts_with(&format!("{prefix}/"))
    })
}

#[tokio::test]
async fn no_spelling_of_an_owner_only_path_reaches_the_app_for_a_viewer() {
    let s = setup(ROUTES, &[]).await;

    // The plain path and spellings that mean it to every server: the gateway
    // sees the owner-only route too, and refuses.
    for target in [
        "/admin",
        "/ADMIN",
        "/Admin/x",
        "/%61dmin",
        "/adm%49n",
        "/x/../admin",
        "/x/%2e%2e/admin",
        "/x/.%2E/admin",
        "//admin",
        "/./admin",
        "/x/y/../../admin/",
    ] {
        let answer = s.get(&s.viewer, target).await;
        assert_eq!((answer.status, answer.error()), (403, Some("insufficient_role")), "{target}: {answer:?}");
    }

    // Spellings a server could read as /admin while another reads them as
    // something else: refused before any route is chosen.
    for (target, code) in [
        ("/x/..%2Fadmin", "ambiguous_path"),
        ("/x%2F..%2Fadmin", "ambiguous_path"),
        ("/admin%2F", "ambiguous_path"),
        ("/%2Fadmin", "ambiguous_path"),
        ("/x/..%5Cadmin", "ambiguous_path"),
        ("/x/..%5cadmin", "ambiguous_path"),
        ("/admin;x=1", "ambiguous_path"),
        ("/x;/../admin", "ambiguous_path"),
        ("/x/..;/admin", "ambiguous_path"),
        ("/admin%3B", "ambiguous_path"),
        ("/x/%252e%252e/admin", "ambiguous_path"),
        ("/%2561dmin", "ambiguous_path"),
        ("/x%252F..%252Fadmin", "ambiguous_path"),
        ("/x%25%32%46..%25%32%46admin", "ambiguous_path"),
        ("/ADM%C4%B0N", "ambiguous_path"),
        ("/%EF%BC%A1dmin", "ambiguous_path"),
        ("/%C5%BF", "ambiguous_path"),
        ("/%ff/admin", "ambiguous_path"),
        ("/adm%00in", "invalid_path"),
        ("/admin%0a", "invalid_path"),
        ("/x/%zz/../admin", "invalid_path"),
    ] {
        let answer = s.get(&s.viewer, target).await;
        assert_eq!((answer.status, answer.error()), (400, Some(code)), "{target}: {answer:?}");
    }

    // Raw bytes HTTP libraries would not send: refused by the gateway (or already
    // by Pingora's parser), never forwarded.
    for target in ["/x\\..\\admin", "/admin\\", "/\\admin", "/caf\u{e9}", "/x/..\\admin"] {
        let answer = s.get(&s.viewer, target).await;
        assert_eq!(answer.status, 400, "{target}: {answer:?}");
        assert!(answer.readings().is_empty(), "{target} reached the upstream: {answer:?}");
    }
}

#[tokio::test]
async fn what_the_gateway_forwards_every_server_reads_the_same_way() {
    let s = setup(ROUTES, &[]).await;
    for (target, sent) in [
        ("/projects", "/projects"),
        ("/Projects/%41/x%20y", "/Projects/A/x%20y"),
        ("/a/./b/../c//d", "/a/c/d"),
        ("/admin-panel", "/admin-panel"),
        ("/files/100%25", "/files/100%25"),
        ("/q?next=/admin%2F..%2F&x=%5C", "/q"),
    ] {
        let answer = s.get(&s.viewer, target).await;
        assert_eq!(answer.status, 200, "{target}: {answer:?}");
        assert_eq!(answer.body["raw"], sent, "{target}");
        assert!(!reached(&answer, "/admin"), "{target} read as /admin: {answer:?}");
        let readings = answer.readings();
        let first = readings[0].to_lowercase();
        assert!(readings.iter().all(|r| r.to_lowercase() == first), "{target}: servers disagree: {readings:?}");
    }
    // The owner gets through, in any case.
    let answer = s.get(&s.owner, "/ADMIN/Settings").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["raw"], "/ADMIN/Settings", "the app receives the path as sent");
}

#[tokio::test]
async fn encoded_slashes_pass_only_where_a_route_keeps_them_and_cannot_climb_out() {
    let s = setup(ROUTES, &[]).await;
    let answer = s.get(&s.viewer, "/objects/a%2Fb.txt").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["raw"], "/objects/a%2Fb.txt", "kept encoded for the object store");
    for target in [
        "/objects/a%2F..%2F..%2Fadmin",
        "/objects/%2E%2E%2Fadmin",
        "/objects/x%2F%2Fy",
        "/objects/private%2Fsecret",
        "/objects%2Fprivate/secret",
    ] {
        let answer = s.get(&s.viewer, target).await;
        assert_eq!((answer.status, answer.error()), (400, Some("ambiguous_path")), "{target}: {answer:?}");
    }
    let answer = s.get(&s.viewer, "/objects/PRIVATE/secret").await;
    assert_eq!((answer.status, answer.error()), (403, Some("insufficient_role")), "{answer:?}");
}

#[tokio::test]
async fn a_case_sensitive_route_matches_only_its_own_spelling() {
    let routes = format!("{ROUTES}\n[[route]]\nname = \"exact\"\npath_prefix = \"/Exact\"\nupstreams = [\"{{decoding}}\"]\ntenant = \"required\"\ntenant_from = [\"header\"]\nmin_role = \"owner\"\ncase_sensitive = true\n");
    let s = setup(&routes, &[]).await;
    let exact = s.get(&s.viewer, "/Exact/x").await;
    assert_eq!((exact.status, exact.error()), (403, Some("insufficient_role")), "{exact:?}");
    // Another spelling is another path to a case-sensitive app: the members route.
    let other = s.get(&s.viewer, "/exact/x").await;
    assert_eq!(other.status, 200, "{other:?}");
    assert_eq!(other.body["raw"], Value::from("/exact/x"));
}
