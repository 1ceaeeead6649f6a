//! Ending long-lived requests when the access they were admitted with ends.
//!
//! A proxied request is authorized once, when it arrives; for an SSE stream or a
//! WebSocket that can be hours. Every change that narrows access (logout-all,
//! a role change, removal from the tenant, its deactivation) evicts cache keys
//! on every gateway ([`shared::cache::Invalidator`]), and the cache reports each
//! eviction ([`Cache::evictions`]). A [`Grant`] held by an open stream listens:
//! when an eviction concerns its user or tenant, it decides again from the cache
//! and, if the access no longer holds, [`Revocations::ended`] resolves and the
//! holder closes the stream. Evictions reach every instance through Redis
//! pub/sub within milliseconds, so a stream ends well within a second.
//!
//! The proxy cannot close a client connection from outside Pingora's request
//! loop, so it closes the upstream side instead: long-lived requests get their
//! own upstream connection through a [`Tap`] that keeps a handle on the socket,
//! and shutting that socket down ends the proxied exchange.

use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use pingora::connectors::L4Connect;
use pingora::protocols::l4::socket::SocketAddr;
use pingora::protocols::l4::stream::Stream;
use pingora::{Error, ErrorType, OrErr};
use shared::cache::{Cache, Evicted};
use shared::domain::{Role, TenantId, UserId};
use shared::telemetry::error_chain;
use tokio::sync::broadcast::error::RecvError;

/// What a long-lived request was admitted with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Who.
    pub holder: Holder,
    /// The tenant and the least role the route needs there, if any (membership
    /// is needed either way).
    pub tenant: Option<(TenantId, Option<Role>)>,
    /// When the access token (or API key) it was admitted with expires (Unix
    /// seconds): the stream ends then too, as a request with it would be refused.
    pub expires_at: i64,
}

/// Who a [`Grant`] was given to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// A user, with the token version their access token carried (logout-all
    /// bumps it).
    User {
        /// The user.
        id: UserId,
        /// The token's version.
        token_version: i32,
    },
    /// A tenant API key (revoking it ends the grant), by public id.
    ApiKey(Arc<str>),
}

/// Decides again, from the cache, whether grants still hold.
#[derive(Clone)]
pub struct Revocations {
    cache: Cache,
}

impl Revocations {
    /// Over the gateway's cache.
    pub fn new(cache: Cache) -> Revocations {
        Revocations { cache }
    }

    /// Resolves once `grant` no longer holds: its token expired, the user's
    /// sessions were ended, they left the tenant or their role there fell below
    /// what the route needs, or the tenant was deactivated.
    pub async fn ended(&self, grant: Grant) {
        let left = u64::try_from(grant.expires_at - chrono::Utc::now().timestamp()).unwrap_or(0);
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(left)) => {}
            () = self.revoked(grant) => {}
        }
    }

    async fn revoked(&self, grant: Grant) {
        let mut evictions = self.cache.evictions();
        // Whatever changed between the decision and this subscription.
        let mut event = Evicted::All;
        loop {
            let tenant = grant.tenant.map(|(t, _)| t);
            let concerns = match &grant.holder {
                Holder::User { id, .. } => event.concerns(*id, tenant),
                Holder::ApiKey(public_id) => tenant.is_some_and(|t| event.concerns_key(public_id, t)),
            };
            if concerns && !self.holds(&grant).await {
                return;
            }
            event = match evictions.recv().await {
                Ok(event) => event,
                Err(RecvError::Lagged(_)) => Evicted::All,
                Err(RecvError::Closed) => return std::future::pending().await,
            };
        }
    }

    /// Whether `grant` still holds. A cache failure keeps it (the stream stays
    /// open rather than every stream closing on a Redis or database blip).
    async fn holds(&self, grant: &Grant) -> bool {
        match self.check(grant).await {
            Ok(holds) => holds,
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "cannot re-check an open stream's access; keeping it");
                true
            }
        }
    }

    async fn check(&self, grant: &Grant) -> Result<bool, shared::cache::Error> {
        // A key's role is its own; a user's is their membership's.
        let key_role = match &grant.holder {
            Holder::User { id, token_version } => {
                if self.cache.user(*id).await?.is_none_or(|u| u.token_version != *token_version) {
                    return Ok(false);
                }
                None
            }
            Holder::ApiKey(public_id) => match self.cache.api_key(public_id).await? {
                Some(key) if key.is_live_at(chrono::Utc::now().timestamp()) => Some(key.role),
                _ => return Ok(false),
            },
        };
        let Some((tenant, min_role)) = grant.tenant else { return Ok(true) };
        let role = match (&grant.holder, key_role) {
            (_, Some(role)) => Some(role),
            (Holder::User { id, .. }, None) => self.cache.role(*id, tenant).await?,
            (Holder::ApiKey(_), None) => None,
        };
        let active = self.cache.tenant(tenant).await?.is_some_and(|t| t.is_active);
        Ok(active && role.is_some_and(|r| min_role.is_none_or(|needed| r >= needed)))
    }
}

