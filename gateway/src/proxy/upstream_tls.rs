//! HTTPS upstreams: a route's `tls_*` settings ([`UpstreamTls`], read and checked
//! for form by `edge`) turned into what Pingora's rustls connector takes: the CA
//! list of `PeerOptions::ca`, the client `CertKey`, the SNI and verify flags.
//!
//! [`PeerTls::build`] parses the PEM files the route loaded, so a certificate or key
//! Pingora would panic on (its `CertKey` and X.509 wrappers `expect` valid input) or
//! a key that does not match its certificate refuses the route table when it loads
//! ([`crate::routes::load`]). [`TlsPeers`] keeps one per route, so a request costs
//! a map lookup and a few `Arc` clones, never a parse.
//!
//! Two Pingora details this relies on (pingora-core 0.9, connectors/tls/rustls):
//! verification flags only take effect on connections whose rustls config is built
//! per peer (always, for an `HttpPeer`: its ALPN option makes one), and an empty
//! SNI silently turns all verification off, so a peer never gets one here.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::protocols::tls::CaType;
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::{parse_x509, CertKey, WrappedX509};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::routes::{ClientCert, LoadError, PemFile, Route, RouteTable, UpstreamTls};

/// One HTTPS route's TLS settings in Pingora's types, shared by its requests.
pub struct PeerTls {
    ca: Option<Arc<CaType>>,
    client: Option<Arc<CertKey>>,
    server_name: Option<Box<str>>,
    verify: bool,
    /// Keeps pooled connections apart by trust settings: Pingora's connection
    /// reuse key has the SNI, the client certificate and the verify flags but not
    /// the CA, so without it a route trusting another CA could reuse a connection
    /// verified for this one.
    group_key: u64,
}

impl PeerTls {
    /// Parses and checks the route's PEM files: every certificate must be X.509
    /// DER that rustls accepts as a trust anchor (`tls_ca`) or as a chain whose
    /// first certificate matches the private key (`tls_client_cert`,
    /// `tls_client_key`).
    ///
    /// # Errors
    /// [`LoadError::Invalid`] pointing at the route key of the file at fault (at
    /// the route for the placeholder CA of `tls_verify = false`).
    pub fn build(route: &Route, tls: &UpstreamTls) -> Result<PeerTls, LoadError> {
        let ca = match (tls.ca(), tls.verify()) {
            (Some(file), _) => Some(ca_list(file)?),
            // Pingora builds its skip-all verifier over the CA store it has; with
            // no system roots installed that store is empty and the build fails.
            // A placeholder anchor keeps `tls_verify = false` working everywhere.
            (None, false) => Some(placeholder_ca(route)?),
            (None, true) => None,
        };
        let client = tls.client_cert().map(client_cert).transpose()?;
        let mut hasher = std::hash::DefaultHasher::new();
        tls.ca().map(PemFile::contents).hash(&mut hasher);
        tls.client_cert().map(|c| (c.cert.contents(), c.key.contents())).hash(&mut hasher);
        (tls.verify(), tls.server_name()).hash(&mut hasher);
        Ok(PeerTls {
            ca,
            client,
            server_name: tls.server_name().map(Box::from),
            verify: tls.verify(),
            group_key: hasher.finish(),
        })
    }

    /// The peer for one request to `addr`, an address of the upstream named
    /// `host`: SNI and verified name are the route's `tls_server_name`, else
    /// `host`, which is never empty.
    pub fn peer(&self, addr: SocketAddr, host: &str) -> HttpPeer {
        let sni = self.server_name.as_deref().unwrap_or(host);
        let mut peer = HttpPeer::new(addr, true, sni.to_owned());
        peer.options.ca = self.ca.clone();
        peer.options.verify_cert = self.verify;
        peer.options.verify_hostname = self.verify;
        peer.client_cert_key = self.client.clone();
        peer.group_key = self.group_key;
        peer
    }
}

/// `tls_ca`: every certificate in the bundle, each usable as a trust anchor.
fn ca_list(file: &PemFile) -> Result<Arc<CaType>, LoadError> {
    let certs = certificates(file)?;
    let mut store = RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        store
            .add(cert.clone())
            .map_err(|e| file.refuse(format!("certificate {} cannot be a trust anchor: {e}", i + 1)))?;
    }
    Ok(certs.into_iter().map(|der| WrappedX509::new(der.to_vec(), parse_x509)).collect::<Vec<_>>().into())
}

