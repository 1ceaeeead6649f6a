//! TLS at the edge, against the real binary and real TLS clients (rustls,
//! reqwest, h2, and curl where it speaks HTTP/2): certificates chosen by SNI and
//! reloaded without dropping connections, bad pairs refused with a clear message,
//! handshake failures counted by reason, HTTP/2 answering as HTTP/1.1 does (the
//! hardening cases included), the plain listener's redirect, HSTS, h2c.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use testkit::tls::{Leaf, TestCa};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::helpers::*;
use crate::proxy::member;

/// A gateway with an HTTPS listener, and what its certificates were made from.
struct TlsApp {
    app: TestApp,
    port: u16,
    ca: TestCa,
    certs: tempfile::TempDir,
}

impl TlsApp {
    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.port)
    }

    /// A reqwest client that trusts the test CA and sends every name below to the
    /// gateway; HTTP/2 when the server offers it, unless `http1`.
    fn client(&self, http1: bool) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca.cert_pem().as_bytes()).unwrap())
            .redirect(reqwest::redirect::Policy::none());
        for host in ["a.test", "b.w.test", "default.test", "other.test"] {
            builder = builder.resolve(host, self.addr());
        }
        if http1 {
            builder = builder.http1_only();
        }
        builder.build().unwrap()
    }
}

/// `default.test` as the default certificate, `a.test` and `*.w.test` per host.
async fn spawn_tls(routes: &str, extra: &[(&str, &str)]) -> TlsApp {
    let ca = TestCa::new("tenantgate test CA");
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path().join("hosts");
    std::fs::create_dir(&dir).unwrap();
    let (cert, key) = ca.issue(&["default.test"]).write(certs.path(), "default");
    ca.issue(&["a.test"]).write(&dir, "a.test");
    ca.issue(&["*.w.test"]).write(&dir, "_wildcard.w.test");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let (cert, key, dir) = (cert.display().to_string(), key.display().to_string(), dir.display().to_string());
    let mut env = vec![
        ("GATEWAY_TLS_LISTEN", listen.as_str()),
        ("GATEWAY_TLS_CERT", cert.as_str()),
        ("GATEWAY_TLS_KEY", key.as_str()),
        ("GATEWAY_TLS_CERTS_DIR", dir.as_str()),
    ];
    env.extend_from_slice(extra);
    let app = spawn_gateway(routes, &env, None).await;
    TlsApp { app, port, ca, certs }
}

fn client_config(ca_pem: &str, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

async fn connect(
    addr: SocketAddr,
    sni: &str,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    tokio_rustls::TlsConnector::from(config).connect(name, tcp).await
}

/// Accepts any certificate: for looking at what the gateway serves, whatever it is.
#[derive(Debug)]
struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The leaf certificate the gateway served for `sni` (not verified: the test
/// compares it with the files).
async fn served(app: &TlsApp, sni: &str) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider)))
        .with_no_client_auth();
    let stream = connect(app.addr(), sni, Arc::new(config)).await.unwrap();
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn der_of(leaf: &Leaf) -> Vec<u8> {
    CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap().to_vec()
}

fn read_der(path: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(path).unwrap().to_vec()
}

/// One HTTP/1.1 request on an open connection; the status line's code.
async fn get_on(stream: &mut TlsStream<TcpStream>, host: &str, path: &str) -> u16 {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n");
    send_on(stream, &request).await.0
}

/// Sends `request` (raw bytes, nothing normalized) on an open connection; the
/// status and the answer's head.
async fn send_on<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    request: &str,
) -> (u16, String) {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "connection closed mid-answer");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    (head[9..12].parse().unwrap(), head)
}