/// Connects a long-lived request's own upstream connection and keeps a second
/// handle on its socket, so [`Tap::cut`] can end the exchange from outside.
#[derive(Debug, Default)]
pub struct Tap {
    socket: Mutex<Option<std::net::TcpStream>>,
    /// Cut before (or while) connecting: the connection is refused.
    cut: AtomicBool,
    /// Cut: the proxy refuses the exchange's next body chunk too (for a stream
    /// whose upstream connection it does not hold, see [`Watch::body`]).
    pub ended: Arc<AtomicBool>,
}

#[async_trait]
impl L4Connect for Tap {
    async fn connect(&self, addr: &SocketAddr) -> pingora::Result<Stream> {
        let SocketAddr::Inet(inet) = addr else {
            return Error::e_explain(ErrorType::ConnectError, "streams are tracked over TCP only");
        };
        let tcp = tokio::net::TcpStream::connect(inet).await.or_err(ErrorType::ConnectRefused, "connecting")?;
        let _ = tcp.set_nodelay(true);
        let std = tcp.into_std().or_err(ErrorType::ConnectError, "taking the socket")?;
        let twin = std.try_clone().or_err(ErrorType::ConnectError, "duplicating the socket")?;
        let tcp = tokio::net::TcpStream::from_std(std).or_err(ErrorType::ConnectError, "registering the socket")?;
        {
            let mut socket = self.socket.lock().unwrap_or_else(PoisonError::into_inner);
            // Checked under the lock `cut` takes: a cut is never missed.
            if self.cut.load(Ordering::Acquire) {
                return Error::e_explain(ErrorType::ConnectError, "access ended before the stream opened");
            }
            *socket = Some(twin);
        }
        Ok(Stream::from(tcp))
    }
}

impl Tap {
    /// Shuts the upstream socket down both ways: the app sees the connection
    /// close, and the proxy ends the client's side of the exchange.
    pub fn cut(&self) {
        self.ended.store(true, Ordering::Release);
        let mut socket = self.socket.lock().unwrap_or_else(PoisonError::into_inner);
        self.cut.store(true, Ordering::Release);
        if let Some(socket) = socket.take() {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

/// The task that ends one stream when its grant ends; aborted with the request.
pub struct Watch(tokio::task::JoinHandle<()>);

impl Watch {
    /// Cuts `tap` once `grant` ends, calling `ended` first.
    pub fn start(
        revocations: Revocations,
        grant: Grant,
        tap: Arc<Tap>,
        ended: impl FnOnce() + Send + 'static,
    ) -> Watch {
        Watch(tokio::spawn(async move {
            revocations.ended(grant).await;
            ended();
            tap.cut();
        }))
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.0.abort();
    }
}
