//! The notification feed: listing, marking read, and the live SSE stream fed by
//! Redis pub/sub (published here the way the worker publishes).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shared::db::notifications::{self, NewNotification};
use shared::domain::UserId;
use shared::queue::{notification_channel, NotificationMessage};

use crate::helpers::*;

use testkit::REDIS_URL;

async fn store(app: &TestApp, user: UserId, event: &str, minutes_ago: i64) -> uuid::Uuid {
    let id = uuid::Uuid::now_v7();
    let data = json!({"n": minutes_ago});
    let new = NewNotification {
        id,
        user_id: user,
        tenant_id: None,
        event,
        data: &data,
        at: chrono::Utc::now() - chrono::Duration::minutes(minutes_ago),
    };
    notifications::insert(&app.db.pool().await, &new).await.unwrap();
    id
}

async fn list(app: &TestApp, token: &str, query: &str) -> Value {
    let res = app.get_bearer(&format!("/auth/notifications{query}"), token).await;
    assert_eq!(res.status(), 200, "list {query}");
    res.json().await.unwrap()
}

fn ids(body: &Value) -> Vec<String> {
    body["notifications"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn notifications_are_listed_newest_first_paged_and_marked_read() {
    let app = spawn_app().await;
    let reg = app.register(&unique_email(), None).await;
    let token = reg["accessToken"].as_str().unwrap();
    let user: UserId = reg["user"]["id"].as_str().unwrap().parse().unwrap();
    let oldest = store(&app, user, "register", 30).await;
    let middle = store(&app, user, "login", 20).await;
    let newest = store(&app, user, "logout", 10).await;
    // Someone else's notification never shows.
    let other = app.register(&unique_email(), None).await;
    store(&app, other["user"]["id"].as_str().unwrap().parse().unwrap(), "login", 5).await;

    let page1 = list(&app, token, "?limit=2").await;
    assert_eq!(ids(&page1), [newest.to_string(), middle.to_string()]);
    assert_eq!(page1["unreadCount"], 3);
    assert_eq!(page1["notifications"][0]["event"], "logout");
    let next = page1["nextBefore"].as_str().unwrap();
    let page2 = list(&app, token, &format!("?limit=2&before={next}")).await;
    assert_eq!(ids(&page2), [oldest.to_string()]);
    assert!(page2.get("nextBefore").is_none());
    assert_error(app.get_bearer("/auth/notifications?limit=many", token).await, 400, "invalid_request").await;
    assert_error(app.client.get(app.url("/auth/notifications")).send().await.unwrap(), 401, "missing_token").await;

    let shared_app = &app;
    let read = |body: Value| async move {
        shared_app
            .client
            .post(shared_app.url("/auth/notifications/read"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    };
    assert_eq!(read(json!({"ids": [newest]})).await.status(), 204);
    let unread = list(&app, token, "?unread=true").await;
    assert_eq!(ids(&unread), [middle.to_string(), oldest.to_string()]);
    assert_eq!(unread["unreadCount"], 2);
    assert!(list(&app, token, "").await["notifications"][0]["readAt"].is_string());
    assert_error(read(json!({})).await, 400, "invalid_request").await;
    assert_eq!(read(json!({"all": true})).await.status(), 204);
    assert_eq!(list(&app, token, "").await["unreadCount"], 0);
}

#[tokio::test]
async fn the_stream_delivers_published_notifications_as_server_sent_events() {
    let app = spawn_app().await;
    let reg = app.register(&unique_email(), None).await;
    let token = reg["accessToken"].as_str().unwrap();
    let user: UserId = reg["user"]["id"].as_str().unwrap().parse().unwrap();
    assert_error(app.client.get(app.url("/auth/notifications/stream")).send().await.unwrap(), 401, "missing_token")
        .await;

    let mut res = app.get_bearer("/auth/notifications/stream", token).await;
    assert_eq!(res.status(), 200);
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains(": connected") {
        let chunk = tokio::time::timeout_at(deadline.into(), res.chunk()).await.expect("connected comment");
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap().expect("stream open")));
    }

    // Publish as the worker does, once the subscription is known to be live.
    let message = NotificationMessage {
        id: uuid::Uuid::now_v7(),
        user_id: user,
        tenant_id: None,
        event: "login".into(),
        data: json!({"ip": "203.0.113.9"}),
        at: chrono::Utc::now(),
        read_at: None,
    };
    let payload = serde_json::to_string(&message).unwrap();
    let client = redis::Client::open(REDIS_URL).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    // Another user's channel must not reach this stream.
    let stranger = notification_channel(&app.prefix, UserId::new());
    let _: i64 = redis::cmd("PUBLISH").arg(&stranger).arg("{}").query_async(&mut conn).await.unwrap();
    let receivers: i64 = redis::cmd("PUBLISH")
        .arg(notification_channel(&app.prefix, user))
        .arg(&payload)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(receivers, 1);

    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains(&payload) {
        let chunk = tokio::time::timeout_at(deadline.into(), res.chunk()).await.expect("the notification");
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap().expect("stream open")));
    }
    assert!(seen.contains("event: notification"), "{seen}");
    assert!(seen.contains(&format!("id: {}", message.id)), "{seen}");
    assert!(!seen.contains("data: {}"), "{seen}");
}
