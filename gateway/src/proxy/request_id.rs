//! `X-Request-Id`: kept when the client sent a sane one, generated otherwise, and
//! written back on the request so the upstream (and the API) see the same id.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use http::{HeaderName, HeaderValue};
use pingora::proxy::Session;

/// The header, for the upstream request and the answer.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Whether a client-sent id is safe to keep: 1 to 128 characters of
/// `[A-Za-z0-9._-]` (nothing that could forge log lines or headers).
pub fn is_valid(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A request's id, held as the header value it is sent as (built once, shared by
/// the upstream request and the answer) and read as text for logs. Only ids that
/// [`is_valid`] or [`generate`] made exist, so the text is always there.
#[derive(Debug, Clone)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Visible ASCII by construction; "-" only if that ever stopped holding.
        self.0.to_str().unwrap_or("-")
    }

    /// The id as a header value (a reference-counted copy).
    pub fn header(&self) -> HeaderValue {
        self.0.clone()
    }
}

impl Default for RequestId {
    fn default() -> Self {
        RequestId(HeaderValue::from_static("-"))
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The request's id: the client's when it sent exactly one sane id, else a new
/// one. The upstream request and the answer carry it (see `forward`).
pub fn assign(session: &Session) -> RequestId {
    // Kept only when sent once: with several, which one the upstream reads is its guess.
    let mut sent = session.req_header().headers.get_all(&HEADER).iter();
    if let (Some(id), None) = (sent.next(), sent.next()) {
        if id.to_str().is_ok_and(is_valid) {
            // The client's bytes, shared with the request header: no copy.
            return RequestId(id.clone());
        }
    }
    generate()
}

/// A new id, UUID-shaped (version 8): a random 64-bit prefix drawn once per
/// process, then a per-process counter, formatted into a stack buffer. Unique
/// across processes and instances (the prefixes differ), one atomic add and no
/// random draw or formatter per request. Not secret: nothing trusts a request id.
pub fn generate() -> RequestId {
    static PREFIX: OnceLock<[u8; 8]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(rand::random);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(prefix);
    bytes[8..].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    let mut text = uuid::Uuid::encode_buffer();
    let id = uuid::Builder::from_custom_bytes(bytes).into_uuid().hyphenated().encode_lower(&mut text);
    RequestId(HeaderValue::from_str(id).unwrap_or(HeaderValue::from_static("-")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids_and_refuses_injection() {
        assert!(is_valid("abc-123_x.y"));
        assert!(is_valid(&uuid::Uuid::new_v4().to_string()));
        assert!(!is_valid(""));
        assert!(!is_valid("a b"));
        assert!(!is_valid("a\r\nx-user-id: 1"));
        assert!(!is_valid(&"a".repeat(129)));
    }

    #[test]
    fn generated_ids_are_valid_uuids_and_distinct() {
        let (a, b) = (generate(), generate());
        let (a, b) = (a.as_str(), b.as_str());
        assert_ne!(a, b);
        for id in [a, b] {
            assert!(is_valid(id) && uuid::Uuid::parse_str(id).is_ok(), "{id}");
        }
        assert_eq!(a[..18], b[..18], "one prefix per process");
    }
}
