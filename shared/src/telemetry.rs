//! Logging, metrics and the admin listener (`/healthz`, `/readyz`, `/metrics`) that
//! both binaries serve.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus::{Encoder, Registry, TextEncoder};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Errors from telemetry setup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `LOG_LEVEL` did not parse.
    #[error("invalid LOG_LEVEL: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    /// A global subscriber was already installed.
    #[error("tracing already initialised: {0}")]
    Init(#[from] tracing_subscriber::util::TryInitError),
}

/// Installs the global tracing subscriber: text or JSON lines on stderr, filtered by
/// `RUST_LOG` if set, else `LOG_LEVEL`.
///
/// # Errors
/// [`Error`] on a bad filter or a second call.
pub fn init_tracing(settings: &LogSettings) -> Result<(), Error> {
    init_tracing_with(settings, Vec::new())
}

/// A library's log lines a binary takes over: every event from `target` (a
/// module path, as the `log` crate names it) is shown to `consume`, which returns
/// true when it handled the line (counted it in a metric) and it should not be
/// printed. For libraries that report something only by logging it (Pingora's
/// failed TLS handshakes).
#[derive(Clone, Copy)]
pub struct Intercept {
    /// The events' target.
    pub target: &'static str,
    /// Called with the event's message.
    pub consume: fn(&str) -> bool,
}

/// The intercepts, as one layer. Not a `Vec<Intercept>` layer: an empty one
/// would register no interest in any callsite and silence every log line.
struct Intercepts(Vec<Intercept>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Intercepts {
    fn event_enabled(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        // A `log` record arrives as an event of the `log` target carrying its own
        // target in the `log.target` field (tracing-log).
        let own = event.metadata().target();
        if own != "log" && !self.0.iter().any(|i| i.target == own) {
            return true;
        }
        let mut fields = LogFields::default();
        event.record(&mut fields);
        let target = if own == "log" { fields.target.as_str() } else { own };
        self.0.iter().filter(|i| i.target == target).all(|i| !(i.consume)(&fields.message))
    }
}

/// The message and the `log` target of an event.
#[derive(Default)]
struct LogFields {
    message: String,
    target: String,
}

impl tracing::field::Visit for LogFields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "log.target" => self.target = format!("{value:?}"),
            _ => {}
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "message" => value.clone_into(&mut self.message),
            "log.target" => value.clone_into(&mut self.target),
            _ => {}
        }
    }
}

/// [`init_tracing`], with library log lines taken over by `intercepts`.
///
/// # Errors
/// [`Error`] on a bad filter or a second call.
pub fn init_tracing_with(settings: &LogSettings, intercepts: Vec<Intercept>) -> Result<(), Error> {
    let mut filter = match std::env::var("RUST_LOG") {
        Ok(directive) if !directive.is_empty() => EnvFilter::try_new(directive)?,
        _ => EnvFilter::try_new(&settings.level)?,
    };
    // What an intercept counts must reach it whatever the log level says (its
    // lines are errors, and the ones it consumes are not printed anyway).
    for intercept in &intercepts {
        filter = filter.add_directive(format!("{}=error", intercept.target).parse()?);
    }
    let registry = tracing_subscriber::registry()
        .with(Intercepts(intercepts))
        .with(filter)
        .with(filter_fn(|meta| !dumps_headers(meta)));
    match settings.format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init()?,
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_writer(std::io::stderr),
            )
            .try_init()?,
    }
    Ok(())
}

/// Libraries whose debug and trace output prints raw HTTP headers (Pingora logs
/// every request head it sends upstream): bearer tokens, cookies, the assertion.
const HEADER_DUMPERS: &[&str] = &["pingora_proxy", "pingora_core", "pingora", "h2", "hyper", "hyper_util"];

/// Whether an event is one of those: dropped whatever `LOG_LEVEL` says, so
/// debug logs never carry a credential. The gateway's own debug logs name
/// headers, never their values.
fn dumps_headers(meta: &tracing::Metadata<'_>) -> bool {
    let target = meta.target();
    *meta.level() > tracing::Level::INFO
        && HEADER_DUMPERS
            .iter()
            .any(|lib| target.strip_prefix(lib).is_some_and(|rest| rest.is_empty() || rest.starts_with("::")))
}

/// Logs an error with its whole `source()` chain, as one line.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// One dependency's readiness.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    /// The dependency (`postgres`, `redis`...).
    pub name: &'static str,
    /// `None` when healthy, else why not.
    pub error: Option<String>,
}

/// A future resolving to the readiness of every dependency.
pub type ReadinessFuture = Pin<Box<dyn Future<Output = Vec<Check>> + Send>>;

/// Produces a [`ReadinessFuture`] on each `/readyz` call.
pub type Readiness = Arc<dyn Fn() -> ReadinessFuture + Send + Sync>;

#[derive(Clone)]
struct AdminState {
    registry: Registry,
    readiness: Readiness,
}

/// The admin router: `/healthz` (the process is up), `/readyz` (every dependency
/// answers; 503 otherwise, with the failing ones named) and `/metrics` (Prometheus
/// text format from `registry`).
pub fn admin_router(registry: Registry, readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(serde_json::json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(AdminState { registry, readiness })
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let checks = (state.readiness)().await;
    let ready = checks.iter().all(|c| c.error.is_none());
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": checks,
    });
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let encoder = TextEncoder::new();
    let mut buffer = Vec::new();
    match encoder.encode(&state.registry.gather(), &mut buffer) {
        Ok(()) => ([(header::CONTENT_TYPE, encoder.format_type().to_owned())], buffer).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Serves `router` on `listener` until `shutdown` resolves.
///
/// # Errors
/// I/O errors from the listener.
pub async fn serve_admin(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}
