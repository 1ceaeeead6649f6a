//! Throughput of the worker against the machine's real services: emails/s into a
//! local SMTP sink and notifications/s (Postgres insert + Redis PUBLISH).
//!
//! `cargo bench -p tenantgate-worker --bench throughput` (see bench/worker/run.sh).
//! Environment: BENCH_EMAILS (default 20000), BENCH_NOTIFICATIONS (default 20000),
//! BENCH_CONCURRENCY (default 64), BENCH_SMTP_POOL (default 16).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lapin::options::QueueDeleteOptions;
use lapin::types::FieldTable;
use secrecy::SecretString;
use shared::config::{MailTransport, Profile, Settings};
use shared::domain::{Email, Language, PersonName};
use shared::queue::{self, templates, AuthEvent, AuthEventKind, EmailJob, Envelope, Job, Publisher, Topology};

use testkit::{TestDb, AMQP_URL};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let emails = env_or("BENCH_EMAILS", 20_000);
    let notes = env_or("BENCH_NOTIFICATIONS", 20_000);
    let concurrency = env_or("BENCH_CONCURRENCY", 64);
    let pool_size = env_or("BENCH_SMTP_POOL", 16);

    let id = testkit::unique_id();
    let db = TestDb::create_named("tg_wbench").await;
    let db_url = db.url.clone();
    let pool = db.pool().await;
    shared::db::migrate(&pool).await.unwrap();
    let sink = testkit::smtp::SmtpSink::start().await;
    sink.count_only();

    let mut settings = Settings::default();
    settings.app.env = Profile::Development;
    settings.app.url = shared::config::PublicUrl::parse("https://app.example.test").unwrap();
    settings.database.url = SecretString::from(db_url);
    settings.database.max_connections = 20;
    settings.redis.key_prefix = format!("tgb{}:", &id[..12]);
    settings.rabbitmq.url = Some(SecretString::from(AMQP_URL));
    settings.jwt.secret = SecretString::from("bench-access-secret-0123456789abcdef0123456789");
    settings.jwt.refresh_secret = SecretString::from("bench-refresh-secret-0123456789abcdef012345678");
    settings.queue.prefix = format!("bench.{}.", &id[..12]);
    settings.smtp.port = sink.port();
    settings.smtp.pool_size = u32::try_from(pool_size).unwrap();
    settings.mail.transport = MailTransport::Smtp;
    settings.worker.admin_listen = SocketAddr::from(([127, 0, 0, 1], 0));
    settings.worker.concurrency = u16::try_from(concurrency).unwrap();
    settings.validate().unwrap();
    let topology = Topology::new(&settings.queue);

    // Queue everything first, so the measurement is the worker alone.
    let conn = queue::connect(&SecretString::from(AMQP_URL), "bench").await.unwrap();
    let publisher = Publisher::open(&conn).await.unwrap();
    queue::declare(publisher.channel(), &topology).await.unwrap();
    let to = Email::parse("bench@example.com").unwrap();
    let mut pending = Vec::new();
    for i in 0..emails {
        let token = format!("{:0>43}", i);
        let job = EmailJob::new(&to, &Language::default(), templates::VERIFICATION)
            .with("token", token)
            .with("name", "Bench");
        let envelope = Envelope::new(Job::SendVerification(job));
        let body = serde_json::to_vec(&envelope).unwrap();
        let props = queue::properties(envelope.id, envelope.job.kind(), 1, FieldTable::default());
        pending.push(publisher.start(&topology.queue(envelope.queue()), envelope.id, &body, props).await.unwrap());
        if pending.len() == 1000 {
            for p in pending.drain(..) {
                Publisher::finish(p).await.unwrap();
            }
        }
    }
    for p in pending.drain(..) {
        Publisher::finish(p).await.unwrap();
    }

    let app = worker::Application::build(&settings).await.unwrap();
    let jobs = app.jobs();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until_stopped(async move {
        let _ = stop_rx.await;
    }));
    let started = Instant::now();
    while sink.accepted_count() < emails {
        assert!(started.elapsed() < Duration::from_secs(600), "emails stalled at {}", sink.accepted_count());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let email_secs = started.elapsed().as_secs_f64();
    println!(
        "emails: {emails} in {email_secs:.2}s = {:.0} emails/s (concurrency {concurrency}, SMTP pool {pool_size})",
        emails as f64 / email_secs
    );

    // Notifications: published while the worker runs, measured from the first
    // publish to the last acknowledgement.
    let mut conn_db = pool.acquire().await.unwrap();
    let user = shared::db::users::insert(
        &mut conn_db,
        &shared::db::users::NewUser {
            email: &to,
            password_hash: "x",
            name: &PersonName::parse("Bench").unwrap(),
            language: &Language::default(),
        },
    )
    .await
    .unwrap()
    .id;
    drop(conn_db);
    let ok = || jobs.metrics.jobs.with_label_values(&["notification", "ok"]).get();
    let started = Instant::now();
    for _ in 0..notes {
        let envelope = Envelope::new(Job::AuthEvent(AuthEvent::now(user, None, AuthEventKind::Login)));
        let body = serde_json::to_vec(&envelope).unwrap();
        let props = queue::properties(envelope.id, envelope.job.kind(), 1, FieldTable::default());
        pending.push(publisher.start(&topology.queue(envelope.queue()), envelope.id, &body, props).await.unwrap());
        if pending.len() == 1000 {
            for p in pending.drain(..) {
                Publisher::finish(p).await.unwrap();
            }
        }
    }
    for p in pending.drain(..) {
        Publisher::finish(p).await.unwrap();
    }
    while ok() < notes as u64 {
        assert!(started.elapsed() < Duration::from_secs(600), "notifications stalled at {}", ok());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let note_secs = started.elapsed().as_secs_f64();
    println!("notifications: {notes} in {note_secs:.2}s = {:.0} notifications/s", notes as f64 / note_secs);
    let dead = jobs.metrics.jobs.with_label_values(&["email", "dead"]).get()
        + jobs.metrics.jobs.with_label_values(&["notification", "dead"]).get();
    println!("dead letters: {dead}");

    let _ = stop_tx.send(());
    running.await.unwrap().unwrap();
    let channel = conn.create_channel().await.unwrap();
    for q in topology.all_queue_names() {
        let _ = channel.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await;
    }
    let _ = conn.close(200, "done".into()).await;
    pool.close().await;
    drop(db);
}
