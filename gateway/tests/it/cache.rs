//! The two-tier cache seen from outside: cross-instance invalidation, a Redis
//! outage, stampede protection, and no I/O once warm.

use std::time::{Duration, Instant};

use shared::cache::Key;
use shared::domain::Role;

use crate::helpers::*;
use crate::proxy::{get, invalidator_for, member};

const SUBSCRIBED: &str = "tenantgate_cache_invalidation_subscribed";

fn db_loads(cache: &str, result: &str) -> String {
    format!(r#"tenantgate_cache_lookups_total{{cache="{cache}",result="{result}",tier="db"}}"#)
}

#[tokio::test]
async fn a_demotion_is_enforced_by_a_second_instance_without_waiting_for_a_ttl() {
    let a = spawn_gateway(MEMBER_ROUTES, &[], None).await;
    let b = spawn_gateway(MEMBER_ROUTES, &[], Some(&a)).await;
    let owner = member(&a, "Acme").await;
    let user = member(&a, "Own").await;
    let (user_id, tenant_id) = (user.user_id.parse().unwrap(), owner.tenant_id.parse().unwrap());
    let mut conn = a.db.pool().await.acquire().await.unwrap();
    shared::db::memberships::insert(&mut conn, user_id, tenant_id, Role::Member).await.unwrap();
    let t = [("x-tenant-id", owner.tenant_id.as_str())];
    for gw in [&a, &b] {
        assert!(gw.eventually(Duration::from_secs(10), || async { gw.metric(SUBSCRIBED).await == 1.0 }).await);
        let metrics = gw.client.get(format!("{}/metrics", gw.admin)).send().await.unwrap().text().await.unwrap();
        assert!(metrics.lines().any(|l| l == "tenantgate_single_node 0"), "with Redis, not single-node");
        assert_eq!(get(gw, "/app", Some(&user.token), &t).await.0, 200, "warm-up");
    }

    // The shared membership code: change the role, then invalidate.
    let previous = shared::db::memberships::update_role(&mut conn, user_id, tenant_id, Role::Viewer).await.unwrap();
    assert_eq!(previous, Some(Role::Member));
    invalidator_for(&a).await.invalidate(vec![Key::Role { user: user_id, tenant: tenant_id }]).await.unwrap();

    let started = Instant::now();
    let refused =
        b.eventually(Duration::from_secs(5), || async { get(&b, "/app", Some(&user.token), &t).await.0 == 403 }).await;
    assert!(refused, "instance B still admits the demoted user");
    // The role TTL is 10 minutes; this is the pub/sub path.
    assert!(started.elapsed() < Duration::from_secs(5));
    let (status, body) = get(&a, "/app", Some(&user.token), &t).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("insufficient_role")));
}

