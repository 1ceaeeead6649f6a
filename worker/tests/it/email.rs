use std::time::Duration;

use shared::domain::{Email, Language};
use shared::queue::{templates, EmailJob, Envelope, Job, JobQueue};

use crate::helpers::{eventually, token, TestEnv, APP_URL};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_jobs_arrive_multipart_in_their_language_with_links_from_app_url() {
    let env = TestEnv::new(3).await;
    let worker = env.spawn_in_process().await;

    let verify_token = token();
    let job = EmailJob::new(
        &Email::parse("ada@example.com").unwrap(),
        &Language::parse("de").unwrap(),
        templates::VERIFICATION,
    )
    .with("token", verify_token.clone())
    .with("name", "Ada")
    // A link smuggled into the data must not make it into the email.
    .with("link", "https://evil.example/phish");
    env.publish(&Envelope::new(Job::SendVerification(job))).await;

    let reset_token = token();
    let job = EmailJob::new(
        &Email::parse("bob@example.com").unwrap(),
        &Language::parse("fr").unwrap(),
        templates::PASSWORD_RESET,
    )
    .with("token", reset_token.clone());
    env.publish(&Envelope::new(Job::SendPasswordReset(job))).await;

    let mails = env.sink.wait_for(2, Duration::from_secs(20)).await;
    let de = mails.iter().find(|m| m.rcpt.iter().any(|r| r.contains("ada@example.com"))).expect("ada's email");
    let body = de.decoded();
    assert!(body.contains("multipart/alternative"), "{body}");
    assert!(body.contains("text/plain") && body.contains("text/html"), "{body}");
    assert!(body.contains("Hallo Ada"), "German template expected: {body}");
    assert!(body.contains(&format!("{APP_URL}/auth/ui/verified?token={verify_token}")), "{body}");
    assert!(!body.contains("evil.example"), "{body}");

    let fr = mails.iter().find(|m| m.rcpt.iter().any(|r| r.contains("bob@example.com"))).expect("bob's email");
    let body = fr.decoded();
    assert!(body.contains("Hello"), "English fallback expected: {body}");
    assert!(body.contains(&format!("{APP_URL}/auth/ui/reset?token={reset_token}")), "{body}");

    eventually(Duration::from_secs(5), "two ok jobs", || async {
        (worker.jobs_total("email", "ok") == 2).then_some(())
    })
    .await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_email_job_is_not_sent_twice() {
    let env = TestEnv::new(3).await;
    let worker = env.spawn_in_process().await;
    let job = EmailJob::new(&Email::parse("ada@example.com").unwrap(), &Language::default(), templates::INVITATION)
        .with("token", token())
        .with("tenantName", "Widgets");
    let envelope = Envelope::new(Job::SendInvitation(job));
    env.publish(&envelope).await;
    env.sink.wait_for(1, Duration::from_secs(20)).await;
    // The same message again, as after a lost ack or a relay publishing twice.
    env.publish(&envelope).await;
    eventually(Duration::from_secs(10), "the duplicate to be acknowledged", || async {
        (worker.jobs_total("email", "ok") == 2).then_some(())
    })
    .await;
    assert_eq!(env.sink.accepted_count(), 1);
    assert_eq!(env.depth(&env.topology().queue(JobQueue::Email)).await, 0);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_transport_log_writes_recipient_subject_and_link_to_the_log_and_settles_the_job() {
    let env = TestEnv::new(3).await;
    let log_path = std::env::temp_dir().join(format!("tg-mail-log-{}.txt", uuid::Uuid::new_v4().simple()));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut worker = env.spawn_process_with(&[("MAIL_TRANSPORT", "log")], Some(&log));

    let verify_token = token();
    let job = EmailJob::new(
        &Email::parse("ada@example.com").unwrap(),
        &Language::parse("en").unwrap(),
        templates::VERIFICATION,
    )
    .with("token", verify_token.clone())
    .with("name", "Ada");
    let envelope = Envelope::new(Job::SendVerification(job));
    env.publish(&envelope).await;

    let link = format!("{APP_URL}/auth/ui/verified?token={verify_token}");
    let text = eventually(Duration::from_secs(20), "the email in the log", || async {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        text.contains(&link).then_some(text)
    })
    .await;
    let line =
        text.lines().find(|l| l.contains("MAIL_TRANSPORT=log") && l.contains("ada@example.com")).expect("the line");
    assert!(line.contains("subject="), "{line}");
    assert!(text.contains("emails, with their one-time links, go to this log"), "warned at start: {text}");
    // Logged is delivered: recorded, so a redelivery is not logged again.
    eventually(Duration::from_secs(10), "the job recorded as processed", || async {
        shared::db::processed_messages::is_processed(&env.pool, envelope.id).await.unwrap().then_some(())
    })
    .await;
    assert_eq!(env.sink.accepted_count(), 0, "nothing went to the SMTP server");
    worker.signal("TERM");
    assert!(worker.wait(Duration::from_secs(10)).await.success());
    let _ = std::fs::remove_file(&log_path);
}
