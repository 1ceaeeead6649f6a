use super::*;
use proptest::prelude::*;

fn wire(path: &str) -> String {
    RequestPath::parse(path).unwrap().wire().to_owned()
}

fn view(path: &str) -> String {
    RequestPath::parse(path).unwrap().view().to_owned()
}

fn ambiguity(path: &str) -> Option<Ambiguity> {
    match RequestPath::parse(path) {
        Err(PathError::Ambiguous(a)) => Some(a),
        _ => None,
    }
}

#[test]
fn traversal_spellings_all_reach_the_same_path() {
    for path in [
        "/admin",
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/%2E%2E/admin",
        "/public/.%2e/admin",
        "//admin",
        "/./admin",
        "/%2e/admin",
        "/../../admin",
        "/a/b/../../admin",
        "/a//..//admin",
        "/%61dmin",
    ] {
        assert_eq!(wire(path), "/admin", "{path}");
        assert_eq!(view(path), "/admin", "{path}");
    }
}

#[test]
fn rfc_3986_examples_and_trailing_slashes() {
    assert_eq!(wire("/a/b/c/./../../g"), "/a/g");
    assert_eq!(wire("/mid/content=5/../6"), "/mid/6");
    assert_eq!(wire("/"), "/");
    assert_eq!(wire("/a/"), "/a/");
    assert_eq!(wire("/a/."), "/a/");
    assert_eq!(wire("/a/b/.."), "/a/");
    assert_eq!(wire("/a/.."), "/");
    assert_eq!(wire("/.."), "/");
    assert_eq!(wire("/a//"), "/a/");
    assert_eq!(wire("/a/.../b"), "/a/.../b");
    assert_eq!(wire("/a/..b/c"), "/a/..b/c");
}

#[test]
fn other_escapes_stay_encoded_on_the_wire_and_are_decoded_in_the_view() {
    let p = RequestPath::parse("/a%20b%7e%40%c3%a9").unwrap();
    assert_eq!(p.wire(), "/a%20b~%40%C3%A9");
    assert_eq!(p.view(), "/a b~@é");
    // Characters RFC 3986 does not allow raw are encoded for the upstream.
    let p = RequestPath::parse("/a\"b{c}|").unwrap();
    assert_eq!(p.wire(), "/a%22b%7Bc%7D%7C");
    assert_eq!(p.view(), "/a\"b{c}|");
    // A lone %25 is a literal percent sign: one reading only.
    assert_eq!(view("/100%25"), "/100%");
    assert_eq!(view("/100%25-off"), "/100%-off");
}

#[test]
fn already_canonical_paths_are_borrowed() {
    for path in ["/", "/a", "/a/b/", "/a.b/c~d", "/a@b:c=d,e+f!$&'()*"] {
        let p = RequestPath::parse(path).unwrap();
        assert!(matches!(p.wire, Cow::Borrowed(w) if w == path), "{path}");
        assert!(matches!(p.view, Cow::Borrowed(v) if v == path), "{path}");
    }
    assert!(matches!(RequestPath::parse("/a%41").unwrap().wire, Cow::Owned(_)));
}

#[test]
fn malformed_paths_are_invalid() {
    assert_eq!(RequestPath::parse("admin"), Err(PathError::NotAbsolute));
    assert_eq!(RequestPath::parse("*"), Err(PathError::NotAbsolute));
    assert_eq!(RequestPath::parse(""), Err(PathError::NotAbsolute));
    assert_eq!(RequestPath::parse("/a%00b"), Err(PathError::ControlCharacter));
    assert_eq!(RequestPath::parse("/a%0Ab"), Err(PathError::ControlCharacter));
    assert_eq!(RequestPath::parse("/a%7f"), Err(PathError::ControlCharacter));
    assert_eq!(RequestPath::parse("/a%2"), Err(PathError::BadPercentEncoding));
    assert_eq!(RequestPath::parse("/a%zz"), Err(PathError::BadPercentEncoding));
    assert_eq!(RequestPath::parse("/a\nb"), Err(PathError::ControlCharacter));
    assert_eq!(RequestPath::parse("/a\0b"), Err(PathError::ControlCharacter));
    assert_eq!(RequestPath::parse("/café"), Err(PathError::NonAscii));
    assert_eq!(RequestPath::parse("/\u{FFFD}"), Err(PathError::NonAscii));
}

#[test]
fn every_spelling_a_decoder_could_read_differently_is_ambiguous() {
    use Ambiguity::*;
    for (path, why) in [
        ("/public\\..\\admin", Backslash),
        ("/admin\\", Backslash),
        ("/public/%5C../admin", EncodedBackslash),
        ("/public/%5c..%5cadmin", EncodedBackslash),
        ("/admin;x=1", PathParameter),
        ("/public;/../admin", PathParameter),
        ("/admin%3bx", PathParameter),
        ("/admin%3B", PathParameter),
        ("/public/%252e%252e/admin", DoubleEncoding),
        ("/public%252Fadmin", DoubleEncoding),
        ("/a%255c", DoubleEncoding),
        ("/a%2541", DoubleEncoding),
        ("/a%252%46", DoubleEncoding), // %46 decodes to F: %252F on the wire
        ("/a%25%41%41", DoubleEncoding),
        ("/%ff", InvalidUtf8),
        ("/%c3", InvalidUtf8),
        ("/%c0%af", InvalidUtf8),
        ("/%E2%84%AAiosk", UnicodeFolding),      // Kelvin sign: lowercases to k
        ("/%C5%BFecret", UnicodeFolding),        // long s: uppercases to S
        ("/adm%C4%B0n", UnicodeFolding),         // dotted capital I: lowercases to i + dot
        ("/%EF%BC%8Fadmin", UnicodeFolding),     // fullwidth solidus: NFKC '/'
        ("/%EF%BC%A1dmin", UnicodeFolding),      // fullwidth A
        ("/%EF%BC%8E%EF%BC%8E", UnicodeFolding), // fullwidth dots
    ] {
        assert_eq!(ambiguity(path), Some(why), "{path}");
    }
    // Letters that only fold to other non-ASCII letters are fine; so is ß, whose
    // uppercase is two letters.
    assert_eq!(view("/%C3%A9t%C3%A9/stra%C3%9Fe"), "/été/straße");
}

