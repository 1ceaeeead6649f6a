//! `X-Request-Id`: kept when the client sent a sane one, generated otherwise, and
//! written back on the request so the upstream (and the API) see the same id.

use pingora::proxy::Session;

const HEADER: &str = "x-request-id";

/// Whether a client-sent id is safe to keep: 1 to 128 characters of
/// `[A-Za-z0-9._-]` (nothing that could forge log lines or headers).
pub fn is_valid(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Picks the request id and sets it on the request header.
pub fn assign(session: &mut Session) -> String {
    // Kept only when sent once: with several, which one the upstream reads is its guess.
    let mut sent = session.req_header().headers.get_all(HEADER).iter();
    if let (Some(id), None) = (sent.next().and_then(|v| v.to_str().ok()).filter(|v| is_valid(v)), sent.next()) {
        return id.to_owned();
    }
    // A v4 UUID from the thread-local CSPRNG: no system call per request.
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid().to_string();
    // The id is ASCII by construction, so the header insert cannot fail. It
    // replaces every invalid id the client sent.
    let _ = session.req_header_mut().insert_header(HEADER, &id);
    id
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
}
