use super::*;
use crate::path::RequestPath;
use proptest::prelude::*;

fn table(text: &str) -> RouteTable {
    RouteTable::parse(Path::new("test.toml"), text).unwrap()
}

fn route(name: &str, hosts: &[&str], prefix: &str) -> String {
    let hosts = if hosts.is_empty() { String::new() } else { format!("hosts = {hosts:?}\n") };
    format!("[[route]]\nname = {name:?}\n{hosts}path_prefix = {prefix:?}\nupstreams = [\"127.0.0.1:3000\"]\n\n")
}

/// The matched route's name and the wire path after its prefix.
fn matched(table: &RouteTable, host: &str, path: &str) -> Option<(String, String)> {
    let parsed = RequestPath::parse(path).unwrap();
    table.match_request(host, PathLookup::of(&parsed)).map(|m| (m.route.name().to_string(), m.rest.to_owned()))
}

/// The path sent upstream for `path`.
fn upstream(table: &RouteTable, path: &str) -> Option<String> {
    let parsed = RequestPath::parse(path).unwrap();
    table.match_request("h", PathLookup::of(&parsed)).map(|m| m.upstream_path().to_owned())
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
    assert!(matched(&only_api, "app.example.com", "/about").is_none());
    assert!(matched(&only_api, "other.example.com", "/api").is_none());
    assert!(matched(&RouteTable::default(), "h", "/").is_none());
}

#[test]
fn upstream_path_strips_the_prefix_only_when_asked() {
    let t = table(&format!(
        "{}\nstrip_prefix = true\n\n{}",
        route("strip", &[], "/svc").trim_end(),
        route("keep", &[], "/keep")
    ));
    assert_eq!(upstream(&t, "/svc/a/b").as_deref(), Some("/a/b"));
    assert_eq!(upstream(&t, "/keep/a").as_deref(), Some("/keep/a"));
    // Matched case-insensitively, forwarded as sent (normalized), stripped by
    // segments even when the prefix is spelled differently on the wire.
    assert_eq!(upstream(&t, "/SVC/A/b").as_deref(), Some("/A/b"));
    assert_eq!(upstream(&t, "/%73vc/x%20y").as_deref(), Some("/x%20y"));
    assert_eq!(upstream(&t, "/Keep/a").as_deref(), Some("/Keep/a"));
    assert_eq!(t.get("strip").map(|r| r.strip_prefix()), Some(true));
    assert_eq!(t.len(), 2);
}

#[test]
fn prefixes_match_without_case_unless_the_route_is_case_sensitive() {
    let t = table(&format!(
        "{}{}\ncase_sensitive = true\n\n",
        route("admin", &[], "/admin"),
        route("exact", &[], "/Exact").trim_end()
    ));
    let name = |path| matched(&t, "h", path).map(|(n, _)| n);
    for path in ["/admin", "/ADMIN", "/Admin/x", "/%41dmin"] {
        assert_eq!(name(path).as_deref(), Some("admin"), "{path}");
    }
    assert_eq!(name("/Exact/x").as_deref(), Some("exact"));
    assert_eq!(name("/exact/x"), None);
    assert_eq!(name("/EXACT"), None);
}

type HostFilter<'a> = &'a dyn Fn(&Option<String>) -> bool;

/// A reference matcher: every route, filtered by the same tiers, compared by
/// prefix length on lowercase paths. Slow and obviously right.
fn model<'a>(routes: &'a [(Option<String>, String)], host: &str, path: &str) -> Option<&'a str> {
    let path = path.to_lowercase();
    let segment_prefix = |prefix: &str| {
        let prefix = prefix.to_lowercase();
        prefix == "/" || path == prefix || path.strip_prefix(&prefix).is_some_and(|r| r.starts_with('/'))
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
    prop::collection::vec(prop_oneof!["a", "b", "api", "ab", "Adm", "a%20b"], 0..4)
        .prop_map(|s| format!("/{}", s.join("/")))
}

fn path() -> impl Strategy<Value = String> {
    (prop::collection::vec(prop_oneof!["a", "b", "API", "ab", "abc", "", "ADM", "a b"], 0..5), any::<bool>())
        .prop_map(|(s, slash)| format!("/{}{}", s.join("/"), if slash { "/" } else { "" }))
}

fn host() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("x.io".to_owned())),
        Just(Some("*.x.io".to_owned())),
        Just(Some("a.x.io".to_owned()))
    ]
}

