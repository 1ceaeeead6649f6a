//! Single-node mode: no `REDIS_URL` and no `RABBITMQ_URL`. The gateway keeps its
//! cache, abuse limits, invalidations and live notifications in process, and runs
//! the worker's jobs straight from the outbox: mail goes out, retries wait out
//! their backoff, what cannot be sent is dead (not lost), and a gateway killed
//! mid-delivery leaves the job to the next start.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use shared::domain::Role;
use testkit::smtp::SmtpSink;

use crate::helpers::*;
use crate::proxy::{get, member};
use crate::tenants::{add, call, expect};

/// No Redis, no RabbitMQ, mail to `smtp_port`.
fn single_node(smtp_port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("REDIS_URL", String::new()),
        ("RABBITMQ_URL", String::new()),
        ("MAIL_TRANSPORT", "smtp".into()),
        ("SMTP_HOST", "127.0.0.1".into()),
        ("SMTP_PORT", smtp_port.to_string()),
        ("SMTP_TIMEOUT", "2s".into()),
        ("QUEUE_OUTBOX_POLL_INTERVAL", "200ms".into()),
    ]
}

fn with<'a>(env: &'a [(&'static str, String)], extra: &[(&'static str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).chain(extra.iter().copied()).collect()
}

/// The outbox row of the only email job, as (sent, dead, attempts, last error).
async fn email_row(app: &TestApp) -> (bool, bool, i32, Option<String>) {
    sqlx::query_as(
        "SELECT sent_at IS NOT NULL, dead_at IS NOT NULL, attempts, last_error FROM outbox WHERE queue = 'email'",
    )
    .fetch_one(&app.db.pool().await)
    .await
    .unwrap()
}

/// Reads the event stream until `needle` shows up (or fails after 10 s).
async fn read_until(res: &mut reqwest::Response, seen: &mut String, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains(needle) {
        let chunk = tokio::time::timeout_at(deadline.into(), res.chunk()).await.unwrap_or_else(|_| {
            panic!("{needle:?} not streamed within 10 s; got {seen:?}");
        });
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap().expect("stream open")));
    }
}

#[tokio::test]
async fn without_redis_or_rabbitmq_mail_goes_out_and_notifications_stream_live() {
    let sink = SmtpSink::start().await;
    let env = single_node(sink.port());
    let app = spawn_app_with(&with(&env, &[])).await;
    let email = unique_email();
    let reg = app.register(&email, None).await;

    let mail = sink.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(mail[0].rcpt, [format!("<{email}>")], "the verification email, sent by the gateway itself");
    assert!(mail[0].decoded().contains("/auth/ui/verified?token="), "{}", mail[0].decoded());
    let done = app.eventually(Duration::from_secs(5), || async { email_row(&app).await.0 }).await;
    assert!(done, "the outbox row is marked sent: {:?}", email_row(&app).await);
    let ok = r#"tenantgate_worker_jobs_total{outcome="ok",queue="email"}"#;
    assert_eq!(app.metric(ok).await, 1.0, "job metrics on the gateway's /metrics");
    assert_eq!(app.metric(r#"tenantgate_worker_consumer_up{queue="email"}"#).await, 1.0);

    // The live feed is in process: a login's auth event reaches the stream.
    let token = reg["accessToken"].as_str().unwrap();
    let mut stream = app.get_bearer("/auth/notifications/stream", token).await;
    assert_eq!(stream.status(), 200);
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, ": connected").await;
    assert_eq!(app.login(&email, PASSWORD).await.status(), 200);
    read_until(&mut stream, &mut seen, r#""event":"login""#).await;
    assert!(seen.contains("event: notification"), "{seen}");
    assert_eq!(sink.messages().len(), 1, "a login sends no mail, and the first one went once");
}

#[tokio::test]
async fn without_redis_role_changes_and_abuse_limits_apply_in_process() {
    let sink = SmtpSink::start().await;
    let env = single_node(sink.port());
    let app = spawn_gateway(MEMBER_ROUTES, &with(&env, &[("RATE_LIMIT_MAX", "2")]), None).await;
    assert_eq!(app.metric("tenantgate_cache_invalidation_subscribed").await, 1.0, "nothing to miss: no alert");
    assert_eq!(app.metric("tenantgate_single_node").await, 1.0, "what the several-single-nodes alert counts");
    let owner = member(&app, "Acme").await;
    let user = member(&app, "Own").await;
    add(&app, &owner, &user, Role::Member).await;
    let t = [("x-tenant-id", owner.tenant_id.as_str())];
    assert_eq!(get(&app, "/app", Some(&user.token), &t).await.0, 200, "warm: the role is cached");

    // The demotion evicts this process's entry at once (the role TTL is minutes).
    let path = format!("/auth/tenants/{}/members/{}", owner.tenant_id, user.user_id);
    expect(call(&app, Method::PATCH, &path, &owner.token, Some(json!({"role": "viewer"}))).await, 200).await;
    let (status, body) = get(&app, "/app", Some(&user.token), &t).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("insufficient_role")));

    // Login attempts count in process: the third wrong password in the window is refused.
    for _ in 0..2 {
        assert_error(app.login(&user.email, "not the password").await, 401, "invalid_credentials").await;
    }
    let refused = app.login(&user.email, "not the password").await;
    assert!(refused.headers().get("retry-after").is_some(), "429 says when to come back");
    assert_error(refused, 429, "rate_limited").await;
}

