//! Runs the axum API router in process for a Pingora session: read the body (up to
//! the cap), build an `http::Request`, call the router, stream the answer back.

use axum::body::Body;
use axum::Router;
use bytes::{Bytes, BytesMut};
use http::{header, StatusCode};
use http_body_util::BodyExt;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;
use tower::ServiceExt;
use tracing::Instrument;

use super::respond::{json_error, write_full};
use crate::api::extract::{ClientIp, RequestId};
use crate::error_code::ErrorCode;

/// Serves one API request; returns the status written.
///
/// # Errors
/// When the client connection fails.
/// `client_ip` is the client as the proxy decided it (the TCP peer, or the address
/// a trusted proxy forwarded), for per-IP limits and audit rows.
pub async fn serve(
    session: &mut Session,
    api: &Router,
    body_limit: usize,
    request_id: &str,
    client_ip: Option<std::net::IpAddr>,
    hsts: Option<&http::HeaderValue>,
) -> Result<StatusCode> {
    let body = match read_body(session, body_limit).await? {
        Some(body) => body,
        None => {
            let code = ErrorCode::PayloadTooLarge;
            let extra: Vec<_> = hsts.map(|v| (header::STRICT_TRANSPORT_SECURITY, v.clone())).into_iter().collect();
            json_error(session, code, code.message(), &extra).await?;
            return Ok(code.status());
        }
    };
    let mut parts = session.req_header().as_owned_parts();
    // One span per API request (the handlers' own spans nest in it), so every log
    // line of the request carries its id. The path only: queries may hold tokens.
    let span = tracing::info_span!("api", request_id, method = %parts.method, path = parts.uri.path());
    parts.extensions.insert(RequestId(request_id.to_owned()));
    parts.extensions.insert(ClientIp(client_ip));
    let request = http::Request::from_parts(parts, Body::from(body));
    let response = match api.clone().oneshot(request).instrument(span).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    write_response(session, response, request_id, hsts).await
}

/// The whole body, or `None` once it exceeds `limit` (declared or actual).
async fn read_body(session: &mut Session, limit: usize) -> Result<Option<Bytes>> {
    let declared = session
        .req_header()
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Ok(None);
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}

/// Writes an axum response: in one piece when its size is known, chunked otherwise
/// (server-sent events).
async fn write_response(
    session: &mut Session,
    response: http::Response<Body>,
    request_id: &str,
    hsts: Option<&http::HeaderValue>,
) -> Result<StatusCode> {
    let (parts, mut body) = response.into_parts();
    let mut header = ResponseHeader::build(parts.status, Some(parts.headers.len() + 2))?;
    for (name, value) in parts.headers.iter() {
        header.append_header(name.clone(), value.clone())?;
    }
    header.insert_header("x-request-id", request_id)?;
    if let Some(hsts) = hsts {
        header.insert_header(header::STRICT_TRANSPORT_SECURITY, hsts)?;
    }
    if let Some(exact) = http_body::Body::size_hint(&body).exact() {
        let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        debug_assert_eq!(bytes.len() as u64, exact);
        write_full(session, header, bytes).await?;
        return Ok(parts.status);
    }
    header.insert_header(header::TRANSFER_ENCODING, "chunked")?;
    session.write_response_header(Box::new(header), false).await?;
    while let Some(frame) = body.frame().await {
        match frame.map(|f| f.into_data()) {
            Ok(Ok(data)) => session.write_response_body(Some(data), false).await?,
            Ok(Err(_trailers)) => {}
            Err(e) => {
                tracing::warn!(error = %e, "API response stream failed");
                break;
            }
        }
    }
    session.write_response_body(None, true).await?;
    Ok(parts.status)
}
