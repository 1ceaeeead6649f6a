//! Email verification, password reset and the credential rate limits, through the
//! outbox relay into a per-test set of RabbitMQ queues.

use std::time::{Duration, Instant};

use lapin::options::{BasicGetOptions, QueueDeleteOptions};
use secrecy::SecretString;
use serde_json::{json, Value};
use shared::queue::{Envelope, Job};

use crate::helpers::*;

pub use testkit::AMQP_URL;

/// This test's queue names (`QUEUE_PREFIX`), deleted on drop. One attempt, so the
/// topology has no retry queues.
pub struct Queues {
    pub prefix: String,
}

impl Queues {
    pub fn new() -> Queues {
        Queues { prefix: format!("gwit.{}.", &uuid::Uuid::new_v4().simple().to_string()[..12]) }
    }

    /// Environment for a gateway publishing into these queues.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("RABBITMQ_URL", AMQP_URL.to_owned()),
            ("QUEUE_PREFIX", self.prefix.clone()),
            ("QUEUE_MAX_ATTEMPTS", "1".to_owned()),
            ("QUEUE_OUTBOX_POLL_INTERVAL", "200ms".to_owned()),
        ]
    }

    fn names(&self) -> Vec<String> {
        ["email", "email.dead", "notification", "notification.dead"]
            .iter()
            .map(|q| format!("{}{q}", self.prefix))
            .collect()
    }

    /// Takes messages from `{prefix}{queue}` until one of `kind` arrives (dropping
    /// the others), up to 40 s: after a broker outage the relay may first sit out
    /// a hung connect (10 s timeout) and its backoff (up to 5 s), slower still
    /// while the whole suite shares two cores.
    pub async fn next(&self, queue: &str, kind: &str) -> Envelope {
        let conn = shared::queue::connect(&SecretString::from(AMQP_URL), "gateway test").await.expect("amqp");
        let name = format!("{}{queue}", self.prefix);
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            assert!(Instant::now() < deadline, "no {kind} message in {name}");
            let channel = conn.create_channel().await.expect("channel");
            // Until the relay has declared the queue, a get fails and closes the
            // channel; then try again on a new one.
            while let Ok(got) = channel.basic_get(name.as_str().into(), BasicGetOptions { no_ack: true }).await {
                match got {
                    Some(message) => {
                        let envelope = Envelope::from_slice(&message.delivery.data).expect("an envelope");
                        if envelope.job.kind() == kind {
                            let _ = conn.close(200, "done".into()).await;
                            return envelope;
                        }
                    }
                    None => tokio::time::sleep(Duration::from_millis(50)).await,
                }
                assert!(Instant::now() < deadline, "no {kind} message in {name}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Queues {
    fn drop(&mut self) {
        let names = self.names();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                if let Ok(conn) = shared::queue::connect(&SecretString::from(AMQP_URL), "gateway test").await {
                    for name in names {
                        if let Ok(channel) = conn.create_channel().await {
                            let _ = channel.queue_delete(name.as_str().into(), QueueDeleteOptions::default()).await;
                        }
                    }
                    let _ = conn.close(200, "done".into()).await;
                }
            });
        })
        .join();
    }
}

/// A gateway publishing into fresh queues, with `extra` environment.
pub async fn spawn_with_queues(extra: &[(&str, &str)]) -> (TestApp, Queues) {
    let queues = Queues::new();
    let env = queues.env();
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    (spawn_app_with(&all).await, queues)
}

fn email_token(envelope: &Envelope) -> (String, String) {
    match &envelope.job {
        Job::SendVerification(job) | Job::SendPasswordReset(job) => {
            (job.to.to_string(), job.data["token"].as_str().expect("a token").to_owned())
        }
        other => panic!("not an email job: {other:?}"),
    }
}