#[tokio::test]
async fn a_failing_mail_server_is_retried_with_backoff_then_the_job_is_dead_not_lost() {
    let sink = SmtpSink::start().await;
    sink.fail_next(usize::MAX);
    let env = single_node(sink.port());
    let extra = [("QUEUE_MAX_ATTEMPTS", "2"), ("QUEUE_RETRY_BASE_DELAY", "1s")];
    let app = spawn_app_with(&with(&env, &extra)).await;
    app.register(&unique_email(), None).await;

    let dead = app.eventually(Duration::from_secs(20), || async { email_row(&app).await.1 }).await;
    let (sent, _, attempts, error) = email_row(&app).await;
    assert!(dead && !sent, "dead, not sent");
    assert_eq!(attempts, 2, "QUEUE_MAX_ATTEMPTS");
    assert!(error.as_deref().is_some_and(|e| e.starts_with("gave up after 2 attempts")), "{error:?}");
    let seen = sink.data_seen();
    assert_eq!(seen.len(), 2, "one retry, then no more");
    assert!(
        seen[1] - seen[0] >= Duration::from_millis(900),
        "the retry waited out its backoff: {:?}",
        seen[1] - seen[0]
    );
    let dead_jobs = r#"tenantgate_worker_jobs_total{outcome="dead",queue="email"}"#;
    assert_eq!(app.metric(dead_jobs).await, 1.0);
    let counted = app
        .eventually(Duration::from_secs(10), || async {
            app.metric(r#"tenantgate_outbox_rows{state="dead"}"#).await == 1.0
                && app.metric(r#"tenantgate_outbox_rows{state="waiting"}"#).await == 0.0
        })
        .await;
    assert!(counted, "the backlog gauge shows the dead row (sampled every 5 s)");
    // Kept with its payload for `worker dead-letters` (tested with the worker).
    let payload: Option<serde_json::Value> = sqlx::query_scalar("SELECT payload FROM outbox WHERE queue = 'email'")
        .fetch_one(&app.db.pool().await)
        .await
        .unwrap();
    assert!(payload.is_some_and(|p| p["type"] == "send-verification"));
}

/// Transactions committed in this test's database so far (Postgres's statistics,
/// flushed by each backend about once a second).
async fn commits(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        .fetch_one(&app.db.pool().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_mail_server_that_never_answers_costs_an_attempt_and_the_other_lanes_wait_calmly() {
    let stalled = SmtpSink::start().await;
    stalled.hang_next(usize::MAX);
    let env = single_node(stalled.port());
    // 16 connections: two lanes, one stuck in the job, one idle beside it.
    let extra = [("SMTP_TIMEOUT", "1s"), ("DATABASE_MAX_CONNECTIONS", "16"), ("QUEUE_MAX_ATTEMPTS", "3")];
    let app = spawn_app_with(&with(&env, &extra)).await;
    app.register(&unique_email(), None).await;
    let stuck = app.eventually(Duration::from_secs(10), || async { !stalled.data_seen().is_empty() }).await;
    assert!(stuck, "the job reached the mail server");

    // While the job is held, the idle lane sees a due row it cannot claim: it must
    // sleep, not spin through empty claims.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = commits(&app).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let spent = commits(&app).await - before;
    assert!(spent < 200, "{spent} transactions in 4 s beside one job in flight");

    // The send gives up after 9 x SMTP_TIMEOUT: a failed attempt, scheduled again.
    let retried = app.eventually(Duration::from_secs(20), || async { email_row(&app).await.2 >= 1 }).await;
    let (sent, dead, _, error) = email_row(&app).await;
    assert!(retried && !sent && !dead, "{:?}", email_row(&app).await);
    assert!(error.as_deref().is_some_and(|e| e.contains("did not finish within 9s")), "{error:?}");
}

#[tokio::test]
async fn a_gateway_killed_mid_delivery_leaves_the_email_to_the_next_start_and_it_goes_out_once() {
    let stalled = SmtpSink::start().await;
    stalled.hang_next(usize::MAX);
    let env = single_node(stalled.port());
    let first = spawn_app_with(&with(&env, &[("SMTP_TIMEOUT", "60s")])).await;
    let email = unique_email();
    first.register(&email, None).await;
    // The job is in flight: the mail server has the message and never answers.
    let in_flight = first.eventually(Duration::from_secs(15), || async { !stalled.data_seen().is_empty() }).await;
    assert!(in_flight, "the job reached the mail server");
    // SIGKILL: no graceful shutdown; the claim's transaction dies with the process.
    let mut first = first;
    let killed = std::process::Command::new("kill").args(["-KILL", &first.pid().to_string()]).status().unwrap();
    assert!(killed.success());
    assert!(first.wait_exit(Duration::from_secs(5)).is_some(), "the gateway is gone");
    let db_url = first.db.url.clone();

    let sink = SmtpSink::start().await;
    let env = single_node(sink.port());
    let second = spawn_gateway(DEFAULT_ROUTES, &with(&env, &[]), Some(&first)).await;
    assert_eq!(second.db.url, db_url, "the same database");
    let mail = sink.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(mail[0].rcpt, [format!("<{email}>")]);
    let done = second.eventually(Duration::from_secs(5), || async { email_row(&second).await.0 }).await;
    assert!(done, "sent after the restart: {:?}", email_row(&second).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sink.messages().len(), 1, "once");
}
