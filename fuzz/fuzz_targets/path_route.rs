//! Path parsing and route matching: for every path the gateway accepts, parsing
//! is idempotent and canonical, decoding what is forwarded gives the view, and
//! every way an upstream server could read it selects the route the gateway chose.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use edge::path::RequestPath;
use edge::routes::{PathLookup, RouteTable};
use libfuzzer_sys::fuzz_target;

const PREFIXES: &[&str] = &["/", "/admin", "/admin/users", "/api", "/api/v1", "/a%20b", "/caf%C3%A9", "/t", "/Files"];

fn table() -> &'static RouteTable {
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let text: String = PREFIXES
            .iter()
            .enumerate()
            .map(|(i, p)| format!("[[route]]\nname = \"r{i}\"\npath_prefix = \"{p}\"\nupstreams = [\"127.0.0.1:1\"]\n\n"))
            .collect();
        RouteTable::parse(Path::new("fuzz.toml"), &text).expect("fuzz routes")
    })
}

fn decode(s: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(s).collect()
}

/// What servers do after decoding: dot segments resolved, slashes merged.
fn resolve(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

/// The route a server would pick for its reading: longest segment prefix,
/// compared in lowercase on the decoded prefix.
fn model(reading: &str) -> Option<usize> {
    let reading = reading.to_lowercase();
    PREFIXES
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            let p = String::from_utf8(decode(p)).expect("utf-8 prefix").to_lowercase();
            p == "/" || reading == p || reading.strip_prefix(&p).is_some_and(|r| r.starts_with('/'))
        })
        .max_by_key(|(_, p)| p.split('/').filter(|s| !s.is_empty()).count())
        .map(|(i, _)| i)
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let Ok(path) = RequestPath::parse(raw) else { return };
    let again = RequestPath::parse(path.wire()).expect("the wire form parses again");
    assert_eq!(again.wire(), path.wire(), "{raw:?}");
    assert_eq!(again.view(), path.view(), "{raw:?}");
    for bad in ["//", "/./", "/../"] {
        assert!(!path.wire().contains(bad), "{raw:?} -> {:?}", path.wire());
    }
    let once = decode(path.wire());
    assert_eq!(once, path.view().replace("%2F", "/").into_bytes(), "{raw:?}");
    assert_eq!(decode(std::str::from_utf8(&once).expect("utf-8 view")), once, "decoding twice changes {raw:?}");
    if path.has_encoded_slash() {
        return; // refused unless the route keeps them; the proxy checks that reading
    }
    let chosen = table()
        .match_request("h", PathLookup::of(&path))
        .map(|m| m.route.name()[1..].parse::<usize>().expect("route index"));
    let once = String::from_utf8(once).expect("utf-8");
    let tomcat = once.split('/').map(|s| s.split(';').next().unwrap_or("")).collect::<Vec<_>>().join("/");
    for reading in [resolve(&once), resolve(&once.replace('\\', "/")), resolve(&tomcat)] {
        assert_eq!(model(&reading), chosen, "{raw:?} sent as {:?}, read as {reading:?}", path.wire());
    }
});
