//! Where a route sends its requests: upstream addresses with their scheme, and for
//! HTTPS upstreams how their certificates are checked (`tls_*` route keys). The PEM
//! files those keys name are read when the routes load and kept with the route, so
//! the gateway turns into TLS settings exactly what the loader checked, and a file
//! changed later takes effect at the next route reload, not halfway through one.

use std::fmt;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::host::HostPattern;
use super::problem::LoadError;

/// A PEM file larger than this is refused: certificate bundles are tens of KiB, and
/// a route pointing at a huge file is a mistake to report, not to read.
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// How the gateway talks to an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain HTTP: `host:port` or `http://host[:port]`.
    Http,
    /// TLS: `https://host[:port]`, verified as the route's `tls_*` keys say.
    Https,
}

impl Scheme {
    /// `http` or `https`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The port used when an upstream URL has none.
    const fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// An upstream address: a scheme, a host (an IPv4 address, a `[v6]` address or a
/// DNS name) and a non-zero port. [`Upstream::as_str`] is the `host:port` form
/// Pingora's `HttpPeer::new` and `LoadBalancer::try_from_iter` take.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Upstream {
    scheme: Scheme,
    /// `host:port`: as written, with the default port added when the URL had none.
    addr: Box<str>,
    /// The host without brackets, lowercase: the name an HTTPS upstream's
    /// certificate is checked against by default (and sent as SNI).
    host: Box<str>,
    port: u16,
}

impl Upstream {
    /// Parses `host:port` (plain HTTP), `http://host[:port]` or `https://host[:port]`
    /// (ports 80 and 443 by default). A URL may have nothing but scheme, host and
    /// port: no path (not even `/`), query, fragment or user info.
    ///
    /// # Errors
    /// A sentence saying what is wrong with `raw`.
    pub fn parse(raw: &str) -> Result<Upstream, String> {
        let bad = |why: &str| Err(format!("upstream {raw:?} {why}"));
        let (scheme, authority) = match raw.split_once("://") {
            None => (None, raw),
            Some((s, rest)) if s.eq_ignore_ascii_case("http") => (Some(Scheme::Http), rest),
            Some((s, rest)) if s.eq_ignore_ascii_case("https") => (Some(Scheme::Https), rest),
            Some(_) => return bad("has an unknown scheme: write host:port, http://host:port or https://host:port"),
        };
        if let Some(c) = authority.chars().find(|c| matches!(c, '/' | '?' | '#' | '@')) {
            let what = match c {
                '/' => "a path",
                '?' => "a query",
                '#' => "a fragment",
                _ => "user info",
            };
            return bad(&format!("must not have {what}: only scheme, host and port"));
        }
        if !authority.starts_with('[') && authority.matches(':').count() > 1 {
            return bad("must put an IPv6 address in brackets ([::1]:3000)");
        }
        let (host, port) = match split_port(authority) {
            Some((host, port)) => {
                let port = match port.parse::<u16>() {
                    Ok(p) if p > 0 => p,
                    _ => return bad("has an invalid port (1 to 65535)"),
                };
                (host, port)
            }
            None => match scheme {
                Some(scheme) => (authority, scheme.default_port()),
                None => return bad("must be host:port (a port is required without http:// or https://)"),
            },
        };
        let host = match parse_host(host) {
            Ok(host) => host,
            Err(why) => return bad(why),
        };
        let addr = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        let addr = if scheme.is_none() { raw.into() } else { addr.into() };
        Ok(Upstream { scheme: scheme.unwrap_or(Scheme::Http), addr, host: host.into(), port })
    }

    /// How the gateway talks to it.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// `host:port`, without the scheme.
    pub fn as_str(&self) -> &str {
        &self.addr
    }

    /// The host: a lowercase DNS name, or an IP address without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// `host` and `port` of `host:port` or `[v6]:port`; `None` without a port.
fn split_port(authority: &str) -> Option<(&str, &str)> {
    if authority.starts_with('[') {
        let close = authority.find(']')?;
        return authority[close + 1..].strip_prefix(':').map(|port| (&authority[..=close], port));
    }
    authority.rsplit_once(':')
}

/// The host of an upstream, lowercase and without brackets.
fn parse_host(host: &str) -> Result<String, &'static str> {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().map(|ip| ip.to_string()).map_err(|_| "has an invalid IPv6 address");
    }
    if host.contains(':') {
        return Err("must put an IPv6 address in brackets ([::1]:3000)");
    }
    if host.parse::<Ipv4Addr>().is_ok() {
        return Ok(host.to_owned());
    }
    match HostPattern::parse(host) {
        Ok(name) if !name.is_wildcard() => Ok(name.name().to_owned()),
        _ => Err("has an invalid host name"),
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scheme {
            Scheme::Http => f.write_str(&self.addr),
            Scheme::Https => write!(f, "https://{}", self.addr),
        }
    }
}

