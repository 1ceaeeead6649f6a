//! TLS at the edge: the HTTPS listener's certificates (chosen by SNI, reloaded
//! when their files change), its Pingora settings (TLS 1.2 and 1.3, rustls' ring
//! cipher suites, ALPN `h2` then `http/1.1`) and its metrics.
//!
//! Pingora's rustls backend, not OpenSSL: pure Rust, nothing to install on a fresh
//! machine, and the same library the gateway's other TLS clients use. rustls
//! offers only AEAD suites with forward secrecy (TLS 1.3: AES-GCM and
//! ChaCha20-Poly1305; TLS 1.2: ECDHE with the same), so there is no cipher list
//! to get wrong.

pub(crate) mod certs;
pub(crate) mod failures;
pub(crate) mod local;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings as ListenerTls;
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::TlsRef;
use prometheus::{IntCounterVec, IntGauge, IntGaugeVec};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use shared::config::TlsSettings;

use self::certs::{CertError, CertSet, Certificate};
use crate::file_watch::{folder_of, watch_folders};

/// The certificates being served, swapped whole on reload: a handshake reads one
/// snapshot, open connections keep the certificate they were made with.
pub(crate) struct CertStore {
    current: ArcSwap<CertSet>,
    meters: TlsMeters,
}

/// The TLS metrics (in `metrics::Metrics`).
#[derive(Clone)]
pub(crate) struct TlsMeters {
    /// Completed handshakes by TLS version.
    pub handshakes: IntCounterVec,
    /// Each certificate's expiry, Unix seconds, by label (`default`, host, `*.domain`).
    pub expiry: IntGaugeVec,
    /// Certificate reloads by result (`ok`, `error`).
    pub reloads: IntCounterVec,
    /// Certificates being served.
    pub certificates: IntGauge,
    /// Certificate files the last load refused (their hosts keep what they had).
    pub refused: IntGauge,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore").field("certificates", &self.current.load().len()).finish()
    }
}

impl CertStore {
    /// Reads every certificate `settings` names.
    ///
    /// # Errors
    /// The first file that cannot be served, and why.
    /// Reads every certificate `settings` names. A per-host file that fails its
    /// checks is left out (an ERROR says why, `tenantgate_tls_certificate_files_refused`
    /// counts it): one tenant's bad file must not keep the gateway from starting.
    ///
    /// # Errors
    /// An unusable default certificate or an unreadable folder.
    pub(crate) fn load(settings: &TlsSettings, meters: TlsMeters) -> Result<CertStore, CertError> {
        let loaded = CertSet::load(settings, unix_now())?;
        let store = CertStore { current: ArcSwap::from_pointee(CertSet::default()), meters };
        store.report(&loaded.refused);
        store.publish(loaded.set);
        Ok(store)
    }

    /// Reads the files again and serves what passes; a host whose new files fail
    /// keeps the certificate it had, and a default that fails keeps the whole
    /// current set. Either way an ERROR names the file.
    pub(crate) fn reload(&self, settings: &TlsSettings) {
        match CertSet::load(settings, unix_now()) {
            Ok(loaded) => {
                let result = if loaded.refused.is_empty() { "ok" } else { "error" };
                self.meters.reloads.with_label_values(&[result]).inc();
                self.report(&loaded.refused);
                let set = loaded.set.keeping(&loaded.refused, &self.current.load());
                tracing::info!(certificates = set.len(), refused = loaded.refused.len(), "TLS certificates reloaded");
                self.publish(set);
            }
            Err(error) => {
                self.meters.reloads.with_label_values(&["error"]).inc();
                self.meters.refused.set(1);
                tracing::error!(%error, "the default TLS certificate is invalid; keeping the certificates being served");
            }
        }
    }

    fn report(&self, refused: &[certs::Refused]) {
        for refusal in refused {
            tracing::error!(error = %refusal.error, "TLS certificate refused; its host keeps the certificate it had, if any");
        }
        self.meters.refused.set(refused.len() as i64);
    }

