use std::time::Duration;

use futures::StreamExt;
use shared::db::notifications::{self, Page};
use shared::domain::{TenantId, UserId};
use shared::queue::{notification_channel, AuthEvent, AuthEventKind, Envelope, Job, NotificationMessage};

use crate::helpers::{create_user, eventually, TestEnv, REDIS_URL};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_events_are_stored_and_published_on_the_users_channel() {
    let env = TestEnv::new(3).await;
    let user = create_user(&env.pool, "ada@example.com").await;
    let client = redis::Client::open(REDIS_URL).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(notification_channel(&env.redis_prefix, user)).await.unwrap();
    let mut stream = pubsub.into_on_message();

    let worker = env.spawn_in_process().await;
    let tenant = TenantId::new();
    let events = [
        AuthEvent::now(user, None, AuthEventKind::Register),
        AuthEvent::now(user, None, AuthEventKind::Login).with("ip", "203.0.113.9"),
        AuthEvent::now(user, Some(tenant), AuthEventKind::RoleChanged).with("role", "admin"),
    ];
    let mut ids = Vec::new();
    for event in events {
        let envelope = Envelope::new(Job::AuthEvent(event));
        ids.push(envelope.id);
        env.publish(&envelope).await;
    }
    // An event for a user that does not exist is dropped, not retried.
    env.publish(&Envelope::new(Job::AuthEvent(AuthEvent::now(UserId::new(), None, AuthEventKind::Login)))).await;

    let mut received = Vec::new();
    while received.len() < 3 {
        let msg =
            tokio::time::timeout(Duration::from_secs(20), stream.next()).await.expect("a live notification").unwrap();
        let payload: String = msg.get_payload().unwrap();
        received.push(serde_json::from_str::<NotificationMessage>(&payload).unwrap());
    }
    let mut got: Vec<_> = received.iter().map(|m| m.id).collect();
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want);
    let role = received.iter().find(|m| m.event == "role-changed").unwrap();
    assert_eq!(role.tenant_id, Some(tenant));
    assert_eq!(role.data["role"], "admin");

    eventually(Duration::from_secs(10), "four acknowledged events", || async {
        (worker.jobs_total("notification", "ok") == 4).then_some(())
    })
    .await;

    // Newest first, paged, and marked read only for their owner.
    let page1 = notifications::list_for_user(&env.pool, user, &Page { limit: 2, ..Page::default() }).await.unwrap();
    assert_eq!(page1.len(), 2);
    assert!(page1[0].at >= page1[1].at);
    let page2 = notifications::list_for_user(
        &env.pool,
        user,
        &Page { limit: 2, before: Some(page1[1].id), unread_only: false },
    )
    .await
    .unwrap();
    assert_eq!(page2.len(), 1);
    assert_eq!(notifications::count_unread(&env.pool, user).await.unwrap(), 3);
    assert_eq!(notifications::mark_read(&env.pool, UserId::new(), &[page1[0].id]).await.unwrap(), 0);
    assert_eq!(notifications::mark_read(&env.pool, user, &[page1[0].id]).await.unwrap(), 1);
    let unread =
        notifications::list_for_user(&env.pool, user, &Page { unread_only: true, ..Page::default() }).await.unwrap();
    assert_eq!(unread.len(), 2);
    assert_eq!(notifications::mark_all_read(&env.pool, user).await.unwrap(), 2);
    worker.stop().await;
}
