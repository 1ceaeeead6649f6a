//! Certificates and HTTPS servers for TLS tests: a throw-away certificate authority
//! (rcgen) issuing server and client certificates, and [`https_upstream`], an axum
//! router served over TLS (optionally requiring a client certificate) on a port of
//! its own.
//!
//! Everything uses the ring provider explicitly: a process-wide default provider
//! would make a test pass or fail depending on what else ran in the process.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// A self-signed certificate authority that lives for one test.
pub struct TestCa {
    cert: Certificate,
    key: KeyPair,
}

/// A certificate and its private key, both PEM.
#[derive(Clone, Debug)]
pub struct Leaf {
    /// The certificate (one PEM block; the CA is not appended).
    pub cert_pem: String,
    /// Its PKCS#8 private key.
    pub key_pem: String,
}

impl TestCa {
    /// A new CA whose subject's common name is `name`.
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        set_validity(&mut params, -1, 365);
        let cert = params.self_signed(&key).expect("self-sign CA");
        TestCa { cert, key }
    }

    /// The CA's certificate, PEM: what a client (or a route's `tls_ca`) trusts.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for `hosts` (DNS names, or IP literals as IP SANs), valid
    /// from a day ago to 30 days ahead.
    pub fn issue(&self, hosts: &[&str]) -> Leaf {
        self.issue_with_validity(hosts, -1, 30)
    }

    /// A server certificate valid from `start_days` to `end_days` days from now
    /// (negative: in the past), for expired (`-10, -1`) or not-yet-valid (`1, 10`)
    /// certificates.
    pub fn issue_with_validity(&self, hosts: &[&str], start_days: i64, end_days: i64) -> Leaf {
        let mut params = leaf_params(hosts.first().copied().unwrap_or("server"), hosts);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        set_validity(&mut params, start_days, end_days);
        self.sign(params)
    }

    /// A client certificate (client-auth EKU) whose subject's common name is `name`.
    pub fn issue_client(&self, name: &str) -> Leaf {
        let mut params = leaf_params(name, &[]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        set_validity(&mut params, -1, 30);
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("sign leaf");
        Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }
}

impl Leaf {
    /// A self-signed server certificate for `hosts` (no CA anyone trusts).
    pub fn self_signed(hosts: &[&str]) -> Leaf {
        let key = KeyPair::generate().expect("key");
        let mut params = leaf_params(hosts.first().copied().unwrap_or("server"), hosts);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        set_validity(&mut params, -1, 30);
        let cert = params.self_signed(&key).expect("self-sign");
        Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }

    /// Writes `<dir>/<stem>.pem` and `<dir>/<stem>.key`; returns their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.cert_pem).expect("write certificate");
        std::fs::write(&key, &self.key_pem).expect("write key");
        (cert, key)
    }
}

/// Parameters with `cn` as the subject's common name and `hosts` as SANs.
fn leaf_params(cn: &str, hosts: &[&str]) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.subject_alt_names = hosts.iter().map(|host| san(host)).collect();
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.use_authority_key_identifier_extension = true;
    params
}

fn san(host: &str) -> SanType {
    match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => SanType::DnsName(host.try_into().expect("a DNS name")),
    }
}

fn set_validity(params: &mut CertificateParams, start_days: i64, end_days: i64) {
    params.not_before = days_from_now(start_days).into();
    params.not_after = days_from_now(end_days).into();
}

fn days_from_now(days: i64) -> SystemTime {
    let span = DAY * u32::try_from(days.unsigned_abs()).expect("a sane number of days");
    if days < 0 {
        SystemTime::now() - span
    } else {
        SystemTime::now() + span
    }
}

/// What an [`https_upstream`] handler knows about the TLS client: extract it with
/// `axum::extract::ConnectInfo<TlsPeer>`.
#[derive(Clone, Debug)]
pub struct TlsPeer {
    /// The client's address.
    pub addr: SocketAddr,
    /// The common name of the client certificate's subject, when one was presented.
    pub client_cn: Option<String>,
}

/// Serves `router` over HTTPS (HTTP/1.1) on 127.0.0.1 with `leaf` as its
/// certificate, until the runtime ends. With `client_ca` (a CA's PEM) the handshake
/// requires a client certificate that chains to it. A failed handshake drops that
/// connection only. Handlers may extract `ConnectInfo<TlsPeer>`.
pub async fn https_upstream(leaf: &Leaf, client_ca: Option<&str>, router: axum::Router) -> SocketAddr {
    let acceptor = TlsAcceptor::from(Arc::new(server_config(leaf, client_ca)));
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind https upstream");
    let addr = tcp.local_addr().expect("local addr");
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(accept_loop(tcp, acceptor, tx));
    let listener = TlsListener { handshaken: rx, addr };
    let service = router.into_make_service_with_connect_info::<TlsPeer>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, service).await;
    });
    addr
}

