//! The route table: an immutable snapshot of every route, indexed by host, that
//! answers "which route serves this Host and path" without allocating.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::load::{self, LoadError, Seen};
use super::route::Route;
use super::tenant::host_name;

/// Longest DNS name; longer Hosts can only match routes without `hosts`.
const MAX_HOST: usize = 253;

/// All routes from the route files, ready for matching. Build it with
/// [`RouteTable::load`], share it as `Arc<ArcSwap<RouteTable>>`, and replace it
/// whole on reload (see [`super::watch()`]).
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
    /// The (normalized) path that was matched.
    pub path: &'p str,
    /// What follows the route's prefix, starting with `/` (`/` when nothing does).
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
        // Stable sort: equal lengths keep file order, which is only a tie between
        // prefixes that cannot both match one path.
        let by_length =
            |ids: &mut Vec<usize>| ids.sort_by_key(|&i| std::cmp::Reverse(routes[i].path_prefix().as_str().len()));
        table.exact.values_mut().for_each(by_length);
        table.wildcard.values_mut().for_each(by_length);
        by_length(&mut table.any);
        table.routes = routes;
        table
    }

    /// Finds the route for a request.
    ///
    /// `host` is the Host header (or the URI authority); its port and a trailing dot
    /// are ignored, and so is its case. `path` must be the output of
    /// [`super::normalize()`], without the query string.
    ///
    /// Hosts are tried from the most specific: routes listing the exact host, then
    /// routes with a matching `*.` wildcard, then routes without `hosts`. Within the
    /// first of those groups that has a route for the path, the longest
    /// segment-aware `path_prefix` wins. Does not allocate; at worst it looks at
    /// every route once.
    pub fn match_request<'p>(&self, host: &str, path: &'p str) -> Option<Match<'p>> {
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

    fn first_match<'p>(&self, ids: &[usize], path: &'p str) -> Option<Match<'p>> {
        ids.iter().find_map(|&i| {
            let route = &self.routes[i];
            route.path_prefix().strip(path).map(|rest| Match { route: Arc::clone(route), path, rest })
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn table(text: &str) -> RouteTable {
        RouteTable::parse(Path::new("test.toml"), text).unwrap()
    }

    fn route(name: &str, hosts: &[&str], prefix: &str) -> String {
        let hosts = if hosts.is_empty() { String::new() } else { format!("hosts = {hosts:?}\n") };
        format!("[[route]]\nname = {name:?}\n{hosts}path_prefix = {prefix:?}\nupstreams = [\"127.0.0.1:3000\"]\n\n")
    }

    fn matched(table: &RouteTable, host: &str, path: &str) -> Option<(String, String)> {
        table.match_request(host, path).map(|m| (m.route.name().to_string(), m.rest.to_owned()))
    }

    #[test]
    fn longest_segment_prefix_wins() {
        let t = table(&[route("root", &[], "/"), route("api", &[], "/api"), route("v1", &[], "/api/v1")].concat());
        let name = |path| matched(&t, "any.host", path).map(|(n, _)| n);
        assert_eq!(name("/").as_deref(), Some("root"));
        assert_eq!(name("/apix").as_deref(), Some("root"));
        assert_eq!(name("/api").as_deref(), Some("api"));
        assert_eq!(name("/api/v2").as_deref(), Some("api"));
        assert_eq!(name("/api/v1").as_deref(), Some("v1"));
        assert_eq!(name("/api/v1/users").as_deref(), Some("v1"));
        assert_eq!(matched(&t, "h", "/api/v1/users").map(|(_, r)| r).as_deref(), Some("/users"));
        assert_eq!(matched(&t, "h", "/api/v1").map(|(_, r)| r).as_deref(), Some("/"));
    }

    #[test]
    fn exact_hosts_beat_wildcards_beat_any_host() {
        let t = table(
            &[
                route("exact", &["app.example.com"], "/"),
                route("wild", &["*.example.com"], "/"),
                route("wild-api", &["*.example.com"], "/api"),
                route("fallback", &[], "/"),
                route("health", &[], "/healthz"),
            ]
            .concat(),
        );
        let name = |host, path| matched(&t, host, path).map(|(n, _)| n);
        assert_eq!(name("app.example.com", "/api").as_deref(), Some("exact"));
        assert_eq!(name("APP.Example.com:8443", "/").as_deref(), Some("exact"));
        assert_eq!(name("app.example.com.", "/").as_deref(), Some("exact"));
        assert_eq!(name("acme.example.com", "/").as_deref(), Some("wild"));
        assert_eq!(name("acme.example.com", "/api/x").as_deref(), Some("wild-api"));
        assert_eq!(name("a.b.example.com", "/").as_deref(), Some("fallback"));
        assert_eq!(name("example.com", "/").as_deref(), Some("fallback"));
        assert_eq!(name(".example.com", "/").as_deref(), Some("fallback"));
        assert_eq!(name(&"x".repeat(300), "/healthz").as_deref(), Some("health"));
    }

    #[test]
    fn a_more_specific_host_group_falls_through_when_it_has_no_route_for_the_path() {
        let t = table(&[route("app-api", &["app.example.com"], "/api"), route("site", &[], "/")].concat());
        assert_eq!(matched(&t, "app.example.com", "/api/x").map(|(n, _)| n).as_deref(), Some("app-api"));
        assert_eq!(matched(&t, "app.example.com", "/about").map(|(n, _)| n).as_deref(), Some("site"));
        let only_api = table(&route("app-api", &["app.example.com"], "/api"));
        assert!(only_api.match_request("app.example.com", "/about").is_none());
        assert!(only_api.match_request("other.example.com", "/api").is_none());
        assert!(RouteTable::default().match_request("h", "/").is_none());
    }

    #[test]
    fn upstream_path_strips_the_prefix_only_when_asked() {
        let t = table(&format!(
            "{}\nstrip_prefix = true\n\n{}",
            route("strip", &[], "/svc").trim_end(),
            route("keep", &[], "/keep")
        ));
        let m = t.match_request("h", "/svc/a/b").unwrap();
        assert_eq!(m.upstream_path(), "/a/b");
        let m = t.match_request("h", "/keep/a").unwrap();
        assert_eq!(m.upstream_path(), "/keep/a");
        assert_eq!(t.get("strip").map(|r| r.strip_prefix()), Some(true));
        assert_eq!(t.len(), 2);
    }

    type HostFilter<'a> = &'a dyn Fn(&Option<String>) -> bool;

    /// A reference matcher: every route, filtered by the same tiers, compared by
    /// prefix length. Slow and obviously right.
    fn model<'a>(routes: &'a [(Option<String>, String)], host: &str, path: &str) -> Option<&'a str> {
        let segment_prefix = |prefix: &str| {
            prefix == "/" || path == prefix || path.strip_prefix(prefix).is_some_and(|r| r.starts_with('/'))
        };
        let host = host.to_ascii_lowercase();
        let tiers: [HostFilter<'_>; 3] = [
            &|h| h.as_deref() == Some(host.as_str()),
            &|h| {
                h.as_deref().and_then(|h| h.strip_prefix("*.")).is_some_and(|suffix| {
                    host.split_once('.').is_some_and(|(label, parent)| !label.is_empty() && parent == suffix)
                })
            },
            &|h| h.is_none(),
        ];
        tiers.iter().find_map(|in_tier| {
            routes
                .iter()
                .filter(|(h, p)| in_tier(h) && segment_prefix(p))
                .max_by_key(|(_, p)| p.len())
                .map(|(_, p)| p.as_str())
        })
    }

    fn prefix() -> impl Strategy<Value = String> {
        prop::collection::vec(prop_oneof!["a", "b", "api", "ab"], 0..4).prop_map(|s| format!("/{}", s.join("/")))
    }

    fn path() -> impl Strategy<Value = String> {
        (prop::collection::vec(prop_oneof!["a", "b", "api", "ab", "abc", ""], 0..5), any::<bool>())
            .prop_map(|(s, slash)| format!("/{}{}", s.join("/"), if slash { "/" } else { "" }))
            .prop_map(|p| super::super::normalize(&p).map(|p| p.into_owned()).unwrap_or(p))
    }

    fn host() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            Just(None),
            Just(Some("x.io".to_owned())),
            Just(Some("*.x.io".to_owned())),
            Just(Some("a.x.io".to_owned()))
        ]
    }

    proptest! {
        #[test]
        fn matches_like_the_reference_model(
            spec in prop::collection::btree_map(prefix(), host(), 1..8),
            req_host in prop_oneof!["x.io", "a.x.io", "B.X.IO:80", "b.a.x.io", "other"],
            req_path in path(),
        ) {
            let routes: Vec<(Option<String>, String)> = spec.into_iter().map(|(p, h)| (h, p)).collect();
            let text: String = routes
                .iter()
                .enumerate()
                .map(|(i, (h, p))| route(&format!("r{i}"), &h.iter().map(String::as_str).collect::<Vec<_>>(), p))
                .collect();
            let t = table(&text);
            let req_host_name = host_name(&req_host);
            let got = t.match_request(&req_host, &req_path);
            let expected = model(&routes, req_host_name, &req_path);
            prop_assert_eq!(got.as_ref().map(|m| m.route.path_prefix().as_str()), expected);
            if let Some(m) = got {
                let prefix = m.route.path_prefix().as_str();
                let below = format!("{}/", prefix);
                prop_assert!(prefix == "/" || m.path == prefix || m.path.starts_with(&below));
                prop_assert!(m.rest.starts_with('/'));
                if prefix != "/" {
                    let rejoined = format!("{}{}", prefix, m.rest);
                    prop_assert!(m.path == prefix && m.rest == "/" || m.path == rejoined);
                }
            }
        }
    }
}
