use std::time::Duration;

use shared::domain::{Email, Language};
use shared::queue::{templates, EmailJob, Envelope, Job, JobQueue};

use crate::helpers::{eventually, token, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_go_straight_to_the_dead_letter_queue_and_consumption_goes_on() {
    let env = TestEnv::new(8).await;
    let worker = env.spawn_in_process().await;
    env.publish_raw(JobQueue::Email, b"\xff\xfe not json at all").await;
    env.publish_raw(JobQueue::Email, br#"{"id":"0190b4e4-7d0e-7c4a-9a51-2f1c1f0a0a01","schemaVersion":1,"createdAt":"2026-11-27T10:00:00Z","type":"launch-rockets"}"#).await;
    // Parses, but names a template that does not exist: permanent too.
    let bad_template =
        EmailJob::new(&Email::parse("ada@example.com").unwrap(), &Language::default(), "no-such-template")
            .with("token", token());
    env.publish(&Envelope::new(Job::SendVerification(bad_template))).await;
    let good = EmailJob::new(&Email::parse("ada@example.com").unwrap(), &Language::default(), templates::VERIFICATION)
        .with("token", token());
    env.publish(&Envelope::new(Job::SendVerification(good))).await;

    env.sink.wait_for(1, Duration::from_secs(20)).await;
    let broker = env.broker();
    let dead = eventually(Duration::from_secs(10), "three dead letters", || async {
        let letters = worker::dead_letters::list(&broker, &[JobQueue::Email], 10, &Default::default()).await.ok()?;
        (letters.len() == 3).then_some(letters)
    })
    .await;
    assert!(dead.iter().filter(|l| l.reason.contains("unparsable")).count() == 2, "{dead:?}");
    assert!(dead.iter().any(|l| l.reason.contains("unknown email template")), "{dead:?}");
    // Dead at once: no retries were spent on them.
    assert!(dead.iter().all(|l| l.attempts == 1), "{dead:?}");
    assert_eq!(worker.jobs_total("email", "retried"), 0);
    assert_eq!(env.sink.data_seen().len(), 1);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handle_classifies_without_a_broker() {
    let env = TestEnv::new(3).await;
    let app = worker::Application::build(&env.settings).await.unwrap();
    let jobs = app.jobs();
    let incoming = |body: &'static [u8], queue| worker::Incoming { queue, body, attempt: 1, redelivered: false };
    assert!(matches!(jobs.handle(&incoming(b"{}", JobQueue::Email)).await, worker::Outcome::DeadLetter(_)));
    // An email job on the notification queue is refused, not sent.
    let job = EmailJob::new(&Email::parse("ada@example.com").unwrap(), &Language::default(), templates::VERIFICATION)
        .with("token", token());
    let body: &'static [u8] = serde_json::to_vec(&Envelope::new(Job::SendVerification(job))).unwrap().leak();
    assert!(matches!(jobs.handle(&incoming(body, JobQueue::Notification)).await, worker::Outcome::DeadLetter(_)));
    // A token that is not one of ours never reaches a link.
    let job = EmailJob::new(&Email::parse("ada@example.com").unwrap(), &Language::default(), templates::VERIFICATION)
        .with("token", "x\" onclick=\"alert(1)");
    let body: &'static [u8] = serde_json::to_vec(&Envelope::new(Job::SendVerification(job))).unwrap().leak();
    assert!(matches!(jobs.handle(&incoming(body, JobQueue::Email)).await, worker::Outcome::DeadLetter(_)));
    // SMTP down: a retry, not a dead letter.
    let mut down = env.settings.clone();
    down.smtp.port = crate::proxy::closed_port();
    let jobs = worker::Application::build(&down).await.unwrap().jobs();
    let job = EmailJob::new(&Email::parse("ada@example.com").unwrap(), &Language::default(), templates::VERIFICATION)
        .with("token", token());
    let body: &'static [u8] = serde_json::to_vec(&Envelope::new(Job::SendVerification(job))).unwrap().leak();
    assert!(matches!(jobs.handle(&incoming(body, JobQueue::Email)).await, worker::Outcome::Retry(_)));
    assert_eq!(
        jobs.metrics.smtp_errors.with_label_values(&["connection"]).get()
            + jobs.metrics.smtp_errors.with_label_values(&["transient"]).get(),
        1
    );
}
