//! The one adapter from errors to HTTP: a status and `{"error", "message"}`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use shared::domain::ParseError;
use shared::telemetry::error_chain;

/// An API error: what the client sees. Internal details are logged, never sent.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code (`invalid_request`, `email_taken`...).
    pub code: &'static str,
    /// A sentence for humans.
    pub message: String,
    /// Seconds for a `Retry-After` header (429 answers).
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
}

impl ApiError {
    /// Any status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), retry_after: None }
    }

    /// 429 `rate_limited` with `Retry-After: retry_after` (whole seconds, at least 1).
    pub fn rate_limited(retry_after: std::time::Duration) -> ApiError {
        ApiError {
            retry_after: Some(retry_after.as_secs().max(1)),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many attempts; retry later")
        }
    }

    /// 400 `invalid_token`: a one-time token that is unknown, used or expired.
    pub fn invalid_one_time_token() -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_token", "the token is invalid, used or expired")
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 401 with the given code; the response carries `WWW-Authenticate: Bearer`.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 404 `not_found`.
    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
    }

    /// 500 `internal_error`, logging the cause with its source chain.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> ApiError {
        tracing::error!(error = %error_chain(cause), "internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "something went wrong on our side")
    }

    /// 503 `service_unavailable`, logging the cause.
    pub fn unavailable(cause: &(dyn std::error::Error + 'static)) -> ApiError {
        tracing::warn!(error = %error_chain(cause), "dependency unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "a backing service is unavailable; retry shortly",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(Body { error: self.code, message: &self.message })).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            let value = format!(
                r#"Bearer error="{}""#,
                if self.code == "invalid_credentials" { "invalid_request" } else { "invalid_token" }
            );
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ),
            JsonRejection::JsonDataError(e) => ApiError::invalid_request(e.body_text()),
            JsonRejection::JsonSyntaxError(_) => ApiError::invalid_request("the body is not valid JSON"),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => payload_too_large(),
            other => ApiError::invalid_request(other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::invalid_request(format!("bad path: {}", rejection.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::invalid_request(rejection.body_text())
    }
}

/// 413 `payload_too_large`.
pub fn payload_too_large() -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
}

impl From<ParseError> for ApiError {
    fn from(e: ParseError) -> ApiError {
        if e.field == "password" {
            ApiError::new(StatusCode::BAD_REQUEST, "weak_password", format!("password {}", e.reason))
        } else {
            ApiError::invalid_request(e.to_string())
        }
    }
}

impl From<shared::db::Error> for ApiError {
    fn from(e: shared::db::Error) -> ApiError {
        use shared::db::Error;
        match &e {
            Error::Query(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed) => {
                ApiError::unavailable(&e)
            }
            Error::Duplicate { .. } => ApiError::new(StatusCode::CONFLICT, "conflict", "that value is already taken"),
            _ => ApiError::internal(&e),
        }
    }
}

impl From<shared::password::Error> for ApiError {
    fn from(e: shared::password::Error) -> ApiError {
        ApiError::internal(&e)
    }
}

impl From<shared::jwt::Error> for ApiError {
    fn from(e: shared::jwt::Error) -> ApiError {
        match e {
            shared::jwt::Error::Signing => ApiError::internal(&e),
            shared::jwt::Error::Expired => ApiError::unauthorized("token_expired", "the access token has expired"),
            _ => ApiError::unauthorized("invalid_token", "the access token is not valid"),
        }
    }
}