#[tokio::test]
async fn a_cold_key_under_100_concurrent_requests_loads_from_postgres_once_then_no_io() {
    let app = spawn_gateway(MEMBER_ROUTES, &[], None).await;
    let m = member(&app, "Acme").await;
    let t = [("x-tenant-id", m.tenant_id.as_str())];
    let results = futures::future::join_all((0..100).map(|_| get(&app, "/app", Some(&m.token), &t))).await;
    assert!(results.iter().all(|(status, _)| *status == 200));
    for cache in ["user", "tenant", "role"] {
        assert_eq!(app.metric(&db_loads(cache, "hit")).await, 1.0, "{cache} loaded more than once");
    }

    // Warm: more requests, and neither Redis nor Postgres is asked again: not one
    // lookup beyond the in-process tiers, counted for every cache and result.
    let beyond_l1 = || async {
        let text = app.client.get(format!("{}/metrics", app.admin)).send().await.unwrap().text().await.unwrap();
        text.lines()
            .filter(|l| l.starts_with("tenantgate_cache_lookups_total") && !l.contains(r#"tier="l1""#))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let memo_hits = r#"tenantgate_decision_memo_total{result="hit"}"#;
    let (before, hits) = (beyond_l1().await, app.metric(memo_hits).await);
    assert!(!before.is_empty(), "the cold load was counted");
    for _ in 0..50 {
        assert_eq!(get(&app, "/app", Some(&m.token), &t).await.0, 200);
    }
    assert_eq!(beyond_l1().await, before, "a warm request reached Redis or Postgres");
    assert_eq!(app.metric(&db_loads("role", "hit")).await, 1.0);
    // Served from the decision memo, above the in-process cache.
    assert!(app.metric(memo_hits).await >= hits + 50.0);
}

#[tokio::test]
async fn a_redis_outage_keeps_warm_traffic_flowing_and_the_gateway_recovers() {
    let redis = TcpProxy::start("127.0.0.1:6379").await;
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let app = spawn_gateway(MEMBER_ROUTES, &[("REDIS_URL", &url)], None).await;
    let m = member(&app, "Acme").await;
    let t = [("x-tenant-id", m.tenant_id.as_str())];
    assert!(app.eventually(Duration::from_secs(10), || async { app.metric(SUBSCRIBED).await == 1.0 }).await);
    assert_eq!(get(&app, "/app", Some(&m.token), &t).await.0, 200);

    redis.cut();
    assert!(app.eventually(Duration::from_secs(10), || async { app.metric(SUBSCRIBED).await == 0.0 }).await);
    for _ in 0..20 {
        assert_eq!(get(&app, "/app", Some(&m.token), &t).await.0, 200, "warm traffic must not need Redis");
    }
    // A cold user is served from Postgres while Redis is away.
    let other = member(&app, "Beta").await;
    let started = Instant::now();
    let (status, _) = get(&app, "/app", Some(&other.token), &[("x-tenant-id", &other.tenant_id)]).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(5), "a cold lookup must not hang on a dead Redis");

    redis.restore();
    assert!(
        app.eventually(Duration::from_secs(15), || async { app.metric(SUBSCRIBED).await == 1.0 }).await,
        "the gateway did not resubscribe after Redis came back"
    );
    // And invalidations work again.
    let (user, tenant) = (m.user_id.parse().unwrap(), m.tenant_id.parse().unwrap());
    let mut conn = app.db.pool().await.acquire().await.unwrap();
    shared::db::memberships::update_role(&mut conn, user, tenant, Role::Viewer).await.unwrap();
    invalidator_for(&app).await.invalidate(vec![Key::Role { user, tenant }]).await.unwrap();
    assert!(
        app.eventually(Duration::from_secs(5), || async { get(&app, "/app", Some(&m.token), &t).await.0 == 403 }).await
    );
}

#[tokio::test]
async fn with_postgres_unreachable_warm_entries_serve_and_cold_ones_fail_closed_with_503() {
    let a = spawn_gateway(MEMBER_ROUTES, &[], None).await;
    // Instance B reaches Postgres only through a proxy this test owns.
    let pg = TcpProxy::start("127.0.0.1:5432").await;
    let url = format!("postgres://postgres@127.0.0.1:{}/{}", pg.port, a.db.name);
    let b = spawn_gateway(MEMBER_ROUTES, &[("DATABASE_URL", &url), ("DATABASE_AUTO_MIGRATE", "false")], Some(&a)).await;
    let warm = member(&a, "Warm").await;
    let cold = member(&a, "Cold").await;
    let (tw, tc) = ([("x-tenant-id", warm.tenant_id.as_str())], [("x-tenant-id", cold.tenant_id.as_str())]);
    assert_eq!(get(&b, "/app", Some(&warm.token), &tw).await.0, 200, "warm-up");

    pg.cut();
    for _ in 0..10 {
        assert_eq!(get(&b, "/app", Some(&warm.token), &tw).await.0, 200, "warm entries need no Postgres");
    }
    let started = Instant::now();
    let (status, body) = get(&b, "/app", Some(&cold.token), &tc).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("service_unavailable")), "cold must fail closed");
    assert!(started.elapsed() < Duration::from_secs(10), "and not hang");
    // The API says so too, as JSON.
    assert_error(b.login(&cold.email, PASSWORD).await, 503, "service_unavailable").await;

    pg.restore();
    assert!(
        b.eventually(Duration::from_secs(15), || async { get(&b, "/app", Some(&cold.token), &tc).await.0 == 200 })
            .await,
        "the gateway did not recover once Postgres was back"
    );
}
