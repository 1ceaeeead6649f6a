//! The baseline for `bench/gateway/run.sh`: a bare Pingora reverse proxy with no
//! authentication, forwarding everything to one upstream. The gateway's overhead is
//! measured against this, on the same machine in the same run.
//!
//! ```text
//! cargo run --release -p tenantgate-gateway --example bare_proxy -- 127.0.0.1:8181 127.0.0.1:3000 1
//! ```

use async_trait::async_trait;
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

fn main() {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8181".into());
    let upstream = args.next().unwrap_or_else(|| "127.0.0.1:3000".into());
    let Ok(upstream) = upstream.parse() else {
        eprintln!("the upstream must be ip:port, not {upstream:?}");
        std::process::exit(2);
    };
    let threads = args.next().and_then(|t| t.parse().ok()).unwrap_or(1);
    let conf = ServerConf { threads, ..ServerConf::default() };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, Bare { upstream });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run(RunArgs::default());
}
