//! The certificates the HTTPS listener serves: read from PEM files, checked (the
//! key belongs to the certificate, it is valid now, it names its host), and
//! chosen by the name the client asks for (SNI).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use shared::config::TlsSettings;
use shared::domain::DomainName;

/// The file-name prefix of a wildcard certificate: `_wildcard.example.com.pem`
/// serves `*.example.com`.
const WILDCARD_PREFIX: &str = "_wildcard.";

/// Why a certificate could not be used; the message names the file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CertError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no usable certificate or key, or they do not fit.
    #[error("{}: {why}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, in a sentence.
        why: String,
    },
}

impl CertError {
    fn invalid(path: &Path, why: impl Into<String>) -> CertError {
        CertError::Invalid { path: path.to_owned(), why: why.into() }
    }
}

/// One certificate chain with its key, ready to serve.
#[derive(Debug)]
pub(crate) struct Certificate {
    /// What it is known by in metrics and logs: `default`, a host, `*.domain`.
    pub label: String,
    /// The certificate file.
    pub path: PathBuf,
    /// The chain and signing key rustls serves.
    pub key: Arc<CertifiedKey>,
    /// The leaf's last valid moment, Unix seconds.
    pub not_after: i64,
    /// The DNS names and IP addresses the leaf covers (its SANs).
    pub names: Vec<String>,
}

impl Certificate {
    /// Reads `cert` (the chain, leaf first) and `key` (PKCS#8, PKCS#1 or SEC1) and
    /// checks them: the key signs for the leaf, the leaf is valid at `now` (Unix
    /// seconds). Which names it must cover is the caller's rule (`load_pair`).
    ///
    /// # Errors
    /// [`CertError`] naming the file and the problem.
    pub(crate) fn load(label: String, cert: &Path, key: &Path, now: i64) -> Result<Certificate, CertError> {
        let pem = std::fs::read(cert).map_err(|source| CertError::Read { path: cert.to_owned(), source })?;
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(&pem).collect::<Result<_, _>>().map_err(|e| {
                CertError::invalid(cert, format!("not a complete PEM certificate chain ({})", pem_problem(&e)))
            })?;
        let Some(leaf) = chain.first() else {
            return Err(CertError::invalid(cert, "holds no certificate (expected PEM \"BEGIN CERTIFICATE\" blocks)"));
        };
        let key_pem = std::fs::read(key).map_err(|source| CertError::Read { path: key.to_owned(), source })?;
        let private = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| CertError::invalid(key, format!("holds no private key in PEM ({})", pem_problem(&e))))?;
        let facts = leaf_facts(leaf).map_err(|why| CertError::invalid(cert, why))?;
        if facts.not_after < now {
            return Err(CertError::invalid(cert, format!("expired on {}", utc(facts.not_after))));
        }
        if facts.not_before > now {
            return Err(CertError::invalid(cert, format!("is not valid before {}", utc(facts.not_before))));
        }
        let provider = rustls::crypto::ring::default_provider();
        let key = CertifiedKey::from_der(chain, private, &provider).map_err(|e| {
            CertError::invalid(key, format!("does not belong to the certificate {} ({e})", cert.display()))
        })?;
        Ok(Certificate {
            label,
            path: cert.to_owned(),
            key: Arc::new(key),
            not_after: facts.not_after,
            names: facts.names,
        })
    }
}

/// A PEM parse error in words (its own display lists raw bytes).
fn pem_problem(e: &rustls::pki_types::pem::Error) -> &'static str {
    use rustls::pki_types::pem::Error;
    match e {
        Error::MissingSectionEnd { .. } => "a section has no END line",
        Error::IllegalSectionStart { .. } => "a BEGIN line is malformed",
        Error::Base64Decode(_) => "a section is not valid base64",
        Error::NoItemsFound => "no PEM section of the expected kind",
        _ => "unreadable",
    }
}

/// What the gateway needs to know of a leaf certificate.
struct LeafFacts {
    not_before: i64,
    not_after: i64,
    names: Vec<String>,
}