    fn publish(&self, set: CertSet) {
        self.meters.expiry.reset();
        for cert in set.all() {
            self.meters.expiry.with_label_values(&[&cert.label]).set(cert.not_after);
        }
        self.meters.certificates.set(set.len() as i64);
        self.current.store(Arc::new(set));
    }

    /// The pingora settings of an HTTPS listener serving these certificates.
    pub(crate) fn listener(self: &Arc<Self>) -> pingora::Result<ListenerTls> {
        let callbacks = Handshakes { meters: self.meters.clone(), store: Arc::downgrade(self) };
        let mut tls = ListenerTls::with_callbacks(Box::new(callbacks))?;
        tls.set_cert_resolver(self.clone());
        tls.enable_h2();
        Ok(tls)
    }

    /// The task that reloads the certificates when their files change; it ends
    /// when `shutdown` resolves.
    ///
    /// # Errors
    /// A folder that cannot be watched.
    pub(crate) fn watch<S>(
        self: Arc<Self>,
        settings: TlsSettings,
        shutdown: S,
    ) -> Result<impl Future<Output = ()> + Send, (PathBuf, notify::Error)>
    where
        S: Future<Output = ()> + Send,
    {
        let folders = watched_folders(&settings);
        let files: Vec<PathBuf> =
            [&settings.cert, &settings.key].into_iter().filter(|p| !p.as_os_str().is_empty()).cloned().collect();
        let dir = (!settings.certs_dir.as_os_str().is_empty()).then(|| settings.certs_dir.clone());
        let wants = move |path: &Path| {
            files.iter().any(|f| f.file_name() == path.file_name() && folder_of(f) == folder_of(path))
                || dir.as_ref().is_some_and(|d| path.starts_with(d) || folder_of(path) == *d)
                // Kubernetes swaps a volume's files through `..data`.
                || path.file_name().is_some_and(|n| n == "..data")
        };
        watch_folders(&folders, wants, move || self.reload(&settings), shutdown)
    }
}

/// The folders that hold the certificate files (each once).
fn watched_folders(settings: &TlsSettings) -> Vec<PathBuf> {
    let mut folders: Vec<PathBuf> = Vec::new();
    let files = [&settings.cert, &settings.key].into_iter().filter(|p| !p.as_os_str().is_empty()).map(|p| folder_of(p));
    let dir = (!settings.certs_dir.as_os_str().is_empty()).then(|| settings.certs_dir.clone());
    for folder in files.chain(dir) {
        if !folders.contains(&folder) {
            folders.push(folder);
        }
    }
    folders
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let set = self.current.load();
        let sni = hello.server_name().map(str::to_ascii_lowercase);
        set.pick(sni.as_deref()).map(|cert| cert.key.clone())
    }
}

/// Counts completed handshakes, and remembers on each connection which
/// certificate it was served ([`Served`]).
struct Handshakes {
    meters: TlsMeters,
    store: std::sync::Weak<CertStore>,
}

#[async_trait]
impl TlsAccept for Handshakes {
    async fn handshake_complete_callback(&self, tls: &TlsRef) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        self.meters.handshakes.with_label_values(&[tls.version().unwrap_or("unknown")]).inc();
        let store = self.store.upgrade()?;
        let set = store.current.load();
        let sni = tls.server_name().map(str::to_ascii_lowercase);
        let cert = set.pick(sni.as_deref())?.clone();
        Some(Arc::new(Served(cert)))
    }
}

/// The certificate a TLS connection was served (in Pingora's `SslDigest`
/// extension): a request on it must ask for a host it covers.
pub(crate) struct Served(pub Arc<Certificate>);

impl Served {
    /// Whether `host` (lowercase, no port) is one the certificate names.
    pub(crate) fn covers(&self, host: &str) -> bool {
        self.0.names.iter().any(|name| certs::covers(name, host))
    }
}

/// Now, in Unix seconds.
pub(crate) fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}
