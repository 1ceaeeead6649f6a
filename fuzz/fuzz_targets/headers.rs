//! Header classification: never panics, no spelling of a protected name is
//! ordinary, and `X-Api-Key` is ordinary only in its own spelling.
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
    // X-Api-Key is read in that spelling only; any other is kept from the app.
    if canon == "x-api-key" {
        assert_eq!(matches!(kind, Kind::Ordinary), name.as_str() == "x-api-key", "{name:?} classified {kind:?}");
    }
    if let Kind::Override { exact: true, label } = kind {
        assert_eq!(name.as_str(), label);
    }
});
