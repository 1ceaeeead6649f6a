//! The route table: an immutable snapshot of every route, indexed by host, that
//! answers "which route serves this Host and path" without allocating.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::host::host_name;
use super::load::{self, Seen};
use super::lookup::PathLookup;
use super::problem::LoadError;
use super::route::Route;
use crate::path::after_segments;

/// Longest DNS name; longer Hosts can only match routes without `hosts`.
const MAX_HOST: usize = 253;

/// All routes from the route files, ready for matching. Build it with
/// [`RouteTable::load`], share it as `Arc<ArcSwap<RouteTable>>`, and replace it
/// whole on reload (the gateway's `routes::watch`).
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
    files: Vec<PathBuf>,
    /// Lowercase exact host -> indexes into `routes`, longest prefix first.
    exact: HashMap<Box<str>, Vec<usize>>,
    /// Lowercase suffix of `*.suffix` -> indexes, longest prefix first.
    wildcard: HashMap<Box<str>, Vec<usize>>,
    /// Routes without `hosts`, longest prefix first.
    any: Vec<usize>,
}

/// The route a request matched, and its path split at the route's prefix.
#[derive(Debug, Clone)]
pub struct Match<'p> {
    /// The matched route; keep it in the request context.
    pub route: Arc<Route>,
    /// The matched path's wire form.
    pub path: &'p str,
    /// The wire form after the route's prefix, starting with `/` (`/` when nothing
    /// is left).
    pub rest: &'p str,
}

impl<'p> Match<'p> {
    /// The path to send upstream: [`Match::rest`] when the route strips its prefix,
    /// else the whole path. Append the query string yourself.
    pub fn upstream_path(&self) -> &'p str {
        if self.route.strip_prefix() {
            self.rest
        } else {
            self.path
        }
    }
}

impl RouteTable {
    /// Reads `path`: one TOML file, or a folder whose `*.toml` files are read in name
    /// order (hidden files skipped, not recursive). Route names are unique across
    /// all files. Blocking file I/O: call it at start or from a reloader task.
    ///
    /// # Errors
    /// [`LoadError`] naming the file, line and column of the first problem, or the
    /// file or folder that could not be read, or that defines no route.
    pub fn load(path: &Path) -> Result<RouteTable, LoadError> {
        let files = load::route_files(path)?;
        let mut seen = Seen::default();
        let mut routes = Vec::new();
        for file in &files {
            let text =
                std::fs::read_to_string(file).map_err(|source| LoadError::Read { path: file.clone(), source })?;
            load::parse_file(file, &text, &mut seen, &mut routes)?;
        }
        if routes.is_empty() {
            return Err(LoadError::NoRoutes { path: path.to_owned() });
        }
        Ok(RouteTable::index(routes, files))
    }

    /// Builds a table from the text of one route file; `file` only labels errors.
    /// For tests and tools that hold the TOML in memory.
    ///
    /// # Errors
    /// As [`RouteTable::load`].
    pub fn parse(file: &Path, text: &str) -> Result<RouteTable, LoadError> {
        let mut routes = Vec::new();
        load::parse_file(file, text, &mut Seen::default(), &mut routes)?;
        if routes.is_empty() {
            return Err(LoadError::NoRoutes { path: file.to_owned() });
        }
        Ok(RouteTable::index(routes, vec![file.to_owned()]))
    }

    fn index(routes: Vec<Route>, files: Vec<PathBuf>) -> RouteTable {
        let routes: Vec<Arc<Route>> = routes.into_iter().map(Arc::new).collect();
        let mut table = RouteTable { files, ..RouteTable::default() };
        for (i, route) in routes.iter().enumerate() {
            if route.hosts().is_empty() {
                table.any.push(i);
            }
            for host in route.hosts() {
                let tier = if host.is_wildcard() { &mut table.wildcard } else { &mut table.exact };
                tier.entry(host.name().into()).or_default().push(i);
            }
        }
        // Most segments first: of two prefixes that both match a path, one is a
        // run of the other's segments. Stable, so ties keep file order; a tie is
        // only between prefixes that cannot both match one path.
        let by_length =
            |ids: &mut Vec<usize>| ids.sort_by_key(|&i| std::cmp::Reverse(routes[i].path_prefix().segments()));
        table.exact.values_mut().for_each(by_length);
        table.wildcard.values_mut().for_each(by_length);
        by_length(&mut table.any);
        table.routes = routes;
        table
    }

    /// Finds the route for a request.
    ///
    /// `host` is the Host header (or the URI authority); its port and a trailing dot
    /// are ignored, and so is its case. `path` is the request's parsed path
    /// ([`RequestPath`](crate::path::RequestPath)), matched on its view.
    ///
    /// Hosts are tried from the most specific: routes listing the exact host, then
    /// routes with a matching `*.` wildcard, then routes without `hosts`. Within the
    /// first of those groups that has a route for the path, the `path_prefix` with
    /// the most segments wins, compared without regard to case unless the route is
    /// `case_sensitive`. Does not allocate; at worst it looks at every route once.
    pub fn match_request<'p>(&self, host: &str, path: PathLookup<'p>) -> Option<Match<'p>> {
        let host = host_name(host);
        let mut buf = [0u8; MAX_HOST];
        let lower = buf.get_mut(..host.len()).and_then(|buf| {
            buf.copy_from_slice(host.as_bytes());
            buf.make_ascii_lowercase();
            std::str::from_utf8(buf).ok()
        });
        if let Some(host) = lower {
            if let Some(m) = self.exact.get(host).and_then(|ids| self.first_match(ids, path)) {
                return Some(m);
            }
            let parent = host.split_once('.').filter(|(label, _)| !label.is_empty()).map(|(_, parent)| parent);
            if let Some(m) = parent.and_then(|p| self.wildcard.get(p)).and_then(|ids| self.first_match(ids, path)) {
                return Some(m);
            }
        }
        self.first_match(&self.any, path)
    }

    fn first_match<'p>(&self, ids: &[usize], path: PathLookup<'p>) -> Option<Match<'p>> {
        ids.iter().find_map(|&i| {
            let route = &self.routes[i];
            let prefix = route.path_prefix();
            prefix.matches(path.view(), path.folded(), route.case_sensitive()).then(|| Match {
                route: Arc::clone(route),
                path: path.wire(),
                rest: after_segments(path.wire(), prefix.segments()),
            })
        })
    }

    /// Every route, in file order.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// The route called `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| &**r.name() == name)
    }

    /// The files the table was read from, in the order read.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// How many routes there are.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True only for the default (empty) table, which matches nothing.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
