//! TLS at the edge: the HTTPS listener, its certificates, HTTP/2 without TLS,
//! the plain listener's redirect and `Strict-Transport-Security`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Error;
use crate::duration;

/// TLS settings (`GATEWAY_TLS_*`, `GATEWAY_H2C`, `GATEWAY_HTTP_REDIRECT`,
/// `GATEWAY_HSTS_*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// `GATEWAY_TLS_LISTEN`: the HTTPS listener (HTTP/2 and HTTP/1.1 by ALPN); empty
    /// for none.
    #[serde(deserialize_with = "optional_addr", serialize_with = "optional_addr_text")]
    pub listen: Option<SocketAddr>,
    /// `GATEWAY_TLS_CERT`: PEM certificate chain (leaf first) served when no
    /// per-host certificate matches the name the client asked for (SNI), or it asked
    /// for none.
    pub cert: PathBuf,
    /// `GATEWAY_TLS_KEY`: the PEM private key of `GATEWAY_TLS_CERT`.
    pub key: PathBuf,
    /// `GATEWAY_TLS_CERTS_DIR`: per-host certificates chosen by SNI:
    /// `<host>.pem` with `<host>.key`, `_wildcard.<domain>.pem` for `*.<domain>`.
    pub certs_dir: PathBuf,
    /// `GATEWAY_H2C`: accept HTTP/2 without TLS (prior knowledge) on
    /// `GATEWAY_LISTEN`, for a load balancer in front that speaks it.
    pub h2c: bool,
    /// `GATEWAY_HTTP_REDIRECT`: answer plain-HTTP requests with a redirect to
    /// HTTPS (308), except ACME HTTP-01 challenge paths.
    pub http_redirect: bool,
    /// `GATEWAY_HSTS_MAX_AGE`: `Strict-Transport-Security` max-age on HTTPS answers;
    /// 0 (the default) sends none.
    #[serde(with = "duration")]
    pub hsts_max_age: Duration,
    /// `GATEWAY_HSTS_INCLUDE_SUBDOMAINS`: add `includeSubDomains` to it.
    pub hsts_include_subdomains: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            listen: None,
            cert: PathBuf::new(),
            key: PathBuf::new(),
            certs_dir: PathBuf::new(),
            h2c: false,
            http_redirect: false,
            hsts_max_age: Duration::ZERO,
            hsts_include_subdomains: false,
        }
    }
}

impl TlsSettings {
    /// Whether the gateway terminates TLS itself.
    pub fn enabled(&self) -> bool {
        self.listen.is_some()
    }

    /// Checks the rules between these settings and the plain listener.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the variable at fault.
    pub(super) fn validate(&self, plain: SocketAddr) -> Result<(), Error> {
        let invalid = |msg: &str| Err(Error::Invalid(msg.to_owned()));
        let (cert, key, dir) = (
            !self.cert.as_os_str().is_empty(),
            !self.key.as_os_str().is_empty(),
            !self.certs_dir.as_os_str().is_empty(),
        );
        if cert != key {
            return invalid("GATEWAY_TLS_CERT and GATEWAY_TLS_KEY go together: set both or neither");
        }
        match self.listen {
            Some(listen) => {
                if !cert && !dir {
                    return invalid(
                        "GATEWAY_TLS_LISTEN needs certificates: GATEWAY_TLS_CERT and GATEWAY_TLS_KEY, or \
                         GATEWAY_TLS_CERTS_DIR (or both)",
                    );
                }
                if listen == plain {
                    return invalid("GATEWAY_TLS_LISTEN and GATEWAY_LISTEN must be different addresses");
                }
            }
            None if cert || dir => {
                return invalid(
                    "GATEWAY_TLS_CERT and GATEWAY_TLS_CERTS_DIR need GATEWAY_TLS_LISTEN (the HTTPS listener)",
                );
            }
            None => {}
        }
        if self.hsts_max_age > Duration::from_secs(2 * 365 * 86_400) {
            return invalid("GATEWAY_HSTS_MAX_AGE is at most 2 years (browsers cap it)");
        }
        Ok(())
    }

    /// The `Strict-Transport-Security` value for HTTPS answers, if any.
    pub fn hsts_header(&self) -> Option<String> {
        if self.hsts_max_age.is_zero() {
            return None;
        }
        let age = self.hsts_max_age.as_secs();
        Some(if self.hsts_include_subdomains {
            format!("max-age={age}; includeSubDomains")
        } else {
            format!("max-age={age}")
        })
    }
}

/// Reads an optional `ip:port`: empty text is none.
pub(super) fn optional_addr<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let raw = String::deserialize(d)?;
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse().map(Some).map_err(|_| serde::de::Error::custom(format!("{raw:?} is not an ip:port like 0.0.0.0:8443")))
}

pub(super) fn optional_addr_text<S: Serializer>(addr: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&addr.map(|a| a.to_string()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 8080))
    }

    #[test]
    fn off_by_default_and_valid() {
        let tls = TlsSettings::default();
        assert!(!tls.enabled());
        assert!(tls.validate(plain()).is_ok());
        assert_eq!(tls.hsts_header(), None);
    }

    #[test]
    fn a_listener_needs_certificates_and_its_own_address() {
        let mut tls = TlsSettings { listen: Some(SocketAddr::from(([0, 0, 0, 0], 8443))), ..TlsSettings::default() };
        let err = tls.validate(plain()).unwrap_err().to_string();
        assert!(err.contains("GATEWAY_TLS_LISTEN needs certificates"), "{err}");
        tls.certs_dir = "certs".into();
        assert!(tls.validate(plain()).is_ok());
        tls.cert = "a.pem".into();
        let err = tls.validate(plain()).unwrap_err().to_string();
        assert!(err.contains("set both or neither"), "{err}");
        tls.key = "a.key".into();
        assert!(tls.validate(plain()).is_ok());
        tls.listen = Some(plain());
        assert!(tls.validate(plain()).unwrap_err().to_string().contains("must be different"));
    }

    #[test]
    fn certificates_without_a_listener_are_a_mistake() {
        let tls = TlsSettings { certs_dir: "certs".into(), ..TlsSettings::default() };
        assert!(tls.validate(plain()).unwrap_err().to_string().contains("need GATEWAY_TLS_LISTEN"));
    }

    #[test]
    fn hsts_header_says_what_was_asked() {
        let mut tls = TlsSettings { hsts_max_age: Duration::from_secs(31_536_000), ..TlsSettings::default() };
        assert_eq!(tls.hsts_header().as_deref(), Some("max-age=31536000"));
        tls.hsts_include_subdomains = true;
        assert_eq!(tls.hsts_header().as_deref(), Some("max-age=31536000; includeSubDomains"));
        tls.hsts_max_age = Duration::from_secs(3 * 365 * 86_400);
        assert!(tls.validate(plain()).is_err());
    }
}
