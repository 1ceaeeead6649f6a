//! Request paths with exactly one meaning, or none.
//!
//! An app behind the gateway reads the path it receives through its own decoder:
//! nginx and most frameworks percent-decode once and resolve dot segments; Tomcat
//! strips `;` parameters; IIS and some Java and Python stacks treat `\` as `/`;
//! others decode `%2F` into a separator, or decode twice. If the gateway authorized
//! one reading and the app acts on another, a member reaches an owner's route. So a
//! path is parsed into two forms that every such decoder agrees on:
//!
//! - the **wire** form, sent upstream: dot segments resolved, empty segments
//!   dropped, unreserved characters decoded, every other escape in uppercase;
//! - the **view**: the wire form decoded once, which is what an app routes on
//!   (encoded slashes stay visible as `%2F` here, see below). Routes match on it.
//!
//! Whatever would make a second decoder disagree is refused as
//! [`PathError::Ambiguous`]: a raw or encoded `\`, a raw or encoded `;`, a
//! double-encoded escape (`%252F`), bytes that are not UTF-8 once decoded, and
//! characters that case folding or compatibility normalization turns into ASCII
//! (the Kelvin sign `K` lowercases to `k`; a fullwidth `／` is `/` under NFKC).
//! An encoded `/` is ambiguous unless the route says its app keeps it
//! (`encoded_slashes = "keep"`); the proxy decides that once the route is known,
//! with [`RequestPath::has_encoded_slash`] and [`RequestPath::slash_view`].
//!
//! The decoder is written here rather than taken from `percent-encoding`: that
//! crate decodes leniently (a malformed `%zz` passes through), and this module's
//! whole point is to classify every escape.

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;

/// Why a path is refused. The proxy answers 400 with `invalid_path` for the
/// malformed ones and `ambiguous_path` for [`PathError::Ambiguous`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path is not absolute (`*`, or a relative reference).
    #[error("the path must start with '/'")]
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    #[error("the path has a '%' that is not followed by two hex digits")]
    BadPercentEncoding,
    /// A control character, raw or encoded (`%00`, `%0A`...): it truncates paths in
    /// C-based upstreams and forges log lines.
    #[error("the path contains a control character")]
    ControlCharacter,
    /// A raw byte outside ASCII: clients must percent-encode them (RFC 3986), and
    /// upstreams disagree on what raw bytes mean.
    #[error("the path contains a raw non-ASCII byte; percent-encode it")]
    NonAscii,
    /// The path means different things to different upstream decoders.
    #[error("the path is ambiguous: {0}")]
    Ambiguous(Ambiguity),
}

/// What makes a path ambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ambiguity {
    /// A raw `\`, which several servers treat as `/`.
    Backslash,
    /// `%5C`.
    EncodedBackslash,
    /// `%2F`, on a route that does not keep encoded slashes.
    EncodedSlash,
    /// `;` or `%3B`: a path parameter some servers strip before routing.
    PathParameter,
    /// `%25` followed by two hex digits in the wire form: decoded twice, it is
    /// another character.
    DoubleEncoding,
    /// Decoded bytes that are not UTF-8: decoders replace, reject or pass them.
    InvalidUtf8,
    /// A character that case folding or NFKC turns into ASCII.
    UnicodeFolding,
    /// With encoded slashes read as separators, the path has dot or empty segments
    /// (`a%2F..%2Fadmin`), or it selects another route.
    SlashReading,
}

impl Ambiguity {
    /// A sentence for the error message: "the request path ...".
    pub fn as_str(&self) -> &'static str {
        match self {
            Ambiguity::Backslash => "the request path contains a backslash, which some servers read as '/'",
            Ambiguity::EncodedBackslash => "the request path contains an encoded backslash (%5C)",
            Ambiguity::EncodedSlash => "the request path contains an encoded slash (%2F), which this route refuses",
            Ambiguity::PathParameter => "the request path contains ';' (a path parameter some servers strip)",
            Ambiguity::DoubleEncoding => "the request path is percent-encoded twice (%25 followed by hex digits)",
            Ambiguity::InvalidUtf8 => "the request path's percent-encoded bytes are not UTF-8",
            Ambiguity::UnicodeFolding => {
                "the request path contains a character that case folding or Unicode normalization turns into ASCII"
            }
            Ambiguity::SlashReading => {
                "the request path means another path when its encoded slashes are read as separators"
            }
        }
    }
}

