//! Request paths in one canonical form, so that a route cannot be reached (or
//! dodged) by spelling its path differently: `/public/../admin`,
//! `/public/%2e%2e/admin`, `//admin` and `/./admin` are all `/admin`.
//!
//! Routes are matched on the normalized path and the upstream should be sent the
//! same one; otherwise the upstream could resolve `..` itself and serve a path the
//! gateway never authorized.

use std::borrow::Cow;

/// Why a path is refused (the proxy answers 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    /// The path is not absolute (`*`, or a relative reference).
    #[error("the path must start with '/'")]
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    #[error("the path has a '%' that is not followed by two hex digits")]
    BadPercentEncoding,
    /// `%00`: a NUL byte truncates paths in C-based upstreams.
    #[error("the path contains an encoded NUL (%00)")]
    EncodedNul,
    /// A raw control character (below 0x20, or DEL).
    #[error("the path contains a control character")]
    ControlCharacter,
}

/// Normalizes an absolute request path (without its query string):
///
/// - `%XX` of an unreserved character (`A-Z a-z 0-9 - . _ ~`) is decoded; any other
///   `%XX` stays encoded with uppercase hex digits, so `%2f` becomes `%2F` and never
///   a segment separator;
/// - empty segments are dropped (`//a` is `/a`);
/// - `.` and `..` segments are resolved as RFC 3986 5.2.4 does, including those
///   produced by decoding (`%2e%2e`); `..` never climbs above the root;
/// - a trailing `/` is kept (`/a/`, and `/a/b/..` is `/a/`).
///
/// The result starts with `/` and never contains `//`, `/./` or `/../`. Normalizing
/// twice gives the same result. Paths already in this form are borrowed, not copied.
///
/// # Errors
/// [`NormalizeError`] for a relative path, a malformed `%`, `%00` or a raw control
/// character.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, NormalizeError> {
    if !path.starts_with('/') {
        return Err(NormalizeError::NotAbsolute);
    }
    if is_normalized(path) {
        return Ok(Cow::Borrowed(path));
    }
    let mut out = String::with_capacity(path.len());
    let mut trailing_slash = false;
    for segment in path[1..].split('/') {
        let start = out.len();
        out.push('/');
        decode_segment(segment, &mut out)?;
        trailing_slash = true;
        match &out[start + 1..] {
            "" | "." => out.truncate(start),
            ".." => {
                out.truncate(start);
                let parent = out.rfind('/').unwrap_or(0);
                out.truncate(parent);
            }
            _ => trailing_slash = false,
        }
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// The fast path: true when `path` (starting with `/`) has no `%`, no control
/// character, no empty segment but a trailing one, and no `.` or `..` segment.
fn is_normalized(path: &str) -> bool {
    if path.bytes().any(|b| b == b'%' || b.is_ascii_control()) {
        return false;
    }
    let mut segments = path[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if segment == "." || segment == ".." || (segment.is_empty() && !last) {
            return false;
        }
    }
    true
}

/// Appends `segment` to `out`, decoding `%XX` of unreserved characters and
/// uppercasing the rest.
fn decode_segment(segment: &str, out: &mut String) -> Result<(), NormalizeError> {
    let bytes = segment.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                out.push_str(&segment[run..i]);
                let (Some(hi), Some(lo)) =
                    (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
                else {
                    return Err(NormalizeError::BadPercentEncoding);
                };
                let value = hi << 4 | lo;
                if value == 0 {
                    return Err(NormalizeError::EncodedNul);
                }
                if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
                    out.push(char::from(value));
                } else {
                    const HEX: &[u8; 16] = b"0123456789ABCDEF";
                    out.push('%');
                    out.push(char::from(HEX[usize::from(hi)]));
                    out.push(char::from(HEX[usize::from(lo)]));
                }
                i += 3;
                run = i;
            }
            b if b.is_ascii_control() => return Err(NormalizeError::ControlCharacter),
            _ => i += 1,
        }
    }
    out.push_str(&segment[run..]);
    Ok(())
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn norm(path: &str) -> String {
        normalize(path).unwrap().into_owned()
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
            assert_eq!(norm(path), "/admin", "{path}");
        }
    }

    #[test]
    fn rfc_3986_examples_and_trailing_slashes() {
        assert_eq!(norm("/a/b/c/./../../g"), "/a/g");
        assert_eq!(norm("/mid/content=5/../6"), "/mid/6");
        assert_eq!(norm("/"), "/");
        assert_eq!(norm("/a/"), "/a/");
        assert_eq!(norm("/a/."), "/a/");
        assert_eq!(norm("/a/b/.."), "/a/");
        assert_eq!(norm("/a/.."), "/");
        assert_eq!(norm("/.."), "/");
        assert_eq!(norm("/a//"), "/a/");
        assert_eq!(norm("/a/.../b"), "/a/.../b");
        assert_eq!(norm("/a/..b/c"), "/a/..b/c");
    }

    #[test]
    fn reserved_characters_stay_encoded_in_uppercase() {
        assert_eq!(norm("/files/a%2fb"), "/files/a%2Fb");
        assert_eq!(norm("/files/a%2Fb/../c"), "/files/c");
        assert_eq!(norm("/a%20b%7e%5c"), "/a%20b~%5C");
        assert_eq!(norm("/%c3%a9t%C3%A9"), "/%C3%A9t%C3%A9");
    }

    #[test]
    fn already_normal_paths_are_borrowed() {
        for path in ["/", "/a", "/a/b/", "/a.b/c~d", "/é"] {
            assert!(matches!(normalize(path), Ok(Cow::Borrowed(p)) if p == path), "{path}");
        }
        assert!(matches!(normalize("/a%41"), Ok(Cow::Owned(_))));
    }

    #[test]
    fn refuses_what_cannot_be_made_safe() {
        assert_eq!(normalize("admin"), Err(NormalizeError::NotAbsolute));
        assert_eq!(normalize("*"), Err(NormalizeError::NotAbsolute));
        assert_eq!(normalize(""), Err(NormalizeError::NotAbsolute));
        assert_eq!(normalize("/a%00b"), Err(NormalizeError::EncodedNul));
        assert_eq!(normalize("/a%2"), Err(NormalizeError::BadPercentEncoding));
        assert_eq!(normalize("/a%zz"), Err(NormalizeError::BadPercentEncoding));
        assert_eq!(normalize("/a\nb"), Err(NormalizeError::ControlCharacter));
        assert_eq!(normalize("/a\0b"), Err(NormalizeError::ControlCharacter));
    }

    /// Paths built from the pieces that matter: separators, dots (raw and encoded),
    /// escapes of both kinds, and plain text.
    fn tricky_path() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("/".to_owned()),
            Just(".".to_owned()),
            Just("..".to_owned()),
            Just("%2e".to_owned()),
            Just("%2E".to_owned()),
            Just("%2f".to_owned()),
            Just("%41".to_owned()),
            Just("%7e".to_owned()),
            Just("%c3%a9".to_owned()),
            "[a-z]{1,3}",
            "\\PC{0,2}",
        ];
        prop::collection::vec(piece, 0..16).prop_map(|pieces| format!("/{}", pieces.concat()))
    }

    proptest! {
        #[test]
        fn normalizing_is_idempotent_and_canonical(path in tricky_path()) {
            if let Ok(once) = normalize(&path) {
                let twice = normalize(&once).unwrap();
                prop_assert_eq!(&once, &twice);
                prop_assert!(once.starts_with('/'));
                for bad in ["//", "/./", "/../"] {
                    prop_assert!(!once.contains(bad), "{:?} -> {:?}", path, once);
                }
                prop_assert!(!once.ends_with("/.") && !once.ends_with("/.."), "{:?} -> {:?}", path, once);
            }
        }

        #[test]
        fn arbitrary_input_never_panics(path in "/\\PC{0,40}") {
            if let Ok(out) = normalize(&path) {
                prop_assert_eq!(normalize(&out).unwrap(), out.clone());
            }
        }
    }
}