#[tokio::test]
async fn register_mails_a_verification_token_that_verifies_once() {
    let (app, queues) = spawn_with_queues(&[]).await;
    let email = unique_email();
    let reg = app.register(&email, None).await;
    assert_eq!(reg["user"]["emailVerified"], false);
    let access = reg["accessToken"].as_str().unwrap();

    let first = queues.next("email", "send-verification").await;
    let (to, first_token) = email_token(&first);
    assert_eq!(to, email);
    let Job::SendVerification(job) = &first.job else { unreachable!() };
    assert_eq!((job.template.as_str(), job.language.as_str()), ("verification", "en"));
    let event = queues.next("notification", "auth-event").await;
    let Job::AuthEvent(event) = event.job else { unreachable!() };
    assert_eq!(event.user_id.to_string(), reg["user"]["id"].as_str().unwrap());
    assert_eq!(event.event, shared::queue::AuthEventKind::Register);
    // Sent rows keep no payload (it held the token).
    let pool = app.db.pool().await;
    let payloads: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE payload IS NOT NULL AND sent_at IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(payloads, 0);

    // A resend mails a second token; verifying with it spends the first one too.
    let res = app.post_bearer("/auth/resend-verification", access).await;
    assert_eq!(res.status(), 202);
    let (_, second_token) = email_token(&queues.next("email", "send-verification").await);
    assert_ne!(first_token, second_token);

    assert_error(app.post_json("/auth/verify-email", &json!({"token": "garbage"})).await, 400, "invalid_token").await;
    let res = app.post_json("/auth/verify-email", &json!({"token": second_token})).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["emailVerified"], true);
    assert_eq!(body["user"]["email"], email);

    for token in [&second_token, &first_token] {
        assert_error(app.post_json("/auth/verify-email", &json!({"token": token})).await, 400, "invalid_token").await;
    }
    let me: Value = app.get_bearer("/auth/me", access).await.json().await.unwrap();
    assert_eq!(me["user"]["emailVerified"], true);
    assert_error(app.post_bearer("/auth/resend-verification", access).await, 409, "already_verified").await;
    let hashes: i64 = sqlx::query_scalar("SELECT count(*) FROM email_verification_tokens WHERE used_at IS NOT NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(hashes, 2, "both tokens spent");
}

#[tokio::test]
async fn an_expired_verification_token_is_refused() {
    let (app, queues) = spawn_with_queues(&[]).await;
    app.register(&unique_email(), None).await;
    let (_, token) = email_token(&queues.next("email", "send-verification").await);
    sqlx::query("UPDATE email_verification_tokens SET expires_at = now() - interval '1 second'")
        .execute(&app.db.pool().await)
        .await
        .unwrap();
    assert_error(app.post_json("/auth/verify-email", &json!({"token": token})).await, 400, "invalid_token").await;
}

#[tokio::test]
async fn forgot_and_reset_password_ends_every_session() {
    let (app, queues) = spawn_with_queues(&[]).await;
    let email = unique_email();
    let reg = app.register(&email, None).await;

    let known = app.post_json("/auth/forgot-password", &json!({"email": email.to_uppercase()})).await;
    let unknown = app.post_json("/auth/forgot-password", &json!({"email": unique_email()})).await;
    let malformed = app.post_json("/auth/forgot-password", &json!({"email": "nobody"})).await;
    let mut bodies = Vec::new();
    for res in [known, unknown, malformed] {
        assert_eq!(res.status(), 202);
        bodies.push(res.text().await.unwrap());
    }
    assert!(bodies.iter().all(|b| b == &bodies[0]), "{bodies:?}");

    let reset = queues.next("email", "send-password-reset").await;
    let (to, token) = email_token(&reset);
    assert_eq!(to, email);
    let pool = app.db.pool().await;
    let resets: i64 = sqlx::query_scalar("SELECT count(*) FROM password_reset_tokens").fetch_one(&pool).await.unwrap();
    assert_eq!(resets, 1, "only the known address got a token");

    let new_password = "a brand new password";
    let weak = app.post_json("/auth/reset-password", &json!({"token": token, "password": "short"})).await;
    assert_error(weak, 400, "weak_password").await;
    let bad = app.post_json("/auth/reset-password", &json!({"token": "A".repeat(43), "password": new_password})).await;
    assert_error(bad, 400, "invalid_token").await;
    let res = app.post_json("/auth/reset-password", &json!({"token": token, "password": new_password})).await;
    assert_eq!(res.status(), 204);
    let again = app.post_json("/auth/reset-password", &json!({"token": token, "password": new_password})).await;
    assert_error(again, 400, "invalid_token").await;

    assert_error(app.login(&email, PASSWORD).await, 401, "invalid_credentials").await;
    assert_eq!(app.login(&email, new_password).await.status(), 200);
    let refresh = app.post_json("/auth/refresh", &json!({"refreshToken": reg["refreshToken"]})).await;
    assert_error(refresh, 401, "invalid_token").await;
    assert_error(app.get_bearer("/auth/me", reg["accessToken"].as_str().unwrap()).await, 401, "token_revoked").await;

    // The feed hears about it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let envelope = queues.next("notification", "auth-event").await;
        if let Job::AuthEvent(e) = envelope.job {
            if e.event == shared::queue::AuthEventKind::PasswordChanged {
                break;
            }
        }
        assert!(Instant::now() < deadline, "no password-changed event");
    }
}