#[tokio::test]
async fn sni_picks_the_certificate_and_a_reload_swaps_it_without_dropping_connections() {
    let t = spawn_tls(DEFAULT_ROUTES, &[]).await;
    let hosts = t.certs.path().join("hosts");
    assert_eq!(served(&t, "a.test").await, read_der(&hosts.join("a.test.pem")), "its own certificate");
    assert_eq!(served(&t, "b.w.test").await, read_der(&hosts.join("_wildcard.w.test.pem")), "the wildcard");
    let default = read_der(&t.certs.path().join("default.pem"));
    assert_eq!(served(&t, "x.b.w.test").await, default, "a wildcard covers one label only");
    assert_eq!(served(&t, "default.test").await, default);
    assert!(t.app.metric("tenantgate_tls_certificates").await == 3.0);
    let expiry = t.app.metric("tenantgate_tls_certificate_expiry_timestamp_seconds{certificate=\"a.test\"}").await;
    assert!(expiry > (chrono::Utc::now().timestamp() + 20 * 86_400) as f64, "expiry {expiry}");

    // A connection opened before the renewal keeps working after it.
    let mut open = connect(t.addr(), "a.test", client_config(&t.ca.cert_pem(), &[b"http/1.1"])).await.unwrap();
    assert_eq!(get_on(&mut open, "a.test", "/nowhere").await, 404);
    let renewed = t.ca.issue(&["a.test"]);
    renewed.write(&hosts, "a.test");
    let swapped =
        t.app.eventually(Duration::from_secs(10), || async { served(&t, "a.test").await == der_of(&renewed) }).await;
    assert!(swapped, "the renewed certificate is served");
    assert_eq!(get_on(&mut open, "a.test", "/nowhere").await, 404, "the old connection still answers");
    assert!(t.app.metric("tenantgate_tls_reloads_total{result=\"ok\"}").await >= 1.0);

    // An expired renewal is refused: the current certificate stays.
    t.ca.issue_with_validity(&["a.test"], -30, -1).write(&hosts, "a.test");
    let refused = t
        .app
        .eventually(Duration::from_secs(10), || async {
            t.app.metric("tenantgate_tls_reloads_total{result=\"error\"}").await >= 1.0
        })
        .await;
    assert!(refused, "the expired certificate is refused");
    assert_eq!(served(&t, "a.test").await, der_of(&renewed), "a.test keeps the certificate it had");
    assert_eq!(t.app.metric("tenantgate_tls_certificate_files_refused").await, 1.0);
    // It does not hold up the others: a new host beside it is served.
    let b = t.ca.issue(&["b.test"]);
    b.write(&hosts, "b.test");
    let added = t.app.eventually(Duration::from_secs(10), || async { served(&t, "b.test").await == der_of(&b) }).await;
    assert!(added, "b.test is served while a.test's renewal is refused");
    // A wildcard file must hold the wildcard itself.
    t.ca.issue(&["x.v.test"]).write(&hosts, "_wildcard.v.test");
    let counted = t.app.eventually(Duration::from_secs(10), || async {
        t.app.metric("tenantgate_tls_certificate_files_refused").await == 2.0
    });
    assert!(counted.await, "a wildcard file naming one host under it is refused");
}

#[tokio::test]
async fn a_request_for_a_host_its_connection_certificate_does_not_cover_is_misdirected() {
    let t = spawn_tls(ROUTES, &[]).await;
    let config = client_config(&t.ca.cert_pem(), &[b"http/1.1"]);
    let mut a = connect(t.addr(), "a.test", config.clone()).await.unwrap();
    assert_eq!(get_on(&mut a, "a.test", "/public/x").await, 200);
    assert_eq!(get_on(&mut a, "default.test", "/public/x").await, 421, "a.test's certificate does not cover it");
    assert_eq!(get_on(&mut a, "a.test:443", "/auth/nothing").await, 404, "a port does not matter");
    // One wildcard connection serves every host the wildcard covers (HTTP/2 reuse).
    let mut w = connect(t.addr(), "b.w.test", config).await.unwrap();
    assert_eq!(get_on(&mut w, "c.w.test", "/public/x").await, 200);
    assert_eq!(get_on(&mut w, "a.test", "/public/x").await, 421);
    let res = t.client(true).get(t.url("a.test", "/public/x")).header("host", "default.test").send().await.unwrap();
    assert_error(res, 421, "misdirected_request").await;
}

