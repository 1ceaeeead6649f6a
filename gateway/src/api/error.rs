//! The one adapter from errors to HTTP: a status and `{"error", "message"}`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use shared::domain::ParseError;
use shared::telemetry::error_chain;

pub use crate::error_code::ErrorCode;

/// An API error: what the client sees. Internal details are logged, never sent.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// Stable machine-readable code (and with it the status).
    pub code: ErrorCode,
    /// A sentence for humans.
    pub message: String,
    /// Seconds for a `Retry-After` header (429 answers).
    pub retry_after: Option<u64>,
}

/// The body of every error answer of the API (and of the proxy).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody<'a> {
    /// The stable code to match on (README's "Error codes" table); the status
    /// follows from it.
    #[schema(example = "invalid_request")]
    pub error: &'a str,
    /// A sentence for humans; never match on it.
    #[schema(example = "the request could not be read")]
    pub message: &'a str,
}

impl ApiError {
    /// `code` with its own message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), retry_after: None }
    }

    /// The HTTP status: the code's.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// 429 `rate_limited` with `Retry-After: retry_after` (whole seconds, at least 1).
    pub fn rate_limited(retry_after: std::time::Duration) -> ApiError {
        ApiError { retry_after: Some(retry_after.as_secs().max(1)), ..ErrorCode::RateLimited.into() }
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidRequest, message)
    }

    /// 500 `internal_error`, logging the cause with its source chain.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> ApiError {
        tracing::error!(error = %error_chain(cause), "internal error");
        ErrorCode::InternalError.into()
    }

    /// 503 `service_unavailable`, logging the cause.
    pub fn unavailable(cause: &(dyn std::error::Error + 'static)) -> ApiError {
        tracing::warn!(error = %error_chain(cause), "dependency unavailable");
        ErrorCode::ServiceUnavailable.into()
    }
}

impl From<ErrorCode> for ApiError {
    /// `code` with its default message.
    fn from(code: ErrorCode) -> ApiError {
        ApiError::new(code, code.message())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status(), Json(ErrorBody { error: self.code.as_str(), message: &self.message })).into_response();
        if self.status() == StatusCode::UNAUTHORIZED {
            let value = format!(
                r#"Bearer error="{}""#,
                if self.code == ErrorCode::InvalidCredentials { "invalid_request" } else { "invalid_token" }
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
            JsonRejection::MissingJsonContentType(_) => ErrorCode::UnsupportedMediaType.into(),
            JsonRejection::JsonDataError(e) => ApiError::invalid_request(e.body_text()),
            JsonRejection::JsonSyntaxError(_) => ApiError::invalid_request("the body is not valid JSON"),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ErrorCode::PayloadTooLarge.into()
            }
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

impl From<ParseError> for ApiError {
    fn from(e: ParseError) -> ApiError {
        if e.field == "password" {
            ApiError::new(ErrorCode::WeakPassword, format!("password {}", e.reason))
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
            Error::Duplicate { .. } => ErrorCode::Conflict.into(),
            _ => ApiError::internal(&e),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    /// Transaction begin/commit failures: read as the db module reads them.
    fn from(e: sqlx::Error) -> ApiError {
        ApiError::from(shared::db::Error::from(e))
    }
}

impl From<shared::password::Error> for ApiError {
    fn from(e: shared::password::Error) -> ApiError {
        match e {
            shared::password::Error::Busy => ApiError::unavailable(&e),
            _ => ApiError::internal(&e),
        }
    }
}

impl From<shared::jwt::Error> for ApiError {
    fn from(e: shared::jwt::Error) -> ApiError {
        match e {
            shared::jwt::Error::Signing => ApiError::internal(&e),
            shared::jwt::Error::Expired => ApiError::new(ErrorCode::TokenExpired, "the access token has expired"),
            _ => ApiError::new(ErrorCode::InvalidToken, "the access token is not valid"),
        }
    }
}