/// How a route's HTTPS upstreams are checked and what the gateway presents to
/// them. Only routes whose upstreams are `https://` have one.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    pub(super) ca: Option<PemFile>,
    pub(super) client: Option<ClientCert>,
    pub(super) server_name: Option<Box<str>>,
    pub(super) verify: bool,
}

/// A client certificate (with any intermediates after it) and its private key.
#[derive(Debug, Clone)]
pub struct ClientCert {
    /// `tls_client_cert`.
    pub cert: PemFile,
    /// `tls_client_key`.
    pub key: PemFile,
}

impl UpstreamTls {
    /// `tls_ca`: the certificates an upstream's chain must end at, instead of the
    /// system's roots.
    pub fn ca(&self) -> Option<&PemFile> {
        self.ca.as_ref()
    }

    /// `tls_client_cert` and `tls_client_key`: what the gateway presents when the
    /// upstream asks for a client certificate (mTLS).
    pub fn client_cert(&self) -> Option<&ClientCert> {
        self.client.as_ref()
    }

    /// `tls_server_name`: the name sent as SNI and checked against the
    /// certificate for every upstream of the route; `None` means each upstream's
    /// own host ([`Upstream::host`]). Never empty: an empty SNI would make Pingora
    /// skip certificate verification.
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// `tls_verify`: whether the upstream's certificate is checked (default yes;
    /// `false` is for development and logged as a warning when the routes load).
    pub fn verify(&self) -> bool {
        self.verify
    }
}

/// A PEM file a route key names, read when the routes loaded. Its `Debug` shows
/// the path, never the contents (it may be a private key).
#[derive(Clone)]
pub struct PemFile {
    key: &'static str,
    path: PathBuf,
    contents: Arc<[u8]>,
    file: PathBuf,
    line: usize,
    column: usize,
}

impl PemFile {
    /// Reads `path` for the route key `key`, whose value is at `file:line:column`.
    /// Certificate files (`key` other than `tls_client_key`) need at least one
    /// `CERTIFICATE` block, key files one `PRIVATE KEY` block; parsing them is the
    /// gateway's (`edge` has no X.509 parser).
    pub(super) fn read(key: &'static str, path: PathBuf, at: (&Path, usize, usize)) -> Result<PemFile, String> {
        let contents = read_capped(&path).map_err(|why| format!("{key} {}: {why}", path.display()))?;
        let text = String::from_utf8_lossy(&contents);
        let wanted = if key == "tls_client_key" {
            ["-----BEGIN PRIVATE KEY-----", "-----BEGIN RSA PRIVATE KEY-----", "-----BEGIN EC PRIVATE KEY-----"]
                .iter()
                .any(|marker| text.contains(marker))
        } else {
            text.contains("-----BEGIN CERTIFICATE-----")
        };
        if !wanted {
            let what = if key == "tls_client_key" { "private key" } else { "certificate" };
            return Err(format!("{key} {}: the file holds no PEM {what}", path.display()));
        }
        let (file, line, column) = at;
        Ok(PemFile { key, path, contents: contents.into(), file: file.to_owned(), line, column })
    }

    /// The route key that names it (`tls_ca`, `tls_client_cert`, `tls_client_key`).
    pub fn key(&self) -> &'static str {
        self.key
    }

    /// The file, resolved against the route file's folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its contents when the routes loaded.
    pub fn contents(&self) -> &[u8] {
        &self.contents
    }

    /// Where the route key's value is, as `file:line`, for messages.
    pub fn origin(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }

    /// A refusal of the route table pointing at the route key that names this
    /// file, for the checks made after loading (parsing the certificates, matching
    /// the key): `routes.toml:9:10: tls_ca /etc/app/ca.pem: <why>`.
    pub fn refuse(&self, why: impl fmt::Display) -> LoadError {
        LoadError::Invalid {
            file: self.file.clone(),
            line: self.line,
            column: self.column,
            message: format!("{} {}: {why}", self.key, self.path.display()),
        }
    }
}

impl fmt::Debug for PemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PemFile").field("key", &self.key).field("path", &self.path).finish_non_exhaustive()
    }
}

