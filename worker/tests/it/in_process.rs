//! The jobs as the gateway runs them in single-node mode: straight from the outbox,
//! retried with the queue's backoff, dead after the last attempt, and listed, shown
//! and replayed by `worker dead-letters` without RabbitMQ.

use std::process::Command;
use std::time::Duration;

use shared::db::outbox;
use shared::domain::{Email, Language};
use shared::queue::{templates, EmailJob, Envelope, Job, JobQueue};
use worker::in_process::{run_once, Ran};
use worker::Outcome;

use crate::helpers::{eventually, token, TestEnv};

fn email(kind: fn(EmailJob) -> Job, to: &str, template: &str, secret: &str) -> Envelope {
    let job = EmailJob::new(&Email::parse(to).unwrap(), &Language::default(), template).with("token", secret);
    Envelope::new(kind(job))
}

/// The real `worker ARGS` with RabbitMQ unset.
fn worker_without_rabbitmq(env: &TestEnv, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_worker"))
        .args(["--config", "does-not-exist.toml"])
        .args(args)
        .current_dir(std::env::temp_dir())
        .env_clear()
        .envs(env.env())
        .env("RABBITMQ_URL", "")
        .output()
        .unwrap()
}

/// `worker dead-letters ARGS` with RabbitMQ unset; its stdout.
fn dead_letters(env: &TestEnv, args: &[&str]) -> String {
    let out = worker_without_rabbitmq(env, &[&["dead-letters"], args].concat());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_jobs_back_off_die_and_are_replayed_from_postgres() {
    let env = TestEnv::new(2).await;
    let app = worker::Application::build(&env.settings).await.unwrap();
    let jobs = app.jobs();
    let topology = env.topology();
    let reset_token = token();
    let verify = email(Job::SendVerification, "ada@example.com", templates::VERIFICATION, &token());
    let reset = email(Job::SendPasswordReset, "bob@example.com", templates::PASSWORD_RESET, &reset_token);
    let mut conn = env.pool.acquire().await.unwrap();
    outbox::insert(&mut conn, &verify).await.unwrap();
    outbox::insert(&mut conn, &reset).await.unwrap();

    env.sink.fail_next(usize::MAX);
    for _ in 0..2 {
        let ran = run_once(&jobs, &topology).await.unwrap();
        assert!(matches!(ran, Ran::Settled(Outcome::Retry(ref r)) if r.contains("451")), "{ran:?}");
    }
    assert_eq!(run_once(&jobs, &topology).await.unwrap(), Ran::Idle, "both wait out their backoff (150 ms)");
    let died = eventually(Duration::from_secs(10), "both jobs dead", || async {
        let _ = run_once(&jobs, &topology).await.unwrap();
        let dead = worker::dead_letters::list_outbox(&env.pool, &JobQueue::ALL, 10, &Default::default()).await.ok()?;
        (dead.len() == 2).then_some(dead)
    })
    .await;
    assert!(died.iter().all(|l| l.attempts == 2 && l.reason.starts_with("gave up after 2 attempts")), "{died:?}");
    assert_eq!(env.sink.data_seen().len(), 4);
    assert_eq!(jobs.metrics.jobs.with_label_values(&["email", "dead"]).get(), 2);
    assert_eq!(run_once(&jobs, &topology).await.unwrap(), Ran::Idle, "dead rows are never picked up on their own");

    // The real binary, without RabbitMQ: list and filter, show without the token.
    let listed = dead_letters(&env, &["list"]);
    assert!(listed.contains(&verify.id.to_string()) && listed.contains("2 dead letter(s)"), "{listed}");
    let by_type = dead_letters(&env, &["list", "--type", "send-password-reset"]);
    assert!(by_type.contains("1 dead letter(s)") && !by_type.contains(&verify.id.to_string()), "{by_type}");
    let shown = dead_letters(&env, &["show", &reset.id.to_string()]);
    assert!(shown.contains("type      send-password-reset") && shown.contains("bob@example.com"), "{shown}");
    assert!(shown.contains("[redacted]") && !shown.contains(&reset_token), "{shown}");

    // Replay by type: that one is due again and goes out; the other stays dead.
    env.sink.fail_next(0);
    let replayed = dead_letters(&env, &["replay", "--type", "send-password-reset"]);
    assert!(replayed.contains("1 dead letter(s) requeued"), "{replayed}");
    assert_eq!(run_once(&jobs, &topology).await.unwrap(), Ran::Settled(Outcome::Ack));
    let mail = env.sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(mail[0].rcpt, ["<bob@example.com>"]);
    let still_dead = worker::dead_letters::list_outbox(&env.pool, &JobQueue::ALL, 10, &Default::default()).await;
    assert_eq!(still_dead.unwrap().iter().map(|l| l.id.clone()).collect::<Vec<_>>(), [verify.id.to_string()]);
    assert_eq!(outbox::count_unsent(&env.pool).await.unwrap(), 0, "dead rows are not waiting rows");
}

#[tokio::test]
async fn the_daemon_refuses_to_start_without_rabbitmq_and_says_why() {
    let env = TestEnv::new(1).await;
    let out = worker_without_rabbitmq(&env, &["run"]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("RABBITMQ_URL is not set") && text.contains("gateway runs the email"), "{text}");
}
