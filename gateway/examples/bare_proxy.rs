//! The baseline for `bench/gateway/run.sh` and `bench/gateway/tls.sh`: a bare
//! Pingora reverse proxy with no authentication, forwarding everything to one
//! upstream. The gateway's overhead is measured against this, on the same machine
//! in the same run.
//!
//! ```text
//! cargo run --release -p tenantgate-gateway --example bare_proxy -- 127.0.0.1:8181 127.0.0.1:3000 1
//! cargo run --release -p tenantgate-gateway --example bare_proxy -- 127.0.0.1:8181 127.0.0.1:3000 1 \
//!     --tls 127.0.0.1:8182 var/tls/localhost.pem var/tls/localhost.key
//! ```
//!
//! With `--tls ADDR CERT KEY` it also serves HTTPS on ADDR as the gateway's
//! `GATEWAY_TLS_LISTEN` does: Pingora's rustls backend (ring), TLS 1.2 and 1.3,
//! ALPN `h2` then `http/1.1`. One difference is left, and it favours the baseline:
//! this proxy serves its one certificate through rustls' single-certificate
//! resolver, while the gateway picks one by SNI from its reloadable set and counts
//! handshakes in a callback.

use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use pingora::server::RunArgs;

/// The gateway's allocator, so the comparison measures the gateway's work rather
/// than a difference in allocators.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bare {
    /// Parsed once, as the gateway parses its routes' upstreams once.
    upstream: std::net::SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    /// The gateway's peer for a route without timeouts of its own: the same
    /// connect and per-read timeouts, the same keepalive pool (Pingora's default).
    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream, false, String::new());
        peer.options.connection_timeout = Some(std::time::Duration::from_secs(5));
        peer.options.read_timeout = Some(std::time::Duration::from_secs(60));
        Ok(Box::new(peer))
    }
}

fn usage(problem: &str) -> ! {
    eprintln!("{problem}\nusage: bare_proxy [LISTEN [UPSTREAM [THREADS]]] [--tls ADDR CERT KEY]");
    std::process::exit(2);
}

fn main() {
    let mut positional = Vec::new();
    let mut tls = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--tls" {
            let (Some(addr), Some(cert), Some(key)) = (args.next(), args.next(), args.next()) else {
                usage("--tls needs ADDR CERT KEY");
            };
            tls = Some((addr, cert, key));
        } else {
            positional.push(arg);
        }
    }
    if positional.len() > 3 {
        usage("too many arguments");
    }
    let mut positional = positional.into_iter();
    let listen = positional.next().unwrap_or_else(|| "127.0.0.1:8181".into());
    let upstream = positional.next().unwrap_or_else(|| "127.0.0.1:3000".into());
    let Ok(upstream) = upstream.parse() else {
        usage(&format!("the upstream must be ip:port, not {upstream:?}"));
    };
    let threads = positional.next().and_then(|t| t.parse().ok()).unwrap_or(1);
    let conf = ServerConf { threads, ..ServerConf::default() };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, Bare { upstream });
    proxy.add_tcp(&listen);
    if let Some((addr, cert, key)) = tls {
        // The gateway's listener settings (`CertStore::listener`) with a single
        // certificate: rustls, TLS 1.2 + 1.3, ALPN h2 then http/1.1.
        let mut settings = TlsSettings::intermediate(&cert, &key).unwrap_or_else(|e| usage(&format!("--tls: {e}")));
        settings.enable_h2();
        proxy.add_tls_with_settings(&addr, None, settings);
    }
    server.add_service(proxy);
    server.run(RunArgs::default());
}
