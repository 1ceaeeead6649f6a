//! Failed TLS handshakes, counted by reason. Pingora reports a failed downstream
//! handshake only by logging it (`pingora_core::services::listening`, at ERROR,
//! one line per failure: a scanner would flood the log), so the gateway takes
//! those lines over ([`INTERCEPT`]): it counts them in
//! `tenantgate_tls_handshake_failures_total{reason}` and does not print them.
//! Which reasons there are is tested against real handshakes (`tests/it/tls.rs`),
//! so a Pingora or rustls upgrade that rewords them fails a test, not silently.

use std::sync::LazyLock;

use prometheus::{IntCounterVec, Opts};
use shared::telemetry::Intercept;

/// The log target Pingora reports downstream handshake failures under.
const TARGET: &str = "pingora_core::services::listening";

/// What `cli` installs with the tracing subscriber.
pub(crate) const INTERCEPT: Intercept = Intercept { target: TARGET, consume };

/// rustls' warnings about a client's server name (an IP address sent as SNI, as
/// wrk and `openssl s_client` do for `https://1.2.3.4`, or a malformed one): one
/// line per connection, the client's doing; dropped (measured: one per
/// connection, and a fifth of a new connection's CPU).
pub(crate) const SNI_NOISE: Intercept = Intercept { target: "rustls::msgs::handshake", consume: sni_noise };

fn sni_noise(message: &str) -> bool {
    message.starts_with("Illegal SNI")
}

/// Failed handshakes by reason; registered by `Metrics::new` (the log hook runs
/// before any registry exists).
pub(crate) static FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let opts = Opts::new(
        "tenantgate_tls_handshake_failures_total",
        "Failed TLS handshakes on the HTTPS listener, by reason: unknown_host (no certificate for the name \
         asked), protocol (no TLS version, cipher suite or ALPN protocol in common), certificate_refused (the \
         client refused our certificate), not_tls (plain HTTP or garbage), closed (the client hung up), timeout, \
         other.",
    );
    #[allow(clippy::expect_used)] // The name and labels are constants: checked by every test run.
    IntCounterVec::new(opts, &["reason"]).expect("valid metric")
});

/// Counts a Pingora handshake-failure line; other lines of that module are left
/// to be printed.
fn consume(message: &str) -> bool {
    let Some(reason) = reason(message) else { return false };
    FAILURES.with_label_values(&[reason]).inc();
    tracing::debug!(target: "tenantgate::tls", reason, "TLS handshake failed");
    true
}

/// The reason of a failed handshake from Pingora's line about it, or `None` for a
/// line about something else. The texts are rustls' `Error` display and Pingora's
/// context.
pub(crate) fn reason(message: &str) -> Option<&'static str> {
    if message.starts_with("Downstream handshake timeout") {
        return Some("timeout");
    }
    if !message.starts_with("Downstream handshake error") {
        return None;
    }
    let reason = if message.contains("no server certificate chain resolved") {
        "unknown_host"
    } else if message.contains("peer is incompatible") || message.contains("doesn't support any known protocol") {
        "protocol"
    } else if message.contains("received fatal alert") {
        "certificate_refused"
    } else if message.contains("corrupt message") || message.contains("InvalidContentType") {
        "not_tls"
    } else if message.contains("eof") || message.contains("reset by peer") || message.contains("Broken pipe") {
        "closed"
    } else {
        "other"
    };
    Some(reason)
}

#[cfg(test)]
mod tests {
    use super::reason;

    #[test]
    fn lines_are_sorted_by_reason() {
        let line = |cause: &str| {
            format!("Downstream handshake error from 127.0.0.1:5000:  TLSHandshakeFailure context: TLS accept() failed: {cause}")
        };
        assert_eq!(reason(&line("no server certificate chain resolved")), Some("unknown_host"));
        assert_eq!(reason(&line("peer is incompatible: Tls12NotOffered")), Some("protocol"));
        assert_eq!(reason(&line("peer doesn't support any known protocol")), Some("protocol"));
        assert_eq!(reason(&line("received fatal alert: UnknownCA")), Some("certificate_refused"));
        assert_eq!(reason(&line("received corrupt message of type InvalidContentType")), Some("not_tls"));
        assert_eq!(reason(&line("tls handshake eof")), Some("closed"));
        assert_eq!(reason(&line("something new")), Some("other"));
        assert_eq!(reason("Downstream handshake timeout"), Some("timeout"));
        assert_eq!(reason("Accept() failed: Too many open files"), None);
        assert!(super::sni_noise("Illegal SNI extension: ignoring IP address presented as hostname (127.0.0.1)"));
        assert!(!super::sni_noise("Sending fatal alert BadRecordMac"));
    }
}
