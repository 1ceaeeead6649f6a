use std::time::Duration;

use shared::db::processed_messages;
use shared::domain::{Email, Language};
use shared::queue::{templates, EmailJob, Envelope, Job};

use crate::helpers::{eventually, token, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_job_in_flight_and_exits_zero() {
    let env = TestEnv::new(3).await;
    // A slow SMTP server keeps the job in flight when SIGTERM arrives.
    env.sink.delay(Duration::from_millis(1500));
    let mut process = env.spawn_process();
    let job = EmailJob::new(&Email::parse("ada@example.com").unwrap(), &Language::default(), templates::VERIFICATION)
        .with("token", token());
    let envelope = Envelope::new(Job::SendVerification(job));
    env.publish(&envelope).await;
    eventually(Duration::from_secs(30), "the job to reach SMTP", || async {
        (env.sink.data_seen().len() == 1).then_some(())
    })
    .await;
    process.signal("TERM");
    let status = process.wait(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status:?}");
    // It drained: the email went out and the message was settled, not abandoned.
    assert_eq!(env.sink.accepted_count(), 1);
    eventually(Duration::from_secs(2), "the processed record", || async {
        processed_messages::is_processed(&env.pool, envelope.id).await.ok()?.then_some(())
    })
    .await;
    assert_eq!(env.depth(&env.topology().queue(envelope.queue())).await, 0);
}
