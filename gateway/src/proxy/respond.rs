//! Writing responses the gateway makes itself (errors, API answers) to a Pingora
//! session.

use crate::error_code::ErrorCode;
use bytes::Bytes;
use http::{header, HeaderName, HeaderValue};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;
use serde::Serialize;

/// The error body every gateway-made error uses.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
}

/// Writes `{"error": code, "message": message}` with `status`, plus `extra` headers.
///
/// # Errors
/// When the client connection fails mid-write.
pub async fn json_error(
    session: &mut Session,
    code: ErrorCode,
    message: &str,
    extra: &[(HeaderName, HeaderValue)],
) -> Result<()> {
    let body = serde_json::to_vec(&ErrorBody { error: code.as_str(), message }).unwrap_or_default();
    let mut header = ResponseHeader::build(code.status(), Some(4 + extra.len()))?;
    header.insert_header(header::CONTENT_TYPE, "application/json")?;
    header.insert_header(header::CACHE_CONTROL, "no-store")?;
    for (name, value) in extra {
        header.append_header(name.clone(), value.clone())?;
    }
    write_full(session, header, Bytes::from(body)).await
}

/// Writes a complete response with a known body.
///
/// # Errors
/// When the client connection fails mid-write.
pub async fn write_full(session: &mut Session, mut header: ResponseHeader, body: Bytes) -> Result<()> {
    header.set_content_length(body.len())?;
    let head_only = session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(header), body.is_empty() || head_only).await?;
    if !body.is_empty() && !head_only {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}