/// The file's bytes: a regular file (not a device or a pipe, which could block
/// the loader), non-empty, at most [`MAX_PEM_BYTES`].
fn read_capped(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() {
        return Err("is not a regular file".to_owned());
    }
    let mut contents = Vec::new();
    file.take(MAX_PEM_BYTES + 1).read_to_end(&mut contents).map_err(|e| format!("cannot read it: {e}"))?;
    match contents.len() as u64 {
        0 => Err("the file is empty".to_owned()),
        n if n > MAX_PEM_BYTES => Err(format!("the file is larger than {MAX_PEM_BYTES} bytes")),
        _ => Ok(contents),
    }
}

/// Parses `tls_server_name`: a DNS name (no wildcard) or an IP address, returned
/// lowercase and without brackets.
///
/// # Errors
/// A sentence saying what is wrong with `raw`.
pub(super) fn server_name(raw: &str) -> Result<Box<str>, String> {
    let unbracketed = raw.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(raw);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(ip.to_string().into());
    }
    match HostPattern::parse(raw) {
        Ok(name) if !name.is_wildcard() => Ok(name.name().into()),
        _ => Err(format!("tls_server_name {raw:?} must be a DNS name (without a wildcard or port) or an IP address")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_are_host_port_or_http_urls() {
        for ok in ["127.0.0.1:3000", "localhost:80", "app.internal:8080", "[::1]:3000"] {
            let upstream = Upstream::parse(ok).unwrap();
            assert_eq!(upstream.as_str(), ok);
            assert_eq!(upstream.scheme(), Scheme::Http);
        }
        for (raw, scheme, addr, host) in [
            ("http://App.Internal:8080", Scheme::Http, "app.internal:8080", "app.internal"),
            ("http://app.internal", Scheme::Http, "app.internal:80", "app.internal"),
            ("https://app.internal", Scheme::Https, "app.internal:443", "app.internal"),
            ("HTTPS://10.0.0.5:8443", Scheme::Https, "10.0.0.5:8443", "10.0.0.5"),
            ("https://[::1]:8443", Scheme::Https, "[::1]:8443", "::1"),
            ("https://[::1]", Scheme::Https, "[::1]:443", "::1"),
        ] {
            let upstream = Upstream::parse(raw).unwrap();
            assert_eq!((upstream.scheme(), upstream.as_str(), upstream.host()), (scheme, addr, host), "{raw}");
        }
        assert_eq!(Upstream::parse("https://a.test").unwrap().to_string(), "https://a.test:443");
        for bad in [
            "127.0.0.1",
            "127.0.0.1:0",
            "127.0.0.1:99999",
            "::1:3000",
            "[zz]:1",
            ":80",
            "a b:1",
            "ftp://a:1",
            "https://",
            "https://a:1/",
            "https://a:1/x",
            "https://a?x=1",
            "https://a#f",
            "https://user@a:1",
            "https://*.a.test",
            "https://a:",
            "https://[::1]x",
            "https://::1",
        ] {
            assert!(Upstream::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn server_names_are_names_or_addresses() {
        assert_eq!(&*server_name("App.Internal").unwrap(), "app.internal");
        assert_eq!(&*server_name("10.0.0.1").unwrap(), "10.0.0.1");
        assert_eq!(&*server_name("[::1]").unwrap(), "::1");
        for bad in ["", "*.a.test", "a.test:443", "a_b.test", " a.test"] {
            assert!(server_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn pem_files_are_read_checked_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let at = (Path::new("routes.toml"), 3, 10);
        let cert = dir.path().join("ca.pem");
        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
        let key = dir.path().join("client.key");
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n").unwrap();

        let read = PemFile::read("tls_ca", cert.clone(), at).unwrap();
        assert!(read.contents().starts_with(b"-----BEGIN CERTIFICATE-----"));
        assert_eq!(read.origin(), "routes.toml:3");
        let refused = read.refuse("not a CA").to_string();
        assert_eq!(refused, format!("routes.toml:3:10: tls_ca {}: not a CA", cert.display()));
        let private = PemFile::read("tls_client_key", key.clone(), at).unwrap();
        assert!(!format!("{private:?}").contains("secret"));

        let err = |key, path: PathBuf| PemFile::read(key, path, at).unwrap_err();
        assert!(err("tls_client_key", cert).ends_with("the file holds no PEM private key"));
        assert!(err("tls_ca", key).ends_with("the file holds no PEM certificate"));
        assert!(err("tls_ca", dir.path().join("missing.pem")).contains("cannot read it"));
        assert!(err("tls_ca", dir.path().to_owned()).contains("not a regular file"));
        std::fs::write(dir.path().join("empty.pem"), "").unwrap();
        assert!(err("tls_ca", dir.path().join("empty.pem")).contains("empty"));
    }
}
