//! Upstream pools: one round-robin load balancer per route, health-checked in the
//! background, rebuilt when the route table changes. A route with one upstream
//! skips the balancer on the request path: its address and health, as of the
//! last check, are read from the published snapshot.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use pingora::lb::health_check::TcpHealthCheck;
use pingora::lb::selection::RoundRobin;
use pingora::lb::LoadBalancer;
use prometheus::IntGaugeVec;

use crate::routes::{Route, RouteTable};

type Balancer = LoadBalancer<RoundRobin>;

/// Route name -> how to pick its upstream, as of the last refresh. Read once per
/// request.
#[derive(Default)]
pub struct Pools {
    by_route: ArcSwap<HashMap<Arc<str>, Pick>>,
}

/// How a route's upstream is picked.
#[derive(Clone)]
enum Pick {
    /// The route's only upstream, and whether the last health check passed.
    Single { addr: SocketAddr, healthy: bool, lb: Arc<Balancer> },
    /// Round robin over the healthy ones.
    Balanced(Arc<Balancer>),
}

impl Pick {
    fn balancer(&self) -> &Arc<Balancer> {
        match self {
            Pick::Single { lb, .. } | Pick::Balanced(lb) => lb,
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
            Some(Pick::Balanced(lb)) => lb.select(b"", 256).and_then(|backend| backend.addr.as_inet().copied()),
            None => route.upstreams().first()?.as_str().to_socket_addrs().ok()?.next(),
        }
    }

    /// Brings the balancers in line with `table` (reusing those whose upstream list
    /// did not change), runs one round of health checks, and publishes the result.
    pub async fn refresh(&self, table: &RouteTable, healthy: &IntGaugeVec) {
        let current = self.by_route.load_full();
        let mut next = HashMap::with_capacity(table.len());
        for route in table.routes() {
            let addrs: Vec<&str> = route.upstreams().iter().map(|u| u.as_str()).collect();
            let reusable = current.get(route.name()).map(Pick::balancer).filter(|lb| {
                let mut have: Vec<String> = lb.backends().get_backend().iter().map(|b| b.addr.to_string()).collect();
                have.sort();
                let mut want: Vec<String> = addrs.iter().map(|a| (*a).to_owned()).collect();
                want.sort();
                have == want
            });
            let lb = match reusable {
                Some(lb) => lb.clone(),
                None => match build(&addrs).await {
                    Some(lb) => lb,
                    None => continue,
                },
            };
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
                Some((addr, healthy)) => Pick::Single { addr, healthy, lb },
                None => Pick::Balanced(lb),
            };
            next.insert(route.name().clone(), pick);
        }
        self.by_route.store(Arc::new(next));
    }
}

async fn build(addrs: &[&str]) -> Option<Arc<Balancer>> {
    let addrs: Vec<String> = addrs.iter().map(|a| (*a).to_owned()).collect();
    // Resolving names may block; keep it off the async threads.
    let lb = tokio::task::spawn_blocking(move || Balancer::try_from_iter(addrs)).await.ok()?;
    let mut lb = match lb {
        Ok(lb) => lb,
        Err(e) => {
            tracing::warn!(error = %e, "cannot resolve upstreams");
            return None;
        }
    };
    let mut check = TcpHealthCheck::new();
    check.peer_template.options.connection_timeout = Some(Duration::from_millis(500));
    lb.set_health_check(check);
    let _ = lb.update().await;
    Some(Arc::new(lb))
}
