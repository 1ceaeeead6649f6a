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
        let letters = worker::dead_letters::list(&broker, &[JobQueue::Email], 10, &Default::default()).await.ok()?;
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
    let moved = worker::dead_letters::replay(&broker, &[JobQueue::Email], 10, &Default::default()).await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_filtered_by_type_and_reason_and_shown_with_tokens_redacted() {
    let env = TestEnv::new(2).await;
    env.sink.fail_next(usize::MAX);
    let worker = env.spawn_in_process().await;
    let verify = verification();
    let reset_token = token();
    let reset = Envelope::new(Job::SendPasswordReset(
        EmailJob::new(&Email::parse("bob@example.com").unwrap(), &Language::default(), templates::PASSWORD_RESET)
            .with("token", reset_token.clone()),
    ));
    env.publish(&verify).await;
    env.publish(&reset).await;
    let broker = env.broker();
    let all = worker::dead_letters::Filter::default();
    eventually(Duration::from_secs(30), "two dead letters", || async {
        let letters = worker::dead_letters::list(&broker, &[JobQueue::Email], 10, &all).await.ok()?;
        (letters.len() == 2).then_some(())
    })
    .await;
    worker.stop().await;

    let by_type = worker::dead_letters::Filter { kind: Some("send-password-reset".into()), ..Default::default() };
    let found = worker::dead_letters::list(&broker, &JobQueue::ALL, 10, &by_type).await.unwrap();
    assert_eq!(found.iter().map(|l| l.id.clone()).collect::<Vec<_>>(), [reset.id.to_string()]);
    let by_reason = worker::dead_letters::Filter { reason: Some("GAVE UP AFTER 2".into()), ..Default::default() };
    assert_eq!(worker::dead_letters::list(&broker, &JobQueue::ALL, 10, &by_reason).await.unwrap().len(), 2);
    let no_match = worker::dead_letters::Filter { reason: Some("550".into()), ..Default::default() };
    assert!(worker::dead_letters::list(&broker, &JobQueue::ALL, 10, &no_match).await.unwrap().is_empty());

    // `worker dead-letters show ID`, the real binary: the body without its token.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_worker"))
        .args(["--config", "does-not-exist.toml", "dead-letters", "show", &reset.id.to_string()])
        .current_dir(std::env::temp_dir())
        .env_clear()
        .envs(env.env())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("type      send-password-reset") && text.contains("bob@example.com"), "{text}");
    assert!(text.contains("[redacted]") && !text.contains(&reset_token), "{text}");

    // Replaying by type moves that one only; the other stays dead.
    env.sink.fail_next(0);
    let moved = worker::dead_letters::replay(&broker, &[JobQueue::Email], 10, &by_type).await.unwrap();
    assert_eq!(moved.len(), 1);
    assert_eq!(env.depth(&env.topology().dead_letter_queue(JobQueue::Email)).await, 1);
    let left = worker::dead_letters::list(&broker, &[JobQueue::Email], 10, &all).await.unwrap();
    assert_eq!(left[0].id, verify.id.to_string());
}