#[test]
fn encoded_slashes_are_flagged_not_decoded() {
    let p = RequestPath::parse("/files/a%2fb").unwrap();
    assert!(p.has_encoded_slash());
    assert_eq!(p.wire(), "/files/a%2Fb");
    assert_eq!(p.view(), "/files/a%2Fb");
    assert_eq!(p.slash_view().unwrap(), "/files/a/b");
    // A dot segment behind an encoded slash is not normalized away: it stays in one
    // segment here, so reading the slashes as separators exposes it.
    let p = RequestPath::parse("/files/a%2F..%2F..%2Fadmin").unwrap();
    assert_eq!(p.view(), "/files/a%2F..%2F..%2Fadmin");
    assert_eq!(p.slash_view(), Err(PathError::Ambiguous(Ambiguity::SlashReading)));
    let p = RequestPath::parse("/files/%2Fetc").unwrap();
    assert_eq!(p.slash_view(), Err(PathError::Ambiguous(Ambiguity::SlashReading)));
    assert!(!RequestPath::parse("/files/a").unwrap().has_encoded_slash());
}

#[test]
fn segments_are_stripped_the_same_in_both_forms() {
    assert_eq!(after_segments("/api/v1/x", 1), "/v1/x");
    assert_eq!(after_segments("/api/v1/x", 2), "/x");
    assert_eq!(after_segments("/api", 1), "/");
    assert_eq!(after_segments("/api/", 1), "/");
    assert_eq!(after_segments("/a%20b/c", 1), "/c");
    assert_eq!(after_segments("/x", 0), "/x");
    assert_eq!(after_segments("/x", 5), "/");
}

/// Decodes every escape once, as nginx and most frameworks do.
fn decode_once(wire: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(wire).collect()
}

/// Paths built from the pieces that matter: separators, dots (raw and encoded),
/// backslashes, semicolons, escapes of every kind, case, and plain text.
fn tricky_path() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/"),
        Just("."),
        Just(".."),
        Just("%2e"),
        Just("%2E"),
        Just("%2f"),
        Just("%2F"),
        Just("%5c"),
        Just("\\"),
        Just(";"),
        Just("%3b"),
        Just("%25"),
        Just("%252f"),
        Just("%41"),
        Just("%7e"),
        Just("%20"),
        Just("%40"),
        Just("%c3%a9"),
        Just("%E2%84%AA"),
        Just("%ff"),
        Just("Admin"),
        Just("a"),
        Just("b"),
    ]
    .prop_map(str::to_owned);
    let text = "[a-zA-Z0-9._~-]{1,3}";
    prop::collection::vec(prop_oneof![piece, text.prop_map(|s: String| s)], 0..16)
        .prop_map(|pieces| format!("/{}", pieces.concat()))
}

proptest! {
    #[test]
    fn parsing_is_idempotent_and_canonical(path in tricky_path()) {
        if let Ok(once) = RequestPath::parse(&path) {
            let twice = RequestPath::parse(once.wire()).unwrap();
            prop_assert_eq!(twice.wire(), once.wire());
            prop_assert_eq!(twice.view(), once.view());
            let wire = once.wire();
            prop_assert!(wire.starts_with('/'));
            for bad in ["//", "/./", "/../"] {
                prop_assert!(!wire.contains(bad), "{:?} -> {:?}", path, wire);
                prop_assert!(!once.view().contains(bad), "{:?} -> {:?}", path, once.view());
            }
            prop_assert!(!wire.ends_with("/.") && !wire.ends_with("/.."), "{:?} -> {:?}", path, wire);
        }
    }

    /// What an upstream could do to the path it receives, one more time: decode it
    /// once, read `\` as `/`, strip `;` parameters, lowercase it. None of these may
    /// give a path other than the view (lowercase aside, which the matcher folds).
    #[test]
    fn no_upstream_reading_differs_from_the_view(path in tricky_path()) {
        if let Ok(p) = RequestPath::parse(&path) {
            let decoded = decode_once(p.wire());
            let expected = p.view().replace("%2F", "/");
            prop_assert_eq!(String::from_utf8(decoded.clone()).ok(), Some(expected.clone()), "{:?}", path);
            prop_assert!(!decoded.contains(&b'\\') && !decoded.contains(&b';'), "{:?}", path);
            // Decoding a second time changes nothing: no escape survives the first.
            let again: Vec<u8> = percent_encoding::percent_decode(&decoded).collect();
            prop_assert_eq!(again, decoded, "{:?}", path);
            prop_assert!(!p.view().chars().any(folds_into_ascii), "{:?}", path);
        }
    }

    #[test]
    fn arbitrary_input_never_panics(path in "/\\PC{0,40}") {
        if let Ok(p) = RequestPath::parse(&path) {
            let again = RequestPath::parse(p.wire()).unwrap();
            prop_assert_eq!(again.wire(), p.wire());
        }
    }
}