/// A rustls server configuration on the ring provider, HTTP/1.1 only.
fn server_config(leaf: &Leaf, client_ca: Option<&str>) -> ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("protocol versions");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca, provider)),
    };
    let chain = CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>().expect("cert");
    let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).expect("key");
    let mut config = builder.with_single_cert(chain, key).expect("server certificate");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

fn client_verifier(ca_pem: &str, provider: Arc<CryptoProvider>) -> Arc<dyn rustls::server::danger::ClientCertVerifier> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA certificate");
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().expect("client verifier")
}

/// Accepts TCP connections and hands each handshake to its own task, so a client
/// that stalls or fails its handshake holds up nobody.
async fn accept_loop(tcp: TcpListener, acceptor: TlsAcceptor, tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>) {
    loop {
        let Ok((stream, peer)) = tcp.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if tx.is_closed() {
            return;
        }
        let acceptor = acceptor.clone();
        let handshaken = tx.clone();
        tokio::spawn(async move {
            if let Ok(tls) = acceptor.accept(stream).await {
                let _ = handshaken.send((tls, peer)).await;
            }
        });
    }
}

/// Hands axum connections whose TLS handshake has completed.
struct TlsListener {
    handshaken: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshaken.recv().await {
            Some(conn) => conn,
            // The accept loop only ends when this receiver is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for TlsPeer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        let client_cn = stream
            .io()
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|cert| subject_cn(cert.as_ref()));
        TlsPeer { addr: *stream.remote_addr(), client_cn }
    }
}

/// The last common name in a DER certificate: the subject's, since the subject
/// comes after the issuer. Good enough for the certificates [`TestCa`] issues; not
/// an X.509 parser.
fn subject_cn(der: &[u8]) -> Option<String> {
    const CN_OID: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x03];
    let at = der.windows(CN_OID.len()).rposition(|w| w == CN_OID)? + CN_OID.len();
    let (&tag, rest) = der.get(at..)?.split_first()?;
    let (&len, rest) = rest.split_first()?;
    let value = rest.get(..usize::from(len))?;
    // UTF8String or PrintableString, short-form length.
    ((tag == 0x0c || tag == 0x13) && len < 0x80).then(|| String::from_utf8_lossy(value).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::ConnectInfo;
    use rustls::pki_types::ServerName;
    use rustls::ClientConfig;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn router() -> axum::Router {
        axum::Router::new().route(
            "/",
            axum::routing::get(|ConnectInfo(peer): ConnectInfo<TlsPeer>| async move {
                format!("cn={}", peer.client_cn.unwrap_or_default())
            }),
        )
    }

    /// A GET / over TLS trusting `ca`, presenting `client` if given: the response
    /// text, or the error that ended the exchange.
    async fn get(addr: SocketAddr, ca: &TestCa, client: Option<&Leaf>) -> Result<String, std::io::Error> {
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap()).unwrap();
        let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match client {
            None => builder.with_no_client_auth(),
            Some(leaf) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap()],
                    PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
                )
                .unwrap(),
        };
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await?;
        tls.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n").await?;
        let mut out = String::new();
        tls.read_to_string(&mut out).await?;
        Ok(out)
    }

    #[tokio::test]
    async fn serves_https_and_requires_client_certificates_when_asked() {
        let ca = TestCa::new("test ca");
        let server = ca.issue(&["localhost", "127.0.0.1"]);
        let open = https_upstream(&server, None, router()).await;
        assert!(get(open, &ca, None).await.unwrap().ends_with("cn="));

        let mtls = https_upstream(&server, Some(&ca.cert_pem()), router()).await;
        assert!(get(mtls, &ca, None).await.is_err(), "no client certificate");
        let other = TestCa::new("other ca").issue_client("intruder");
        assert!(get(mtls, &ca, Some(&other)).await.is_err(), "client certificate from another CA");
        let client = ca.issue_client("app-client");
        assert!(get(mtls, &ca, Some(&client)).await.unwrap().ends_with("cn=app-client"), "and still serving");
    }

    #[tokio::test]
    async fn expired_certificates_are_refused_by_a_verifying_client() {
        let ca = TestCa::new("test ca");
        let addr = https_upstream(&ca.issue_with_validity(&["localhost"], -10, -1), None, router()).await;
        let err = get(addr, &ca, None).await.unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
    }

    #[test]
    fn subject_cn_reads_the_client_name() {
        let ca = TestCa::new("test ca");
        let client = ca.issue_client("app-client");
        let der = CertificateDer::from_pem_slice(client.cert_pem.as_bytes()).unwrap();
        assert_eq!(subject_cn(der.as_ref()).as_deref(), Some("app-client"));
    }
}