#[tokio::test]
async fn failed_handshakes_are_counted_by_reason() {
    // Per-host certificates only: a name without one gets no certificate.
    let ca = TestCa::new("ca");
    let certs = tempfile::tempdir().unwrap();
    ca.issue(&["a.test"]).write(certs.path(), "a.test");
    let port = free_port();
    let (listen, dir) = (format!("127.0.0.1:{port}"), certs.path().display().to_string());
    // Counted whatever the log level: here, no logging at all.
    let env = [("GATEWAY_TLS_LISTEN", listen.as_str()), ("GATEWAY_TLS_CERTS_DIR", dir.as_str()), ("LOG_LEVEL", "off")];
    let app = spawn_gateway(DEFAULT_ROUTES, &env, None).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let trusted = client_config(&ca.cert_pem(), &[b"h2", b"http/1.1"]);

    assert!(connect(addr, "unknown.test", trusted.clone()).await.is_err());
    let reason = |r: &str| format!("tenantgate_tls_handshake_failures_total{{reason=\"{r}\"}}");
    // A client that does not trust the certificate says so.
    let stranger = client_config(&TestCa::new("another CA").cert_pem(), &[b"http/1.1"]);
    assert!(connect(addr, "a.test", stranger).await.is_err());
    // Plain HTTP on the HTTPS port.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").await.unwrap();
    let _ = plain.read(&mut [0u8; 64]).await;
    // No protocol in common.
    assert!(connect(addr, "a.test", client_config(&ca.cert_pem(), &[b"h3"])).await.is_err());
    for r in ["unknown_host", "certificate_refused", "not_tls", "protocol"] {
        let counted = app.eventually(Duration::from_secs(5), || async { app.metric(&reason(r)).await >= 1.0 }).await;
        let text = app.client.get(format!("{}/metrics", app.admin)).send().await.unwrap().text().await.unwrap();
        assert!(counted, "{r} counted: {}", text.lines().filter(|l| l.contains("tls_")).collect::<Vec<_>>().join("\n"));
    }
    // And a good one.
    let ok = connect(addr, "a.test", trusted).await.unwrap();
    assert_eq!(ok.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "HTTP/2 first");
    // The server counts it once its side is done, which may be just after ours.
    let counted = app
        .eventually(Duration::from_secs(5), || async {
            app.metric_sum("tenantgate_tls_handshakes_total{version=\"TLSv1").await >= 1.0
        })
        .await;
    assert!(counted, "a completed TLS handshake is counted by version");
    let text = app.client.get(format!("{}/metrics", app.admin)).send().await.unwrap().text().await.unwrap();
    assert!(
        text.contains("tenantgate_tls_handshakes_total{version=\"TLSv1_3\"}")
            || text.contains("tenantgate_tls_handshakes_total{version=\"TLSv1.3\"}"),
        "{text}"
    );
}

/// `gateway check-config` with a TLS listener and these certificate files: its
/// exit status and output.
fn check_config(cert: &Path, key: &Path, dir: Option<&Path>) -> (bool, String) {
    let db = testkit::TestDb::borrowed("postgres://postgres@127.0.0.1:5432/unused");
    let mut env = base_env(&db, free_port(), free_port());
    let routes = tempfile::tempdir().unwrap();
    std::fs::write(routes.path().join("r.toml"), "[[route]]\nname = \"r\"\nupstreams = [\"127.0.0.1:1\"]\n").unwrap();
    env.push(("GATEWAY_ROUTES".into(), routes.path().display().to_string()));
    env.push(("GATEWAY_TLS_LISTEN".into(), format!("127.0.0.1:{}", free_port())));
    env.push(("GATEWAY_TLS_CERT".into(), cert.display().to_string()));
    env.push(("GATEWAY_TLS_KEY".into(), key.display().to_string()));
    if let Some(dir) = dir {
        env.push(("GATEWAY_TLS_CERTS_DIR".into(), dir.display().to_string()));
    }
    let out = gateway_command(&env)
        .arg("check-config")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test]