impl std::fmt::Display for Ambiguity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request path in its wire form and its view; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPath<'a> {
    wire: Cow<'a, str>,
    view: Cow<'a, str>,
    /// The view lowercased, when it is not ASCII (ASCII views are compared with
    /// `eq_ignore_ascii_case` instead, without a copy).
    folded: Option<String>,
    encoded_slash: bool,
}

/// Bytes a path may carry raw in both forms: unreserved, sub-delims but `;`, `:`,
/// `@`, and the separator `/`.
fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(b, b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',')
        || matches!(b, b'=' | b':' | b'@' | b'/')
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl<'a> RequestPath<'a> {
    /// Parses an absolute request path (without its query string).
    ///
    /// Paths already in canonical form (the common case: no `%`, no dot or empty
    /// segments) are borrowed, not copied.
    ///
    /// # Errors
    /// [`PathError`] saying why the path is malformed or ambiguous. An encoded
    /// slash is not an error here: see [`RequestPath::has_encoded_slash`].
    pub fn parse(raw: &'a str) -> Result<RequestPath<'a>, PathError> {
        if !raw.starts_with('/') {
            return Err(PathError::NotAbsolute);
        }
        if is_canonical(raw) {
            return Ok(RequestPath {
                wire: Cow::Borrowed(raw),
                view: Cow::Borrowed(raw),
                folded: None,
                encoded_slash: false,
            });
        }
        let mut wire = String::with_capacity(raw.len() + 8);
        let mut view: Vec<u8> = Vec::with_capacity(raw.len());
        let mut encoded_slash = false;
        let mut trailing_slash = false;
        for segment in raw[1..].split('/') {
            let (wire_start, view_start) = (wire.len(), view.len());
            wire.push('/');
            view.push(b'/');
            encoded_slash |= decode_segment(segment, &mut wire, &mut view)?;
            trailing_slash = true;
            match &view[view_start + 1..] {
                b"" | b"." => {
                    wire.truncate(wire_start);
                    view.truncate(view_start);
                }
                b".." => {
                    wire.truncate(wire_start);
                    view.truncate(view_start);
                    wire.truncate(wire.rfind('/').unwrap_or(0));
                    let parent = view.iter().rposition(|b| *b == b'/').unwrap_or(0);
                    view.truncate(parent);
                }
                _ => trailing_slash = false,
            }
        }
        if trailing_slash || wire.is_empty() {
            wire.push('/');
            view.push(b'/');
        }
        let view = String::from_utf8(view).map_err(|_| PathError::Ambiguous(Ambiguity::InvalidUtf8))?;
        let folded = fold(&view)?;
        Ok(RequestPath { wire: Cow::Owned(wire), view: Cow::Owned(view), folded, encoded_slash })
    }

    /// The view lowercased, when the view is not ASCII; `None` for ASCII views.
    pub fn folded(&self) -> Option<&str> {
        self.folded.as_deref()
    }

    /// The canonical encoded path to send upstream.
    pub fn wire(&self) -> &str {
        &self.wire
    }

    /// The path as an app sees it after decoding it once; routes match on this.
    /// An encoded slash shows as `%2F` (it is not a separator here).
    pub fn view(&self) -> &str {
        &self.view
    }

    /// Whether the path carries `%2F`. The proxy refuses such a path unless its
    /// route keeps encoded slashes.
    pub fn has_encoded_slash(&self) -> bool {
        self.encoded_slash
    }

    /// The view with its encoded slashes read as separators, for a route that keeps
    /// them: the proxy checks that this reading selects the same route.
    ///
    /// # Errors
    /// [`Ambiguity::SlashReading`] when that reading has dot or empty segments.
    pub fn slash_view(&self) -> Result<Cow<'_, str>, PathError> {
        if !self.encoded_slash {
            return Ok(Cow::Borrowed(&self.view));
        }
        let read = self.view.replace("%2F", "/");
        let segments: Vec<&str> = read[1..].split('/').collect();
        let last = segments.len() - 1;
        let bad = segments.iter().enumerate().any(|(i, s)| *s == "." || *s == ".." || (s.is_empty() && i != last));
        if bad {
            return Err(PathError::Ambiguous(Ambiguity::SlashReading));
        }
        Ok(Cow::Owned(read))
    }
}

