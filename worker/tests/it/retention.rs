//! Retention: published outbox rows and processed-message records older than
//! `QUEUE_RETENTION` are deleted by the running worker, in batches; unpublished
//! rows and recent records stay.

use std::time::Duration;

use crate::helpers::{eventually, TestEnv};

async fn count(env: &TestEnv, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&env.pool).await.expect("count")
}

#[tokio::test]
async fn the_worker_deletes_what_is_past_retention_and_nothing_else() {
    let mut env = TestEnv::new(3).await;
    env.settings.queue.retention = Duration::from_secs(3600);
    env.settings.queue.purge_interval = Duration::from_millis(100);
    env.settings.validate().expect("valid");
    // Outbox: published two hours ago (goes), published five minutes ago (stays),
    // never published although a month old (stays: nothing unsent is ever lost).
    sqlx::query(
        "INSERT INTO outbox (id, queue, kind, payload, created_at, sent_at) VALUES
           (gen_random_uuid(), 'email', 'old-sent', NULL, now() - interval '30 days', now() - interval '2 hours'),
           (gen_random_uuid(), 'email', 'recent-sent', NULL, now() - interval '1 hour', now() - interval '5 minutes'),
           (gen_random_uuid(), 'email', 'old-unsent', '{}'::jsonb, now() - interval '30 days', NULL)",
    )
    .execute(&env.pool)
    .await
    .expect("seed outbox");
    // Processed: more old records than one delete batch, and one recent record.
    sqlx::query(
        "INSERT INTO processed_messages (message_id, queue, kind, processed_at)
         SELECT gen_random_uuid(), 'email', 'old', now() - interval '2 hours' FROM generate_series(1, 12001)",
    )
    .execute(&env.pool)
    .await
    .expect("seed processed");
    sqlx::query(
        "INSERT INTO processed_messages (message_id, queue, kind) VALUES (gen_random_uuid(), 'email', 'recent')",
    )
    .execute(&env.pool)
    .await
    .expect("seed recent");

    let worker = env.spawn_in_process().await;
    let purged = |table: &'static str| worker.jobs.metrics.purged.with_label_values(&[table]).get();
    eventually(Duration::from_secs(20), "the retention pass", || async {
        (purged("outbox") == 1 && purged("processed_messages") == 12001).then_some(())
    })
    .await;

    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM outbox ORDER BY kind").fetch_all(&env.pool).await.expect("outbox");
    assert_eq!(kinds, ["old-unsent", "recent-sent"]);
    assert_eq!(count(&env, "SELECT count(*) FROM processed_messages").await, 1);
    assert_eq!(count(&env, "SELECT count(*) FROM processed_messages WHERE kind = 'recent'").await, 1);
    // Later passes find nothing more to delete.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!((purged("outbox"), purged("processed_messages")), (1, 12001));
    worker.stop().await;
}