async fn bad_certificates_are_refused_at_load_with_a_clear_message() {
    let ca = TestCa::new("ca");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.issue(&["good.test"]).write(dir.path(), "good");
    let (ok, text) = check_config(&cert, &key, None);
    assert!(ok, "{text}");
    assert!(text.contains("default: ") && text.contains("covers good.test") && text.contains("days)"), "{text}");

    let (expired, expired_key) = ca.issue_with_validity(&["old.test"], -60, -2).write(dir.path(), "old");
    let (ok, text) = check_config(&expired, &expired_key, None);
    assert!(!ok && text.contains("old.pem: expired on"), "{text}");

    let (future, future_key) = ca.issue_with_validity(&["new.test"], 2, 60).write(dir.path(), "new");
    let (ok, text) = check_config(&future, &future_key, None);
    assert!(!ok && text.contains("new.pem: is not valid before"), "{text}");

    let (ok, text) = check_config(&cert, &expired_key, None);
    assert!(!ok && text.contains("old.key: does not belong to the certificate"), "{text}");

    let (ok, text) = check_config(&cert, &dir.path().join("missing.key"), None);
    assert!(!ok && text.contains("missing.key"), "{text}");

    // A per-host file must hold a certificate for its host.
    let hosts = dir.path().join("hosts");
    std::fs::create_dir(&hosts).unwrap();
    ca.issue(&["elsewhere.test"]).write(&hosts, "shop.test");
    let (ok, text) = check_config(&cert, &key, Some(&hosts));
    assert!(!ok && text.contains("shop.test.pem: does not cover shop.test (it names elsewhere.test)"), "{text}");
    std::fs::remove_file(hosts.join("shop.test.key")).unwrap();
    let (ok, text) = check_config(&cert, &key, Some(&hosts));
    assert!(!ok && text.contains("has no key beside it"), "{text}");

    // A bad per-host file does not keep the gateway from starting: it serves the
    // others (and says so); a bad default certificate does.
    let good_hosts = dir.path().join("mixed");
    std::fs::create_dir(&good_hosts).unwrap();
    ca.issue(&["fine.test"]).write(&good_hosts, "fine.test");
    ca.issue_with_validity(&["stale.test"], -60, -2).write(&good_hosts, "stale.test");
    let (listen, hosts_dir) = (format!("127.0.0.1:{}", free_port()), good_hosts.display().to_string());
    let app =
        spawn_gateway(ROUTES, &[("GATEWAY_TLS_LISTEN", &listen), ("GATEWAY_TLS_CERTS_DIR", &hosts_dir)], None).await;
    assert_eq!(app.metric("tenantgate_tls_certificate_files_refused").await, 1.0);
    assert_eq!(app.metric("tenantgate_tls_certificates").await, 1.0);
    drop(app);

    // And the gateway itself refuses to start on a bad default pair.
    let db = testkit::TestDb::create().await;
    let mut env = base_env(&db, free_port(), free_port());
    env.push(("GATEWAY_TLS_LISTEN".into(), format!("127.0.0.1:{}", free_port())));
    env.push(("GATEWAY_TLS_CERT".into(), expired.display().to_string()));
    env.push(("GATEWAY_TLS_KEY".into(), expired_key.display().to_string()));
    let routes = tempfile::tempdir().unwrap();
    std::fs::write(routes.path().join("r.toml"), "[[route]]\nname = \"r\"\nupstreams = [\"127.0.0.1:1\"]\n").unwrap();
    env.push(("GATEWAY_ROUTES".into(), routes.path().display().to_string()));
    env.push(("GATEWAY_RUNTIME_DIR".into(), routes.path().join("run").display().to_string()));
    let out = gateway_command(&env).stderr(std::process::Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("loading the TLS certificates") && stderr.contains("expired on"),
        "{stderr}"
    );
}

/// A route table for the HTTP/2 comparisons: `/app` as in the defaults, `/public`
/// open to anyone.
const ROUTES: &str = r#"
[[route]]
name = "app"
path_prefix = "/app"
upstreams = ["{upstream}"]
auth = "required"
tenant = "required"
tenant_from = ["header"]
min_role = "viewer"