/// The lowercased form of a non-ASCII view (`None` for an ASCII one).
///
/// # Errors
/// [`Ambiguity::UnicodeFolding`] for a character that folds into ASCII.
pub fn fold(view: &str) -> Result<Option<String>, PathError> {
    if view.is_ascii() {
        return Ok(None);
    }
    if view.chars().any(folds_into_ascii) {
        return Err(PathError::Ambiguous(Ambiguity::UnicodeFolding));
    }
    Ok(Some(view.to_lowercase()))
}

/// The fast path: only plain bytes, no dot segment, no empty segment but a
/// trailing one.
fn is_canonical(path: &str) -> bool {
    if !path.bytes().all(is_plain) {
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

/// Appends one segment's wire form to `wire` and its decoded form to `view`;
/// returns whether it held an encoded slash.
fn decode_segment(segment: &str, wire: &mut String, view: &mut Vec<u8>) -> Result<bool, PathError> {
    let start = wire.len();
    let bytes = segment.as_bytes();
    let mut encoded_slash = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            match b {
                b'\\' => return Err(PathError::Ambiguous(Ambiguity::Backslash)),
                b';' => return Err(PathError::Ambiguous(Ambiguity::PathParameter)),
                _ if b.is_ascii_control() => return Err(PathError::ControlCharacter),
                _ if !b.is_ascii() => return Err(PathError::NonAscii),
                _ if is_plain(b) => wire.push(char::from(b)),
                // Raw but not allowed raw by RFC 3986 (`"`, `<`, `{`, `|`...): encoded
                // on the wire, so the upstream gets a valid target.
                _ => push_escape(wire, b),
            }
            view.push(b);
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
        else {
            return Err(PathError::BadPercentEncoding);
        };
        let value = hi << 4 | lo;
        match value {
            _ if value.is_ascii_control() => return Err(PathError::ControlCharacter),
            b'\\' => return Err(PathError::Ambiguous(Ambiguity::EncodedBackslash)),
            b';' => return Err(PathError::Ambiguous(Ambiguity::PathParameter)),
            b'/' => {
                encoded_slash = true;
                wire.push_str("%2F");
                view.extend_from_slice(b"%2F");
            }
            _ if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') => {
                wire.push(char::from(value));
                view.push(value);
            }
            _ => {
                push_escape(wire, value);
                view.push(value);
            }
        }
        i += 3;
    }
    // Judged on the output, not the input: `%252%46` is `%252F` once `%46` is
    // decoded to `F`.
    let out = &wire.as_bytes()[start..];
    let twice = out.windows(5).any(|w| w.starts_with(b"%25") && hex(w[3]).is_some() && hex(w[4]).is_some());
    if twice {
        return Err(PathError::Ambiguous(Ambiguity::DoubleEncoding));
    }
    Ok(encoded_slash)
}

fn push_escape(out: &mut String, b: u8) {
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0xF)]));
}

/// Whether an app that case-folds or NFKC-normalizes paths could turn `c` into
/// (or into something containing) an ASCII character: `K` (Kelvin) is `k`, `ſ`
/// uppercases to `S` (Java's `equalsIgnoreCase` compares so), `İ` lowercases to
/// `i̇`, fullwidth `Ａ` and `／` are ASCII under NFKC. An uppercase mapping to
/// several characters (`ß` to `SS`) only happens to whole strings, never in a
/// character-wise comparison, so it does not count: German paths stay usable.
fn folds_into_ascii(c: char) -> bool {
    let mut upper = c.to_uppercase();
    let single_ascii_upper = matches!((upper.next(), upper.next()), (Some(u), None) if u.is_ascii());
    !c.is_ascii()
        && (single_ascii_upper
            || c.to_lowercase().any(|f| f.is_ascii())
            || std::iter::once(c).nfkc().any(|f| f.is_ascii()))
}

/// The part of `path` after its first `n` segments, starting with `/` (`/` when
/// nothing is left): how many segments a route prefix has is the same in the wire
/// form and the view, so a prefix matched on the view is stripped from the wire.
pub fn after_segments(path: &str, n: usize) -> &str {
    let mut rest = path;
    for _ in 0..n {
        let Some(tail) = rest.strip_prefix('/') else { break };
        rest = tail.find('/').map_or("", |i| &tail[i..]);
    }
    if rest.is_empty() {
        "/"
    } else {
        rest
    }
}

#[cfg(test)]
#[path = "path_tests.rs"]
mod tests;
