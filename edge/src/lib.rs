//! How the gateway reads a request, before it decides anything: the one
//! interpretation of its path, host, headers, credentials and client address that
//! the app behind the gateway will share, and the route table that maps a request
//! to the rules it must meet.
//!
//! - [`path`]: the wire form and the decoded view of a path; every spelling an
//!   upstream decoder could read differently is refused.
//! - [`headers`]: which client headers are identity or override headers, in any
//!   spelling (`X_User_Id` is `X-User-Id` to a WSGI app).
//! - [`credentials`]: the one access token a request presents.
//! - [`client_ip`]: the client behind trusted proxies.
//! - [`routes`]: route files, their checks, and the matcher.
//!
//! Invariant: nothing here does I/O except the route loader reading route files
//! and the PEM files their `tls_*` keys name, and nothing depends on Pingora, a
//! database or a runtime, so every parser here can be fuzzed (`fuzz/`) and
//! property-tested in isolation.

pub mod client_ip;
pub mod credentials;
pub mod headers;
pub mod path;
pub mod routes;