/// `tls_client_cert` and `tls_client_key`, checked against each other.
fn client_cert(client: &ClientCert) -> Result<Arc<CertKey>, LoadError> {
    let chain = certificates(&client.cert)?;
    let key = PrivateKeyDer::from_pem_slice(client.key.contents())
        .map_err(|e| client.key.refuse(format!("the private key cannot be read: {e}")))?;
    // Pingora turns the key's DER back into a key with `try_into().unwrap()` on
    // every new connection; make sure that cannot fail.
    PrivateKeyDer::try_from(key.secret_der().to_vec())
        .map_err(|e| client.key.refuse(format!("the private key is in a form rustls cannot use: {e}")))?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider).map_err(|e| {
        client.key.refuse(format!("the key does not match the certificate in {} ({e})", client.cert.path().display()))
    })?;
    let chain = chain.into_iter().map(|der| der.to_vec()).collect();
    Ok(Arc::new(CertKey::new(chain, key.secret_der().to_vec())))
}

/// The certificates of a PEM file, each one X.509 that parses (Pingora's
/// wrappers panic on one that does not).
fn certificates(file: &PemFile) -> Result<Vec<CertificateDer<'static>>, LoadError> {
    let certs = CertificateDer::pem_slice_iter(file.contents())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file.refuse(format!("the PEM cannot be read: {e}")))?;
    if certs.is_empty() {
        return Err(file.refuse("the file holds no certificate"));
    }
    for (i, cert) in certs.iter().enumerate() {
        X509Certificate::from_der(cert.as_ref())
            .map_err(|e| file.refuse(format!("certificate {} is not valid X.509: {e}", i + 1)))?;
    }
    Ok(certs)
}

/// A self-signed certificate nobody holds the key of: the one anchor of the CA
/// store under `tls_verify = false`, where it is never consulted.
fn placeholder_ca(route: &Route) -> Result<Arc<CaType>, LoadError> {
    let cert = rcgen::generate_simple_self_signed(vec!["tenantgate.invalid".to_owned()]).map_err(|e| {
        let (file, line) = route.origin().rsplit_once(':').unwrap_or((route.origin(), "0"));
        let message = format!("route {:?}: cannot make the placeholder CA for tls_verify = false: {e}", route.name());
        LoadError::Invalid { file: file.into(), line: line.parse().unwrap_or(0), column: 1, message }
    })?;
    Ok(vec![WrappedX509::new(cert.cert.der().to_vec(), parse_x509)].into())
}

/// A built [`PeerTls`], or why the route's files were refused (kept, so a broken
/// route costs one build per load, not one per request).
type Built = Result<Arc<PeerTls>, Arc<str>>;

/// Each HTTPS route's [`PeerTls`], by [`Route::base_id`] (so a reloaded route
/// never sees its predecessor's settings, and a route's rules share its own): built by [`TlsPeers::refresh`] for the
/// current table (the control plane's first round runs at start), or by the
/// first request of a route loaded since.
#[derive(Default)]
pub struct TlsPeers {
    by_route: ArcSwap<HashMap<u64, Built>>,
}

impl TlsPeers {
    /// `route`'s settings.
    ///
    /// # Errors
    /// Why its files cannot be used; only for a table loaded without
    /// [`crate::routes::load`]'s checks.
    pub fn get(&self, route: &Route, tls: &UpstreamTls) -> Result<Arc<PeerTls>, Arc<str>> {
        if let Some(built) = self.by_route.load().get(&route.base_id()) {
            return built.clone();
        }
        let built = build(route, tls);
        self.by_route.rcu(|current| {
            let mut next = HashMap::clone(current);
            next.insert(route.base_id(), built.clone());
            next
        });
        built
    }

    /// Builds the settings of `table`'s HTTPS routes that have none yet, and
    /// forgets routes no longer in it.
    pub fn refresh(&self, table: &RouteTable) {
        let current = self.by_route.load_full();
        let mut next = HashMap::new();
        for route in table.routes() {
            let Some(tls) = route.upstream_tls() else { continue };
            let built = match current.get(&route.base_id()) {
                Some(built) => built.clone(),
                None => build(route, tls),
            };
            next.insert(route.base_id(), built);
        }
        self.by_route.store(Arc::new(next));
    }
}