#[tokio::test]
async fn forgot_password_is_rate_limited_and_the_window_passes() {
    // A window long enough that four requests fit in it on a loaded 2-core machine
    // (2 s did not, once), short enough to wait out.
    let (app, _queues) = spawn_with_queues(&[("RATE_LIMIT_MAX", "3"), ("RATE_LIMIT_WINDOW", "6s")]).await;
    let email = unique_email();
    let forgot = || async { app.post_json("/auth/forgot-password", &json!({"email": email})).await };
    for _ in 0..3 {
        assert_eq!(forgot().await.status(), 202);
    }
    let res = forgot().await;
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=6).contains(&retry), "{retry}");
    assert_error(res, 429, "rate_limited").await;
    // Per IP too: another address from the same client is refused.
    let other = app.post_json("/auth/forgot-password", &json!({"email": unique_email()})).await;
    assert_error(other, 429, "rate_limited").await;
    // The window is fixed: once it ends, attempts are counted afresh.
    assert!(app.eventually(Duration::from_secs(15), || async { forgot().await.status() == 202 }).await);
}

#[tokio::test]
async fn a_login_lockout_does_not_block_a_password_reset() {
    let (app, queues) = spawn_with_queues(&[("RATE_LIMIT_MAX", "3"), ("RATE_LIMIT_WINDOW", "1m")]).await;
    let email = unique_email();
    app.register(&email, None).await;
    for _ in 0..3 {
        assert_error(app.login(&email, "wrong password!").await, 401, "invalid_credentials").await;
    }
    let res = app.login(&email, PASSWORD).await;
    assert!(res.headers().contains_key("retry-after"));
    assert_error(res, 429, "rate_limited").await;

    let res = app.post_json("/auth/forgot-password", &json!({"email": email})).await;
    assert_eq!(res.status(), 202);
    let (to, token) = email_token(&queues.next("email", "send-password-reset").await);
    assert_eq!(to, email);
    let res = app.post_json("/auth/reset-password", &json!({"token": token, "password": "recovered password"})).await;
    assert_eq!(res.status(), 204);
}

#[tokio::test]
async fn a_register_while_rabbitmq_is_unreachable_succeeds_and_its_email_job_goes_out_once_it_is_back() {
    // The broker is reached through a proxy this test owns and cuts; the machine's
    // RabbitMQ itself is never touched.
    let broker = TcpProxy::start("127.0.0.1:5672").await;
    broker.cut();
    let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", broker.port);
    let (app, queues) = spawn_with_queues(&[("RABBITMQ_URL", &url)]).await;

    let email = unique_email();
    app.register(&email, None).await;
    let pool = app.db.pool().await;
    let (pending,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM outbox WHERE kind = 'send-verification' AND sent_at IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(pending, 1, "the job waits in the outbox while the broker is away");

    broker.restore();
    let envelope = queues.next("email", "send-verification").await;
    assert_eq!(email_token(&envelope).0, email);
    let sent = app
        .eventually(Duration::from_secs(10), || async {
            let (unsent,): (i64,) =
                sqlx::query_as("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetch_one(&pool).await.unwrap();
            unsent == 0
        })
        .await;
    assert!(sent, "the relay did not mark the rows sent after the broker came back");
}