/// Builds a table with one route per (host, prefix) pair.
fn table_of(routes: &[(Option<String>, String)]) -> RouteTable {
    let text: String = routes
        .iter()
        .enumerate()
        .map(|(i, (h, p))| route(&format!("r{i}"), &h.iter().map(String::as_str).collect::<Vec<_>>(), p))
        .collect();
    table(&text)
}

/// How upstream servers may read the path they are sent, beyond what the
/// gateway did: decode once (nginx, most frameworks), then `\` as `/` (IIS,
/// some Java and Python stacks), `;` parameters stripped (Tomcat), dot segments
/// resolved and slashes merged, and lowercased (case-insensitive routers).
fn upstream_readings(wire: &str) -> Vec<String> {
    let once = String::from_utf8(percent_encoding::percent_decode_str(wire).collect()).unwrap();
    let backslash = once.replace('\\', "/");
    let params: String =
        backslash.split('/').map(|seg| seg.split(';').next().unwrap_or("")).collect::<Vec<_>>().join("/");
    let mut resolved: Vec<&str> = Vec::new();
    for seg in params.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                resolved.pop();
            }
            s => resolved.push(s),
        }
    }
    let resolved = format!("/{}", resolved.join("/"));
    vec![once.clone(), backslash, params, resolved.clone(), resolved.to_lowercase()]
}

/// Raw paths an attacker would try: every trick the path module knows of.
fn attack_path() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/"),
        Just(".."),
        Just("."),
        Just("%2e%2e"),
        Just("%2f"),
        Just("%5c"),
        Just("\\"),
        Just(";x"),
        Just("%3b"),
        Just("%252f"),
        Just("%25"),
        Just("%41"),
        Just("%61"),
        Just("%20"),
        Just("API"),
        Just("Adm"),
        Just("a"),
        Just("b"),
        Just("ab"),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|p| format!("/{}", p.concat()))
}

proptest! {
    // Attack paths need the right pieces in the right order: more cases than the
    // default 256 (each is a few microseconds).
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn matches_like_the_reference_model(
        spec in prop::collection::btree_map(prefix(), host(), 1..8),
        req_host in prop_oneof!["x.io", "a.x.io", "B.X.IO:80", "b.a.x.io", "other"],
        req_path in path(),
    ) {
        let routes: Vec<(Option<String>, String)> = spec.into_iter().map(|(p, h)| (h, p)).collect();
        let t = table_of(&routes);
        let encoded = req_path.replace(' ', "%20");
        let Ok(parsed) = RequestPath::parse(&encoded) else { return Ok(()) };
        let got = t.match_request(&req_host, PathLookup::of(&parsed));
        let model_routes: Vec<(Option<String>, String)> =
            routes.iter().map(|(h, p)| (h.clone(), p.replace("%20", " "))).collect();
        let expected = model(&model_routes, host_name(&req_host), parsed.view());
        prop_assert_eq!(got.as_ref().map(|m| m.route.path_prefix().as_str().replace("%20", " ")), expected.map(str::to_owned));
        if let Some(m) = got {
            prop_assert!(m.rest.starts_with('/'));
            let n = m.route.path_prefix().segments();
            prop_assert_eq!(m.rest, crate::path::after_segments(m.path, n));
        }
    }

    /// The property: for every path the gateway accepts, each reading an
    /// upstream could apply to what it is sent selects the same route.
    #[test]
    fn every_upstream_reading_selects_the_route_the_gateway_chose(
        spec in prop::collection::btree_map(prefix(), Just(None), 1..8),
        req_path in attack_path(),
    ) {
        let routes: Vec<(Option<String>, String)> = spec.into_iter().map(|(p, h)| (h, p)).collect();
        let t = table_of(&routes);
        let Ok(parsed) = RequestPath::parse(&req_path) else { return Ok(()) };
        if parsed.has_encoded_slash() {
            return Ok(()); // refused by the proxy on every route that does not keep them
        }
        let chosen = t.match_request("h", PathLookup::of(&parsed)).map(|m| m.route.name().to_string());
        let model_routes: Vec<(Option<String>, String)> =
            routes.iter().map(|(h, p)| (h.clone(), p.replace("%20", " "))).collect();
        for reading in upstream_readings(parsed.wire()) {
            let by_model = model(&model_routes, "h", &reading)
                .and_then(|p| routes.iter().position(|(_, q)| q.replace("%20", " ") == p))
                .map(|i| format!("r{i}"));
            prop_assert_eq!(&by_model, &chosen, "{:?} sent as {:?}, read as {:?}", req_path, parsed.wire(), reading);
        }
    }
}