fn leaf_facts(leaf: &CertificateDer<'_>) -> Result<LeafFacts, String> {
    use x509_parser::extensions::GeneralName;
    let (_, parsed) =
        x509_parser::parse_x509_certificate(leaf).map_err(|e| format!("its first certificate does not parse ({e})"))?;
    let validity = parsed.validity();
    let mut names = Vec::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => names.push(dns.to_ascii_lowercase()),
                GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(|b| std::net::IpAddr::from(b).to_string()),
                        16 => <[u8; 16]>::try_from(*bytes).ok().map(|b| std::net::IpAddr::from(b).to_string()),
                        _ => None,
                    };
                    names.extend(ip);
                }
                _ => {}
            }
        }
    }
    Ok(LeafFacts { not_before: validity.not_before.timestamp(), not_after: validity.not_after.timestamp(), names })
}

/// Whether a certificate name (`example.com`, `*.example.com`, an IP address)
/// covers `host` (lowercase): a wildcard stands for exactly one label.
pub(crate) fn covers(name: &str, host: &str) -> bool {
    match name.strip_prefix("*.") {
        Some(parent) => host.split_once('.').is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
        None => name == host,
    }
}

fn names_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "no DNS name or IP address".to_owned()
    } else {
        names.join(", ")
    }
}

/// Unix seconds as an RFC 3339 UTC time, for messages.
pub(crate) fn utc(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0).map_or_else(|| seconds.to_string(), |t| t.to_rfc3339())
}

/// Every certificate the listener serves, indexed for the handshake.
#[derive(Debug, Default)]
pub(crate) struct CertSet {
    /// `GATEWAY_TLS_CERT`: for clients that name no host or one without its own.
    default: Option<Arc<Certificate>>,
    /// `<host>.pem` by host.
    exact: HashMap<String, Arc<Certificate>>,
    /// `_wildcard.<domain>.pem` by domain.
    wildcard: HashMap<String, Arc<Certificate>>,
}

impl CertSet {
    /// Reads the default pair and every pair in the folder, checking each. A
    /// per-host file that fails its checks is left out and reported in
    /// [`Loaded::refused`], so one tenant's failed renewal never blocks the
    /// others (see [`CertSet::keeping`] for reloads).
    ///
    /// # Errors
    /// An unusable default pair or an unreadable folder: nothing can be served.
    pub(crate) fn load(settings: &TlsSettings, now: i64) -> Result<Loaded, CertError> {
        let mut loaded = Loaded { set: CertSet::default(), refused: Vec::new() };
        if !settings.cert.as_os_str().is_empty() {
            let cert = Certificate::load("default".into(), &settings.cert, &settings.key, now)?;
            loaded.set.default = Some(Arc::new(cert));
        }
        if !settings.certs_dir.as_os_str().is_empty() {
            loaded.load_folder(&settings.certs_dir, now)?;
        }
        Ok(loaded)
    }

    /// This set, where a host whose new files were refused keeps the
    /// certificate `previous` served it (a failed renewal leaves the old one in
    /// place until it expires, rather than the default).
    pub(crate) fn keeping(mut self, refused: &[Refused], previous: &CertSet) -> CertSet {
        for refusal in refused {
            let Some((domain, wildcard)) = &refusal.host else { continue };
            let (index, old) =
                if *wildcard { (&mut self.wildcard, &previous.wildcard) } else { (&mut self.exact, &previous.exact) };
            if let Some(cert) = old.get(domain) {
                index.entry(domain.clone()).or_insert_with(|| cert.clone());
            }
        }
        self
    }

    /// The certificate for a client that asked for `sni` (lowercase): its own
    /// host's, else its parent domain's wildcard, else the default.
    pub(crate) fn pick(&self, sni: Option<&str>) -> Option<&Arc<Certificate>> {
        let Some(host) = sni else { return self.default.as_ref() };
        self.exact
            .get(host)
            .or_else(|| host.split_once('.').and_then(|(_, parent)| self.wildcard.get(parent)))
            .or(self.default.as_ref())
    }

