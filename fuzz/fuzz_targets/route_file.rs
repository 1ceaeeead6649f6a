//! Route files: parsing never panics, errors point inside the file, and every
//! accepted prefix is in the canonical form requests are matched in.
#![no_main]

use std::path::Path;

use edge::path::RequestPath;
use edge::routes::{LoadError, RouteTable};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match RouteTable::parse(Path::new("fuzz.toml"), text) {
        Ok(table) => {
            for route in table.routes() {
                let prefix = route.path_prefix().as_str();
                let parsed = RequestPath::parse(prefix).expect("an accepted prefix parses");
                assert!(!parsed.has_encoded_slash());
                assert!(parsed.wire() == prefix || parsed.wire() == format!("{prefix}/"), "{prefix:?}");
                assert!(!route.upstreams().is_empty());
            }
        }
        Err(LoadError::Invalid { line, column, .. }) => {
            assert!(line >= 1 && column >= 1);
            assert!(line <= text.lines().count().max(1) + 1, "line {line} past the end");
        }
        Err(_) => {}
    }
});
