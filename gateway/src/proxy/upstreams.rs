//! Upstream pools: one round-robin load balancer per route, health-checked in the
//! background (over TCP, HTTPS upstreams too), rebuilt when the route table
//! changes. A route with one upstream skips the balancer on the request path: its
//! address and health, as of the last check, are read from the published snapshot.
//! Each resolved address remembers the upstream host it came from, the name an
//! HTTPS upstream is reached (SNI) and verified by.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use pingora::lb::health_check::TcpHealthCheck;
use pingora::lb::selection::RoundRobin;
use pingora::lb::LoadBalancer;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};
use prometheus::IntGaugeVec;

use super::upstream_tls::TlsPeers;
use crate::routes::{Route, RouteTable, Upstream, UpstreamTls};

type Balancer = LoadBalancer<RoundRobin>;

/// Route name -> how to pick its upstream, as of the last refresh. Read once per
/// request.
#[derive(Default)]
pub struct Pools {
    by_route: ArcSwap<HashMap<Arc<str>, Pick>>,
    tls: TlsPeers,
}

/// A route's balancer and, for every address it balances over, the host of the
/// upstream that resolved to it.
#[derive(Clone)]
struct Pool {
    lb: Arc<Balancer>,
    hosts: Arc<[(SocketAddr, Arc<str>)]>,
}

impl Pool {
    /// The host `addr` came from (the first, if two upstreams share an address).
    fn host_of(&self, addr: SocketAddr) -> Option<&Arc<str>> {
        self.hosts.iter().find(|(a, _)| *a == addr).map(|(_, host)| host)
    }
}

/// How a route's upstream is picked.
#[derive(Clone)]
enum Pick {
    /// The route's only upstream, and whether the last health check passed.
    Single { addr: SocketAddr, healthy: bool, pool: Pool },
    /// Round robin over the healthy ones.
    Balanced(Pool),
}

impl Pick {
    fn pool(&self) -> &Pool {
        match self {
            Pick::Single { pool, .. } | Pick::Balanced(pool) => pool,
        }
    }
}

impl Pools {
    /// The address to send `route`'s next request to: a healthy upstream in
    /// round-robin order (the only one, without asking the balancer, for a route
    /// with one); before the first health check has run (a route that just
    /// appeared), the first configured upstream.
    pub fn select(&self, route: &Route) -> Option<SocketAddr> {
        match self.by_route.load().get(route.name()) {
            Some(Pick::Single { addr, healthy, .. }) => healthy.then_some(*addr),
            Some(Pick::Balanced(pool)) => select_from(&pool.lb),
            None => first_upstream(route),
        }
    }

    /// The peer for `route`'s next request, and its address: plain HTTP as
    /// [`Pools::select`] picks it, or for an HTTPS route with the route's TLS
    /// settings and the picked upstream's host as the name to verify.
    ///
    /// # Errors
    /// `ConnectNoRoute` when no upstream is healthy; `InvalidCert` when the route's
    /// TLS files could not be used (a table loaded without the gateway's checks).
    pub fn peer(&self, route: &Route) -> pingora::Result<(SocketAddr, HttpPeer)> {
        let Some(tls) = route.upstream_tls() else {
            let addr = self.select(route).ok_or_else(no_healthy_upstream)?;
            return Ok((addr, HttpPeer::new(addr, false, String::new())));
        };
        self.tls_peer(route, tls)
    }

    fn tls_peer(&self, route: &Route, tls: &UpstreamTls) -> pingora::Result<(SocketAddr, HttpPeer)> {
        let settings = self.tls.get(route, tls).map_err(|why| {
            Error::explain(ErrorType::InvalidCert, format!("route {}: upstream TLS files refused: {why}", route.name()))
        })?;
        let pick = self.by_route.load();
        let (addr, host) = match pick.get(route.name()) {
            Some(Pick::Single { addr, healthy: true, pool }) => (*addr, pool.host_of(*addr).map(|h| &**h)),
            Some(Pick::Single { healthy: false, .. }) => return Err(no_healthy_upstream()),
            Some(Pick::Balanced(pool)) => {
                let addr = select_from(&pool.lb).ok_or_else(no_healthy_upstream)?;
                (addr, pool.host_of(addr).map(|h| &**h))
            }
            None => (first_upstream(route).ok_or_else(no_healthy_upstream)?, None),
        };
        // Not found only for a pick built from another upstream list (the route
        // was reloaded since the last refresh): its first upstream's name. Never
        // an empty one: Pingora would not verify the certificate at all.
        let host = host.or_else(|| route.upstreams().first().map(Upstream::host)).filter(|h| !h.is_empty());
        let host = host.ok_or_else(|| Error::explain(ErrorType::InvalidCert, "no name to verify the upstream by"))?;
        Ok((addr, settings.peer(addr, host)))
    }

