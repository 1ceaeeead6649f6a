//! The Pingora service: every request enters here. Hooks are in lifecycle order and
//! each delegates to a named function.
//!
//! Requests under `/auth` are answered by the in-process API; everything else is
//! matched against the route table and proxied.

pub mod api_bridge;
mod request_id;
pub mod respond;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use axum::Router;
use http::StatusCode;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};

use crate::api;
use crate::metrics::Metrics;

/// Per-request state.
pub struct RequestCtx {
    /// The id logged, forwarded and returned in `X-Request-Id`.
    pub request_id: String,
    /// When the request arrived.
    pub started: Instant,
    /// The route label for logs and metrics (`auth-api`, a route name, `none`).
    pub route: Arc<str>,
    /// The status the gateway answered itself, if it did.
    pub status: Option<StatusCode>,
}

/// The gateway service: shared state for every request.
pub struct Gateway {
    /// The auth API router.
    pub api: Router,
    /// Largest accepted API body.
    pub body_limit: usize,
    /// Metrics.
    pub metrics: Metrics,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx { request_id: String::new(), started: Instant::now(), route: Arc::from("none"), status: None }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.request_id = request_id::assign(session);
        if api::owns(session.req_header().uri.path()) {
            ctx.route = Arc::from("auth-api");
            ctx.status = Some(api_bridge::serve(session, &self.api, self.body_limit, &ctx.request_id).await?);
            return Ok(true);
        }
        self.refuse(session, ctx, StatusCode::NOT_FOUND, "route_not_found", "no route matches this request").await
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        // request_filter answers every request until routes are configured.
        Err(Error::explain(ErrorType::HTTPStatus(404), "no route"))
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        upstream_response.insert_header("x-request-id", &ctx.request_id)?;
        Ok(())
    }

    async fn logging(&self, session: &mut Session, error: Option<&pingora::Error>, ctx: &mut RequestCtx) {
        self.record(session, error, ctx);
    }
}

impl Gateway {
    /// Answers with a JSON error and stops the request.
    async fn refuse(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        status: StatusCode,
        code: &str,
        message: &str,
    ) -> Result<bool> {
        let id = http::HeaderValue::from_str(&ctx.request_id).unwrap_or(http::HeaderValue::from_static("-"));
        respond::json_error(session, status, code, message, &[(http::HeaderName::from_static("x-request-id"), id)])
            .await?;
        ctx.status = Some(status);
        Ok(true)
    }

    /// One log line and the request metrics. Logs the path without its query
    /// string: queries can carry tokens.
    fn record(&self, session: &Session, error: Option<&pingora::Error>, ctx: &RequestCtx) {
        let status =
            session.response_written().map(|r| r.status).or(ctx.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let req = session.req_header();
        let elapsed = ctx.started.elapsed();
        self.metrics.requests.with_label_values(&[&*ctx.route, req.method.as_str(), status.as_str()]).inc();
        self.metrics.duration.with_label_values(&[&*ctx.route]).observe(elapsed.as_secs_f64());
        let client = session.client_addr().map(|a| a.to_string()).unwrap_or_default();
        tracing::info!(
            request_id = %ctx.request_id,
            method = %req.method,
            path = %req.uri.path(),
            route = %ctx.route,
            status = status.as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            client = %client,
            error = error.map(|e| e.to_string()),
            "request"
        );
    }
}
