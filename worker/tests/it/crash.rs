use std::time::Duration;

use shared::db::processed_messages;
use shared::domain::{Email, Language};
use shared::queue::{templates, EmailJob, Envelope, Job};

use crate::helpers::{eventually, token, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_leaves_the_job_to_be_redone_and_exactly_one_email_is_sent() {
    let env = TestEnv::new(3).await;
    // The first delivery reaches the SMTP server, which never answers: the job is
    // in flight when the worker dies.
    env.sink.hang_next(1);
    let mut first = env.spawn_process();
    let job = EmailJob::new(&Email::parse("ada@example.com").unwrap(), &Language::default(), templates::VERIFICATION)
        .with("token", token());
    let envelope = Envelope::new(Job::SendVerification(job));
    env.publish(&envelope).await;
    eventually(Duration::from_secs(30), "the job to reach SMTP", || async {
        (env.sink.data_seen().len() == 1).then_some(())
    })
    .await;
    first.signal("KILL");
    first.wait(Duration::from_secs(5)).await;
    assert_eq!(env.sink.accepted_count(), 0);

    let mut second = env.spawn_process();
    env.sink.wait_for(1, Duration::from_secs(30)).await;
    eventually(Duration::from_secs(10), "the message to be recorded as processed", || async {
        processed_messages::is_processed(&env.pool, envelope.id).await.ok()?.then_some(())
    })
    .await;
    // Stop the second worker cleanly: anything still pending would show up now.
    second.signal("TERM");
    assert!(second.wait(Duration::from_secs(15)).await.success());
    assert_eq!(env.sink.accepted_count(), 1, "exactly one email");
    assert_eq!(env.depth(&env.topology().queue(envelope.queue())).await, 0);
}
