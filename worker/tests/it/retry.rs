use std::time::Duration;

use shared::domain::{Email, Language};
use shared::queue::{templates, EmailJob, Envelope, Job, JobQueue};

use crate::helpers::{eventually, token, TestEnv};

fn verification() -> Envelope {
    let job = EmailJob::new(&Email::parse("ada@example.com").unwrap(), &Language::default(), templates::VERIFICATION)
        .with("token", token());
    Envelope::new(Job::SendVerification(job))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_failures_back_off_then_dead_letter_and_replay_recovers() {
    let env = TestEnv::new(4).await;
    env.sink.fail_next(usize::MAX);
    let worker = env.spawn_in_process().await;
    let envelope = verification();
    env.publish(&envelope).await;

    let broker = env.broker();
    let dead = eventually(Duration::from_secs(30), "a dead letter", || async {
        let letters = worker::dead_letters::list(&broker, &[JobQueue::Email], 10).await.ok()?;
        (!letters.is_empty()).then_some(letters)
    })
    .await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, envelope.id.to_string());
    assert_eq!(dead[0].attempts, 4);
    assert!(dead[0].reason.contains("gave up after 4 attempts"), "{}", dead[0].reason);
    assert!(dead[0].reason.contains("451"), "{}", dead[0].reason);

    // Four tries, spaced by the doubling backoff (150, 300, 600 ms).
    let seen = env.sink.data_seen();
    assert_eq!(seen.len(), 4, "attempts: {seen:?}");
    for (i, expected_ms) in [150u64, 300, 600].into_iter().enumerate() {
        let gap = seen[i + 1] - seen[i];
        assert!(gap >= Duration::from_millis(expected_ms * 9 / 10), "gap {i} was {gap:?}, expected ~{expected_ms} ms");
    }
    assert_eq!(worker.jobs_total("email", "retried"), 3);
    assert_eq!(worker.jobs_total("email", "dead"), 1);
    assert_eq!(worker.jobs.metrics.smtp_errors.with_label_values(&["transient"]).get(), 4);
    assert_eq!(env.sink.accepted_count(), 0);

    // Listing left it in place; replaying (with SMTP healthy again) delivers it.
    env.sink.fail_next(0);
    let moved = worker::dead_letters::replay(&broker, &[JobQueue::Email], 10, None).await.unwrap();
    assert_eq!(moved.len(), 1);
    let mails = env.sink.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(env.depth(&env.topology().dead_letter_queue(JobQueue::Email)).await, 0);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_retried_until_it_passes() {
    let env = TestEnv::new(5).await;
    env.sink.fail_next(2);
    let worker = env.spawn_in_process().await;
    env.publish(&verification()).await;
    env.sink.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(env.sink.data_seen().len(), 3);
    eventually(Duration::from_secs(5), "the job to be acknowledged", || async {
        (worker.jobs_total("email", "ok") == 1).then_some(())
    })
    .await;
    assert_eq!(worker.jobs_total("email", "retried"), 2);
    assert_eq!(env.depth(&env.topology().dead_letter_queue(JobQueue::Email)).await, 0);
    worker.stop().await;
}
