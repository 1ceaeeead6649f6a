//! The proxy's route table, from files ops edit (`GATEWAY_ROUTES`): which upstream
//! serves a request, and what the request must bring (a user, a tenant, a role).
//!
//! - [`RouteTable::load`] reads a TOML file or a folder of them into an immutable
//!   snapshot, refusing invalid files with `file:line:column: problem`;
//! - [`RouteTable::match_request`] picks the route for a Host and a parsed path
//!   ([`crate::path::RequestPath`]), on its decoded view, without regard to case
//!   unless a route is `case_sensitive`;
//! - [`Route::for_request`] picks, among a route's `[[route.rule]]` entries, the
//!   first that applies to the request's method and path ([`Rule`]): the route
//!   with that rule's policy, or the route itself;
//! - [`tenant`] finds a tenant slug in a Host or path;
//! - [`Upstream`] and [`UpstreamTls`] say where a route's requests go, and for
//!   `https://` upstreams how their certificates are checked (the PEM files the
//!   `tls_*` keys name are read with the route files).
//!
//! Invariant: a route the proxy holds has passed every check of the loader, so the
//! hooks never re-validate; and an invalid edit never replaces a valid table (the
//! gateway's watcher keeps the previous one).

mod fields;
mod host;
mod identity;
mod load;
mod lookup;
mod policy;
mod prefix;
mod problem;
mod route;
mod rule;
mod table;
pub mod tenant;
mod upstream;
mod variants;

pub use host::{host_name, HostPattern};
pub use identity::{IdentityHeader, IdentityHeaders};

pub use load::is_route_file_name;
pub use lookup::PathLookup;
pub use policy::{EncodedSlashes, OnUnauthenticated, RateLimit, RateLimitKey, Requirement, TenantSource};
pub use prefix::PathPrefix;
pub use problem::LoadError;
pub use route::Route;
pub use rule::Rule;
pub use table::{Match, RouteTable};
pub use upstream::{ClientCert, PemFile, Scheme, Upstream, UpstreamTls};