    /// Brings the balancers in line with `table` (reusing those whose upstream list
    /// did not change), runs one round of health checks, and publishes the result.
    pub async fn refresh(&self, table: &RouteTable, healthy: &IntGaugeVec) {
        self.tls.refresh(table);
        let current = self.by_route.load_full();
        let mut next = HashMap::with_capacity(table.len());
        for route in table.routes() {
            let reusable = current.get(route.name()).map(Pick::pool).filter(|pool| {
                let mut have: Vec<String> =
                    pool.lb.backends().get_backend().iter().map(|b| b.addr.to_string()).collect();
                have.sort();
                let mut want: Vec<String> = route.upstreams().iter().map(|u| u.as_str().to_owned()).collect();
                want.sort();
                have == want
            });
            let pool = match reusable {
                Some(pool) => pool.clone(),
                None => match build(route.upstreams()).await {
                    Some(pool) => pool,
                    None => continue,
                },
            };
            let lb = &pool.lb;
            lb.backends().run_health_check(true).await;
            let backends = lb.backends().get_backend();
            for backend in backends.iter() {
                let up = lb.backends().ready(backend);
                healthy.with_label_values(&[&**route.name(), &backend.addr.to_string()]).set(i64::from(up));
            }
            let single = match (backends.len(), backends.iter().next()) {
                (1, Some(backend)) => backend.addr.as_inet().map(|addr| (*addr, lb.backends().ready(backend))),
                _ => None,
            };
            let pick = match single {
                Some((addr, healthy)) => Pick::Single { addr, healthy, pool },
                None => Pick::Balanced(pool),
            };
            next.insert(route.name().clone(), pick);
        }
        self.by_route.store(Arc::new(next));
    }
}

fn select_from(lb: &Balancer) -> Option<SocketAddr> {
    lb.select(b"", 256).and_then(|backend| backend.addr.as_inet().copied())
}

/// A route's first upstream, resolved on the spot: only for a route that appeared
/// since the last refresh.
fn first_upstream(route: &Route) -> Option<SocketAddr> {
    route.upstreams().first()?.as_str().to_socket_addrs().ok()?.next()
}

fn no_healthy_upstream() -> Box<Error> {
    Error::explain(ErrorType::ConnectNoRoute, "no healthy upstream")
}

async fn build(upstreams: &[Upstream]) -> Option<Pool> {
    let wanted: Vec<(String, Arc<str>)> =
        upstreams.iter().map(|u| (u.as_str().to_owned(), Arc::from(u.host()))).collect();
    // Resolving names may block; keep it off the async threads.
    let hosts = match tokio::task::spawn_blocking(move || resolve(&wanted)).await.ok()? {
        Ok(hosts) => hosts,
        Err(e) => {
            tracing::warn!(error = %e, "cannot resolve upstreams");
            return None;
        }
    };
    let mut lb = match Balancer::try_from_iter(hosts.iter().map(|(addr, _)| *addr)) {
        Ok(lb) => lb,
        Err(e) => {
            tracing::warn!(error = %e, "cannot build the upstream balancer");
            return None;
        }
    };
    let mut check = TcpHealthCheck::new();
    check.peer_template.options.connection_timeout = Some(Duration::from_millis(500));
    lb.set_health_check(check);
    let _ = lb.update().await;
    Some(Pool { lb: Arc::new(lb), hosts: hosts.into() })
}

/// Every address each `host:port` resolves to, with the host it came from.
fn resolve(wanted: &[(String, Arc<str>)]) -> std::io::Result<Vec<(SocketAddr, Arc<str>)>> {
    let mut hosts = Vec::new();
    for (addr, host) in wanted {
        hosts.extend(addr.to_socket_addrs()?.map(|resolved| (resolved, host.clone())));
    }
    Ok(hosts)
}
