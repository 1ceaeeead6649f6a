//! The admin listener (`/healthz`, `/readyz`, `/metrics`) as a Pingora background
//! service, so it starts and stops with the server.

use std::net::TcpListener;
use std::sync::Mutex;

use async_trait::async_trait;
use axum::Router;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

/// Serves the admin router on a listener bound before the server starts (so a busy
/// port fails the start with a clear message rather than at run time).
pub struct AdminService {
    listener: Mutex<Option<TcpListener>>,
    router: Router,
}

/// Binds `addr` with `SO_REUSEPORT` (and `SO_REUSEADDR`): during a zero-downtime
/// upgrade the new process binds the admin port while the old one still serves
/// it (Pingora hands over only the proxy's listeners). Linux lets only the same
/// user join the port.
///
/// # Errors
/// When the address is taken by another user's socket or cannot be bound.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

impl AdminService {
    /// Wraps an already bound listener.
    pub fn new(listener: TcpListener, router: Router) -> AdminService {
        AdminService { listener: Mutex::new(Some(listener)), router }
    }
}

#[async_trait]
impl BackgroundService for AdminService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(listener) = self.listener.lock().ok().and_then(|mut l| l.take()) else {
            return;
        };
        let listener = match listener.set_nonblocking(true).and_then(|()| tokio::net::TcpListener::from_std(listener)) {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!(error = %e, "admin listener unusable");
                return;
            }
        };
        let stop = async move {
            let _ = shutdown.changed().await;
        };
        if let Err(e) = shared::telemetry::serve_admin(listener, self.router.clone(), stop).await {
            tracing::error!(error = %e, "admin listener failed");
        }
    }
}
