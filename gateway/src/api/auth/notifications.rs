//! The caller's notification feed: `GET /auth/notifications` (newest first, paged),
//! `POST /auth/notifications/read`, and `GET /auth/notifications/stream`
//! (Server-Sent Events fed by the worker's jobs through `shared::live`: Redis
//! pub/sub, or in process in single-node mode).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use shared::db::notifications::{self, Page};
use shared::queue::NotificationMessage;

use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, BearerUser};
use crate::api::openapi::errors;
use crate::api::wire::{MarkReadRequest, NotificationEvent, NotificationsBody, NotificationsQuery};
use crate::api::ApiState;
use crate::revocation::{Grant, Holder};

/// How often an idle stream sends a comment, so proxies and clients keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The most ids one mark-as-read call takes.
const MAX_IDS: usize = 500;

/// A page of the caller's notifications, newest first, with their unread count.
#[utoipa::path(
    get,
    path = "/auth/notifications",
    tag = "notifications",
    operation_id = "listNotifications",
    params(
        NotificationsQuery,
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of notifications, newest first", body = NotificationsBody),
        (status = 400, response = errors::InvalidRequest),
        (status = 401, response = errors::Unauthenticated),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "auth.notifications.list", skip_all)]
pub async fn list(
    State(state): State<Arc<ApiState>>,
    caller: BearerUser,
    query: Result<Query<NotificationsQuery>, QueryRejection>,
) -> Result<axum::Json<NotificationsBody>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid_request(e.body_text()))?;
    let page = Page {
        limit: query.limit.unwrap_or(Page::default().limit).clamp(1, 100),
        before: query.before,
        unread_only: query.unread.unwrap_or(false),
    };
    let rows = notifications::list_for_user(&state.pool, caller.id(), &page).await?;
    let unread_count = notifications::count_unread(&state.pool, caller.id()).await?;
    let next_before = (rows.len() as i64 == page.limit).then(|| rows.last().map(|n| n.id)).flatten();
    Ok(axum::Json(NotificationsBody {
        notifications: rows.iter().map(NotificationMessage::from).collect(),
        unread_count,
        next_before,
    }))
}

/// Marks notifications read.
///
/// Marks the listed notifications (or all of them) read: 204. Ids that are not the
/// caller's are ignored.
#[utoipa::path(
    post,
    path = "/auth/notifications/read",
    tag = "notifications",
    operation_id = "markNotificationsRead",
    request_body = MarkReadRequest,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Marked read"),
        (status = 400, response = errors::InvalidRequest),
        (status = 401, response = errors::Unauthenticated),
        (status = 413, response = errors::PayloadTooLarge),
        (status = 415, response = errors::UnsupportedMediaType),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "auth.notifications.mark_read", skip_all)]
pub async fn mark_read(
    State(state): State<Arc<ApiState>>,
    caller: BearerUser,
    ApiJson(req): ApiJson<MarkReadRequest>,
) -> Result<StatusCode, ApiError> {
    match (req.all, req.ids.len()) {
        (true, 0) => {
            notifications::mark_all_read(&state.pool, caller.id()).await?;
        }
        (false, 1..=MAX_IDS) => {
            notifications::mark_read(&state.pool, caller.id(), &req.ids).await?;
        }
        (false, 0) | (true, _) => {
            return Err(ApiError::invalid_request("send either a non-empty \"ids\" list or \"all\": true"))
        }
        (false, _) => return Err(ApiError::invalid_request(format!("at most {MAX_IDS} ids per call"))),
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Live notifications, as Server-Sent Events.
///
/// Live notifications as Server-Sent Events (`event: notification`, `id`: the
/// notification id, `data`: its JSON), starting with a `: connected` comment once
/// the subscription is in place, with keep-alive comments. The stream ends when
/// the access token expires (the client reconnects with a fresh one and lists
/// what it missed), or within a second of logout-all. 503 when Redis is unreachable.
/// In single-node mode the stream hears the jobs this gateway runs itself.
#[utoipa::path(
    get,
    path = "/auth/notifications/stream",
    tag = "notifications",
    operation_id = "streamNotifications",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Server-Sent Events: a `: connected` comment, then `event: notification` with the notification JSON as `data` and its id as `id`, keep-alive comments every 15 s; ends when the access token expires or the user's sessions end", content_type = "text/event-stream", body = NotificationEvent),
        (status = 401, response = errors::Unauthenticated),
        (status = 503, response = errors::Unavailable),
    ),
)]
#[tracing::instrument(name = "auth.notifications.stream", skip_all)]
pub async fn stream(
    State(state): State<Arc<ApiState>>,
    caller: BearerUser,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let subscription = state.live.subscribe(caller.id()).await.map_err(|e| ApiError::unavailable(&e))?;
    let connected = futures::stream::once(async { Ok(Event::default().comment("connected")) });
    let live = subscription.filter_map(|payload| async move {
        // Forward only what parses as a notification; the id lets clients dedupe.
        let id = serde_json::from_str::<NotificationMessage>(&payload).ok()?.id;
        Some(Ok(Event::default().event("notification").id(id.to_string()).data(payload)))
    });
    // Ends with the token, or sooner when the user's sessions end (logout-all,
    // a password reset): the client's next connection is then refused.
    let grant = Grant {
        holder: Holder::User { id: caller.id(), token_version: caller.claims.ver },
        tenant: None,
        expires_at: caller.claims.exp,
    };
    let revocations = state.revocations.clone();
    let ended = Box::pin(async move { revocations.ended(grant).await });
    let events = connected.chain(live).take_until(ended);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}
