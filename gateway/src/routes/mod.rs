//! The proxy's route table, from files ops edit (`GATEWAY_ROUTES`): which upstream
//! serves a request, and what the request must bring (a user, a tenant, a role).
//!
//! Everything here is pure or I/O-light, so the Pingora hooks stay short:
//!
//! - [`RouteTable::load`] reads a TOML file or a folder of them into an immutable
//!   snapshot, refusing invalid files with `file:line:column: problem`;
//! - [`normalize()`] puts the request path in canonical form (dot segments, `//`,
//!   unreserved `%XX`), and [`RouteTable::match_request`] picks the route for a Host
//!   and that normalized path;
//! - [`tenant`] finds a tenant slug in a Host or path;
//! - [`watch()`] reloads the table when the files change.
//!
//! Invariant: a route the proxy holds has passed every check of the loader, so the
//! hooks never re-validate; and an invalid edit never replaces a valid table.

mod load;
mod normalize;
mod route;
mod table;
pub mod tenant;
mod watch;

pub use load::LoadError;
pub use normalize::{normalize, NormalizeError};
pub use route::{
    HostPattern, OnUnauthenticated, PathPrefix, RateLimit, RateLimitKey, Requirement, Route, TenantSource, Upstream,
};
pub use table::{Match, RouteTable};
pub use watch::{watch, WatchError, DEBOUNCE};
