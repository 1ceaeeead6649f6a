//! Header classification: never panics, and no spelling of a protected name is
//! ordinary.
#![no_main]

use edge::headers::{canonical, HeaderRules, Kind, BUILT_IN_PREFIXES, INJECTED};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(name) = http::HeaderName::from_bytes(data) else { return };
    let rules = HeaderRules::default();
    let kind = rules.classify(&name);
    let canon = canonical(name.as_str());
    let protected = BUILT_IN_PREFIXES.iter().any(|p| canon.starts_with(p)) || INJECTED.contains(&canon.as_str());
    if protected {
        assert!(matches!(kind, Kind::Identity(_)), "{name:?} ({canon}) classified {kind:?}");
    }
    if let Kind::Override { exact: true, label } = kind {
        assert_eq!(name.as_str(), label);
    }
});