[[route]]
name = "public"
path_prefix = "/public"
upstreams = ["{upstream}"]
auth = "none"
"#;

/// What a client sees of one answer: status, the error code or the path the
/// upstream got, and the identity headers the upstream got.
async fn seen(res: reqwest::Response) -> (u16, Value, Value, Value) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    let headers = &body["headers"];
    let identity = serde_json::json!({
        "user": headers["x-user-id"], "tenant": headers["x-tenant-id"], "role": headers["x-tenant-role"],
        "forwarded_user": headers["x-forwarded-user"], "proto": headers["x-forwarded-proto"],
    });
    (status, body["error"].clone(), body["path"].clone(), identity)
}

/// A request: path, bearer token, headers.
type Case<'a> = (&'a str, Option<&'a str>, Vec<(&'a str, &'a str)>);

#[tokio::test]
async fn http2_gets_the_same_answers_as_http11() {
    let t = spawn_tls(ROUTES, &[]).await;
    let m = member(&t.app, "Acme").await;
    let (h1, h2) = (t.client(true), t.client(false));
    let cases: Vec<Case> = vec![
        ("/app/reports?x=1", Some(&m.token), vec![("x-tenant-id", &m.tenant_id)]),
        ("/app/reports", None, vec![("x-tenant-id", &m.tenant_id)]),
        ("/app/reports", Some("not-a-token"), vec![("x-tenant-id", &m.tenant_id)]),
        ("/app/reports", Some(&m.token), vec![]),
        ("/public/../app/reports", None, vec![]),
        ("/public/%2e%2e/app/reports", None, vec![]),
        ("/public/a%2Fb", None, vec![]),
        ("/public/a%252Fb", None, vec![]),
        ("/public/a\\b", None, vec![]),
        ("/public/a;b", None, vec![]),
        ("/public/%C0%AE", None, vec![]),
        ("/public/ok", None, vec![("x-user-id", "forged"), ("x-forwarded-user", "root"), ("X_User_Id", "forged")]),
        (
            "/app/reports",
            Some(&m.token),
            vec![("x-tenant-id", &m.tenant_id), ("x-tenant-role", "owner"), ("x-user-id", "forged")],
        ),
        ("/nowhere", None, vec![]),
    ];
    for (path, token, headers) in &cases {
        let mut answers = Vec::new();
        for (client, version) in [(&h1, reqwest::Version::HTTP_11), (&h2, reqwest::Version::HTTP_2)] {
            let mut req = client.get(t.url("a.test", path));
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.version(), version, "{path}");
            answers.push(seen(res).await);
        }
        assert_eq!(answers[0], answers[1], "{path}: HTTP/1.1 then HTTP/2");
        let (status, _, _, identity) = &answers[0];
        if *status == 200 {
            assert_eq!(identity["proto"], "https", "{path}");
            assert_eq!(identity["forwarded_user"], Value::Null, "{path}");
        }
    }
    // The answers are what they should be, not just equal.
    let statuses: Vec<u16> = {
        let mut out = Vec::new();
        for (path, token, headers) in &cases[..4] {
            let mut req = h2.get(t.url("a.test", path));
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            out.push(req.send().await.unwrap().status().as_u16());
        }
        out
    };
    assert_eq!(statuses, [200, 401, 401, 400]);
    let res = h2.get(t.url("a.test", "/public/a%2Fb")).send().await.unwrap();
    assert_error(res, 400, "ambiguous_path").await;
    let res = h2
        .get(t.url("a.test", "/app/reports"))
        .bearer_auth(&m.token)
        .header("x-tenant-id", &m.tenant_id)
        .send()
        .await
        .unwrap();
    let (_, _, _, identity) = seen(res).await;
    assert_eq!(identity["user"], m.user_id.as_str());
    assert_eq!(identity["role"], "owner");

    // A cookie-authenticated write over HTTPS must come from an HTTPS page.
    let cookie = format!("tg_access={}", m.token);
    for (origin, status) in [("http://a.test", 403), ("https://a.test", 200)] {
        let res = h1
            .post(t.url("a.test", "/app/reports"))
            .header("cookie", &cookie)
            .header("origin", origin)
            .header("x-tenant-id", &m.tenant_id)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), status, "Origin {origin}");
    }

    // The auth API answers over HTTP/2 as well.
    let res = h2
        .post(t.url("a.test", "/auth/login"))
        .json(&serde_json::json!({"email": m.email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!((res.version(), res.status().as_u16()), (reqwest::Version::HTTP_2, 200));
}

/// An HTTP/2 request whose `:authority` and `Host` name different hosts.
async fn h2_with_host(t: &TlsApp, authority: &str, host: &str) -> Result<u16, String> {
    let tls =
        connect(t.addr(), "a.test", client_config(&t.ca.cert_pem(), &[b"h2"])).await.map_err(|e| e.to_string())?;
    let (mut client, connection) = h2::client::handshake(tls).await.map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = http::Request::get(format!("https://{authority}/public/x")).header("host", host).body(()).unwrap();
    let (response, _) = client.send_request(request, true).map_err(|e| e.to_string())?;
    response.await.map(|r| r.status().as_u16()).map_err(|e| e.to_string())
}

#[tokio::test]
async fn an_http2_authority_that_disagrees_with_host_is_refused() {
    let t = spawn_tls(ROUTES, &[]).await;
    assert_eq!(h2_with_host(&t, "a.test", "a.test").await, Ok(200));
    let answer = h2_with_host(&t, "a.test", "evil.test").await;
    assert!(answer.as_ref().is_err() || answer == Ok(400), "refused: {answer:?}");
}

#[tokio::test]
async fn plain_http_redirects_to_https_and_https_answers_carry_hsts() {
    let t = spawn_tls(ROUTES, &[("GATEWAY_HTTP_REDIRECT", "true"), ("GATEWAY_HSTS_MAX_AGE", "1h")]).await;
    let plain = format!("http://127.0.0.1:{}", t.app.base.rsplit(':').next().unwrap());
    let res = t.app.client.post(format!("{plain}/app/x?y=1")).header("host", "a.test:8080").send().await.unwrap();
    assert_eq!(res.status(), 308);
    assert_eq!(res.headers()["location"], format!("https://a.test:{}/app/x?y=1", t.port).as_str());
    assert!(res.headers().get("strict-transport-security").is_none(), "never over plain HTTP");
    // ACME HTTP-01 challenges stay on plain HTTP (no route here: the gateway's 404).
    let res = t
        .app
        .client
        .get(format!("{plain}/.well-known/acme-challenge/token"))
        .header("host", "a.test")
        .send()
        .await
        .unwrap();
    assert_error(res, 404, "route_not_found").await;
    // A host the gateway would refuse is refused, not redirected.
    let res = t.app.client.get(format!("{plain}/app")).header("host", "bad_host!").send().await.unwrap();
    assert_error(res, 400, "invalid_host").await;

    // Only an exact challenge path stays plain: no spelling that routing would
    // read as another path escapes the redirect (raw bytes: a client library
    // would resolve the dots itself).
    let plain_addr = t.app.base.trim_start_matches("http://").to_owned();
    for target in ["/.well-known/acme-challenge/../../public/x", "/.well-known/acme-challenge/%2e%2e/public/x"] {
        let mut socket = TcpStream::connect(&plain_addr).await.unwrap();
        let (status, head) = send_on(&mut socket, &format!("GET {target} HTTP/1.1\r\nHost: a.test\r\n\r\n")).await;
        assert_eq!(status, 308, "{target}: {head}");
    }
    // A plain request without a valid host is refused, not served over HTTP.
    for request in ["GET /public/x HTTP/1.0\r\n\r\n", "GET /auth/ui/login HTTP/1.1\r\nHost: a_b.test\r\n\r\n"] {
        let mut socket = TcpStream::connect(&plain_addr).await.unwrap();
        let (status, head) = send_on(&mut socket, request).await;
        assert_eq!(status, 400, "{request:?}: {head}");
    }
    // Nor over TLS.
    let mut tls = connect(t.addr(), "a.test", client_config(&t.ca.cert_pem(), &[b"http/1.1"])).await.unwrap();
    assert_eq!(send_on(&mut tls, "GET /public/x HTTP/1.0\r\n\r\n").await.0, 400);

    let h2 = t.client(false);
    for (path, status) in
        [("/public/page", 200), ("/app/x", 401), ("/auth/.well-known/nothing", 404), ("/.well-known/jwks.json", 200)]
    {
        let res = h2.get(t.url("a.test", path)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{path}");
        assert_eq!(
            res.headers().get("strict-transport-security").map(|v| v.to_str().unwrap()),
            Some("max-age=3600"),
            "{path}"
        );
    }
    let echo: Value = h2.get(t.url("a.test", "/public/page")).send().await.unwrap().json().await.unwrap();
    assert_eq!(echo["headers"]["x-forwarded-proto"], "https");
}

#[tokio::test]
async fn a_trusted_proxys_word_on_the_scheme_is_its_last_value() {
    let t = spawn_tls(ROUTES, &[("GATEWAY_HTTP_REDIRECT", "true"), ("GATEWAY_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let plain = t.app.base.trim_start_matches("http://").to_owned();
    // The client said https, the proxy appended http: plain, so redirected.
    for said in ["X-Forwarded-Proto: https\r\nX-Forwarded-Proto: http", "X-Forwarded-Proto: https, http"] {
        let mut socket = TcpStream::connect(&plain).await.unwrap();
        let (status, _) =
            send_on(&mut socket, &format!("GET /public/x HTTP/1.1\r\nHost: a.test\r\n{said}\r\n\r\n")).await;
        assert_eq!(status, 308, "{said}");
    }
    let mut socket = TcpStream::connect(&plain).await.unwrap();
    let request = "GET /public/x HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-Proto: http, https\r\n\r\n";
    let (status, head) = send_on(&mut socket, request).await;
    assert_eq!(status, 200, "the proxy saw HTTPS: served, {head}");
}

#[tokio::test]
async fn h2c_is_served_on_the_plain_listener_only_when_asked() {
    let on = spawn_gateway(ROUTES, &[("GATEWAY_H2C", "true")], None).await;
    let prior = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let res = prior.get(on.url("/public/page")).send().await.unwrap();
    assert_eq!((res.version(), res.status().as_u16()), (reqwest::Version::HTTP_2, 200));
    let echo: Value = res.json().await.unwrap();
    assert_eq!(echo["headers"]["x-forwarded-proto"], "http");
    assert_eq!(on.client.get(on.url("/public/page")).send().await.unwrap().status(), 200, "HTTP/1.1 still served");

    let off = spawn_gateway(ROUTES, &[], None).await;
    assert!(prior.get(off.url("/public/page")).send().await.is_err(), "no h2c unless GATEWAY_H2C");
}

#[tokio::test]
async fn curl_speaks_http2_to_the_gateway() {
    // scripts/test.sh installs curl where it is missing.
    let version = std::process::Command::new("curl").arg("-V").output().expect("curl is installed");
    assert!(String::from_utf8_lossy(&version.stdout).contains("HTTP2"), "Debian's curl speaks HTTP/2");
    let t = spawn_tls(ROUTES, &[]).await;
    let ca = t.certs.path().join("ca.pem");
    std::fs::write(&ca, t.ca.cert_pem()).unwrap();
    // Not std's Command: its wait would block the runtime the echo upstream runs on.
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--http2", "--cacert"])
        .arg(&ca)
        .args(["--resolve", &format!("a.test:{}:127.0.0.1", t.port), "-w", "\n%{http_version} %{http_code}"])
        .arg(t.url("a.test", "/public/curl"))
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("\n2 200"), "{text} {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("\"path\":\"/public/curl\""), "{text}");
}
