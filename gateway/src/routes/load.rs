//! The route table as the gateway loads it: `edge`'s loader (syntax, semantics,
//! the PEM files read), then what needs a TLS stack, which `edge` has not: the
//! certificates and keys of HTTPS routes must parse and match
//! ([`crate::proxy::upstream_tls::PeerTls::build`]).

use std::path::Path;

use edge::routes::{LoadError, RouteTable};

use crate::proxy::upstream_tls::PeerTls;

/// Reads the route files at `path` ([`RouteTable::load`]) and checks the TLS
/// files of every HTTPS route. Use it wherever a table is loaded (start, reload,
/// `check-config`), so all of them refuse the same files.
///
/// # Errors
/// The first [`LoadError`], pointing at the file, line and column at fault.
pub fn load(path: &Path) -> Result<RouteTable, LoadError> {
    let table = RouteTable::load(path)?;
    for route in table.routes() {
        if let Some(tls) = route.upstream_tls() {
            PeerTls::build(route, tls)?;
        }
    }
    Ok(table)
}