    /// Every certificate, for metrics and `check-config`.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<Certificate>> {
        self.default.iter().chain(self.exact.values()).chain(self.wildcard.values())
    }

    /// How many certificates there are.
    pub(crate) fn len(&self) -> usize {
        self.all().count()
    }
}

/// What a load gives: the set to serve and the per-host files left out.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    /// The certificates that passed.
    pub set: CertSet,
    /// The files that did not, and why.
    pub refused: Vec<Refused>,
}

/// A per-host certificate file that failed its checks.
#[derive(Debug)]
pub(crate) struct Refused {
    /// The host (or wildcard domain, `true`) the file is for, if its name says.
    pub host: Option<(String, bool)>,
    /// What is wrong.
    pub error: CertError,
}

impl Loaded {
    fn load_folder(&mut self, dir: &Path, now: i64) -> Result<(), CertError> {
        let read_err = |source| CertError::Read { path: dir.to_owned(), source };
        let mut stems = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_err)? {
            let path = entry.map_err(read_err)?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            // Hidden files are editors' and Kubernetes' (`..data`) bookkeeping.
            if name.starts_with('.') {
                continue;
            }
            if let Some(stem) = name.strip_suffix(".pem") {
                stems.push(stem.to_owned());
            } else if let Some(stem) = name.strip_suffix(".key") {
                if !dir.join(format!("{stem}.pem")).exists() {
                    let error = CertError::invalid(&path, format!("has no certificate beside it ({stem}.pem)"));
                    self.refused.push(Refused { host: host_of(stem), error });
                }
            }
        }
        stems.sort();
        for stem in stems {
            if let Err(error) = self.load_pair(dir, &stem, now) {
                self.refused.push(Refused { host: host_of(&stem), error });
            }
        }
        Ok(())
    }

    fn load_pair(&mut self, dir: &Path, stem: &str, now: i64) -> Result<(), CertError> {
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}.key"));
        if !key.exists() {
            return Err(CertError::invalid(&cert, format!("has no key beside it ({stem}.key)")));
        }
        let Some((domain, wildcard)) = host_of(stem) else {
            return Err(CertError::invalid(
                &cert,
                "is not named <host>.pem or _wildcard.<domain>.pem (with a DNS name)",
            ));
        };
        // A wildcard file must hold the wildcard itself, not one name under it.
        let label = if wildcard { format!("*.{domain}") } else { domain.clone() };
        let loaded = Certificate::load(label.clone(), &cert, &key, now)?;
        let named =
            if wildcard { loaded.names.contains(&label) } else { loaded.names.iter().any(|n| covers(n, &label)) };
        if !named {
            let names = names_or_none(&loaded.names);
            return Err(CertError::invalid(&cert, format!("does not cover {label} (it names {names})")));
        }
        let index = if wildcard { &mut self.set.wildcard } else { &mut self.set.exact };
        if index.contains_key(&domain) {
            return Err(CertError::invalid(&cert, "names the same host as another file (case differs?)"));
        }
        index.insert(domain, Arc::new(loaded));
        Ok(())
    }
}

/// The host a per-host file is for, from its name: `(host, false)` for
/// `<host>.pem`, `(domain, true)` for `_wildcard.<domain>.pem`; lowercase.
fn host_of(stem: &str) -> Option<(String, bool)> {
    let (domain, wildcard) = match stem.strip_prefix(WILDCARD_PREFIX) {
        Some(domain) => (domain, true),
        None => (stem, false),
    };
    let name = match DomainName::parse(domain) {
        Ok(name) => name.as_str().to_owned(),
        Err(_) if domain.eq_ignore_ascii_case("localhost") => "localhost".to_owned(),
        Err(_) => return None,
    };
    Some((name, wildcard))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(covers("*.example.com", "a.example.com"));
        assert!(!covers("*.example.com", "a.b.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("*.example.com", ".example.com"));
        assert!(covers("example.com", "example.com"));
        assert!(!covers("example.com", "www.example.com"));
        assert!(covers("127.0.0.1", "127.0.0.1"));
    }
}