/// Builds a route's settings: once per route and load, which is when a route
/// that does not verify its upstream is worth a warning.
fn build(route: &Route, tls: &UpstreamTls) -> Built {
    if !tls.verify() {
        tracing::warn!(
            route = %route.name(),
            origin = route.origin(),
            "tls_verify = false: this route's upstream certificates are not checked (for development only)"
        );
    }
    PeerTls::build(route, tls).map(Arc::new).map_err(|e| {
        tracing::error!(route = %route.name(), error = %e, "the route's upstream TLS files cannot be used");
        Arc::from(e.to_string())
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::path::Path;

    use pingora::upstreams::peer::Peer;

    use super::*;

    /// The table of one https route with `keys`, files written to `dir`.
    fn table(dir: &Path, keys: &str) -> Result<RouteTable, LoadError> {
        let file = dir.join("routes.toml");
        let text = format!("[[route]]\nname = \"r\"\nupstreams = [\"https://localhost:8443\"]\n{keys}\n");
        std::fs::write(&file, text).unwrap();
        crate::routes::load(&file)
    }

    #[test]
    fn builds_peers_with_the_routes_ca_client_certificate_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let ca = testkit::tls::TestCa::new("upstream ca");
        std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
        ca.issue_client("gateway").write(dir.path(), "client");
        let keys = "tls_ca = \"ca.pem\"\ntls_client_cert = \"client.pem\"\ntls_client_key = \"client.key\"\n\
                    tls_server_name = \"app.internal\"";
        let table = table(dir.path(), keys).unwrap();
        let route = table.get("r").unwrap();
        let peers = TlsPeers::default();
        let tls = peers.get(route, route.upstream_tls().unwrap()).unwrap();
        let peer = tls.peer("127.0.0.1:8443".parse().unwrap(), "localhost");
        assert!(peer.tls());
        assert_eq!(peer.sni(), "app.internal");
        assert!(peer.verify_cert() && peer.verify_hostname());
        assert_eq!(peer.get_ca().unwrap().len(), 1);
        assert!(peer.get_client_cert_key().is_some());
        assert_ne!(peer.group_key, 0);
        // Cached: the same settings for the route's next request.
        assert!(Arc::ptr_eq(&tls, &peers.get(route, route.upstream_tls().unwrap()).unwrap()));
    }

    #[test]
    fn a_routes_rules_share_its_settings_built_once_per_load() {
        let dir = tempfile::tempdir().unwrap();
        let rule = "tls_verify = false
[[route.rule]]
methods = [\"DELETE\"]
auth = \"none\"";
        let table = table(dir.path(), rule).unwrap();
        let route = table.get("r").unwrap();
        let variant = &route.rules()[0];
        let peers = TlsPeers::default();
        peers.refresh(&table);
        let tls = peers.get(route, route.upstream_tls().unwrap()).unwrap();
        assert!(Arc::ptr_eq(&tls, &peers.get(variant, variant.upstream_tls().unwrap()).unwrap()));
        // A refresh keeps them: a rule's request never rebuilds them.
        peers.refresh(&table);
        assert!(Arc::ptr_eq(&tls, &peers.get(variant, variant.upstream_tls().unwrap()).unwrap()));
        assert_eq!(peers.by_route.load().len(), 1);
    }

    #[test]
    fn without_a_server_name_the_upstream_host_is_sni_and_verify_off_keeps_an_anchor() {
        let dir = tempfile::tempdir().unwrap();
        let table = table(dir.path(), "tls_verify = false").unwrap();
        let route = table.get("r").unwrap();
        let tls = PeerTls::build(route, route.upstream_tls().unwrap()).unwrap();
        let peer = tls.peer("127.0.0.1:8443".parse().unwrap(), "localhost");
        assert_eq!(peer.sni(), "localhost");
        assert!(!peer.verify_cert());
        assert_eq!(peer.get_ca().map(|ca| ca.len()), Some(1));
    }

    #[test]
    fn unusable_files_refuse_the_table_at_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let ca = testkit::tls::TestCa::new("ca");
        ca.issue_client("one").write(dir.path(), "one");
        let two = ca.issue_client("two");
        std::fs::write(dir.path().join("two.key"), &two.key_pem).unwrap();
        std::fs::write(
            dir.path().join("garbage.pem"),
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let cases = [
            ("tls_client_cert = \"one.pem\"\ntls_client_key = \"two.key\"", "5:18: tls_client_key", "does not match"),
            ("tls_ca = \"garbage.pem\"", "4:10: tls_ca", "not valid X.509"),
        ];
        for (keys, at, why) in cases {
            let err = table(dir.path(), keys).unwrap_err().to_string();
            assert!(err.contains(&format!("routes.toml:{at} ")) && err.contains(why), "{keys}: {err}");
        }
    }
}
