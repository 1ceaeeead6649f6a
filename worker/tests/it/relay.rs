use std::time::Duration;

use secrecy::SecretString;
use shared::db::outbox;
use shared::domain::{Email, Language, UserId};
use shared::queue::{self, templates, AuthEvent, AuthEventKind, EmailJob, Envelope, Job, JobQueue};

use crate::helpers::{eventually, token, TestEnv};
use crate::proxy::TcpProxy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_rows_written_while_rabbitmq_is_unreachable_are_published_once_it_is_back() {
    let env = TestEnv::new(3).await;
    let proxy = TcpProxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let mut config = env.broker();
    config.url = SecretString::from(format!("amqp://guest:guest@{}/%2f", proxy.addr));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(queue::run_relay(env.pool.clone(), config, async move {
        let _ = stop_rx.await;
    }));

    // Up: a row is published promptly (NOTIFY wakes the relay).
    let first = write_rows(&env, 1).await;
    eventually(Duration::from_secs(10), "the first row to be sent", || async {
        (outbox::count_unsent(&env.pool).await.ok()? == 0).then_some(())
    })
    .await;

    // Down: the writes still commit (as a registration would), nothing is published.
    proxy.cut();
    let during = write_rows(&env, 3).await;
    // A negative can only be observed over time: give the relay several polls.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(outbox::count_unsent(&env.pool).await.unwrap(), 3, "rows must stay unsent while the broker is away");

    // Back: the relay reconnects by itself and publishes them.
    proxy.restore();
    eventually(Duration::from_secs(20), "the held rows to be sent", || async {
        (outbox::count_unsent(&env.pool).await.ok()? == 0).then_some(())
    })
    .await;
    let payloads: Vec<(Option<serde_json::Value>,)> =
        sqlx::query_as("SELECT payload FROM outbox").fetch_all(&env.pool).await.unwrap();
    assert!(payloads.iter().all(|p| p.0.is_none()), "sent rows keep no payload (tokens)");

    let mut ids: Vec<String> = Vec::new();
    for q in [JobQueue::Email, JobQueue::Notification] {
        for d in env.drain_queue(&env.topology().queue(q)).await {
            ids.push(d.properties.message_id().as_ref().unwrap().to_string());
            let envelope = Envelope::from_slice(&d.data).expect("a parsable envelope");
            assert_eq!(envelope.queue(), q);
            assert_eq!(d.properties.delivery_mode(), &Some(2), "persistent");
        }
    }
    ids.sort();
    let mut expected: Vec<String> = first.iter().chain(during.iter()).map(|id| id.to_string()).collect();
    expected.sort();
    assert_eq!(ids, expected, "each row published exactly once");

    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(5), relay).await.expect("relay stops on shutdown").unwrap();
}

/// Writes `n` outbox rows in one transaction, alternating email and notification.
async fn write_rows(env: &TestEnv, n: usize) -> Vec<uuid::Uuid> {
    let mut tx = env.pool.begin().await.unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let envelope = if i % 2 == 0 {
            let job =
                EmailJob::new(&Email::parse("ada@example.com").unwrap(), &Language::default(), templates::VERIFICATION)
                    .with("token", token());
            Envelope::new(Job::SendVerification(job))
        } else {
            Envelope::new(Job::AuthEvent(AuthEvent::now(UserId::new(), None, AuthEventKind::Register)))
        };
        outbox::insert(&mut tx, &envelope).await.unwrap();
        ids.push(envelope.id);
    }
    tx.commit().await.unwrap();
    ids
}
