//! [`PathPrefix`]: the part of the path space a route or a rule owns.

use std::fmt;

use crate::path::RequestPath;

/// A path prefix that matches whole segments: `/api` matches `/api`, `/api/` and
/// `/api/x` but not `/apix`. Written in the canonical wire form requests are
/// normalized to; matched against a request's decoded view
/// ([`crate::path::RequestPath::view`]), ignoring case unless the route is
/// `case_sensitive`. Never ends with `/` except the root `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathPrefix {
    /// As written (the wire form).
    wire: Box<str>,
    /// Decoded once, as apps see it.
    view: Box<str>,
    /// The view lowercased (Unicode), for case-insensitive matching.
    folded: Box<str>,
    /// How many segments it has (0 for the root).
    segments: usize,
}

impl PathPrefix {
    /// Parses a prefix. A trailing `/` is dropped (`/api/` means `/api`).
    ///
    /// # Errors
    /// A sentence when `raw` does not start with `/`, is not in the canonical form
    /// requests are normalized to (no `.`/`..` segments, no `//`, `%XX` only for
    /// reserved characters, in uppercase), or holds what a request path may not
    /// (an encoded slash, a `;`, a `\`...).
    pub fn parse(raw: &str) -> Result<PathPrefix, String> {
        if !raw.starts_with('/') {
            return Err(format!("path_prefix {raw:?} must start with '/'"));
        }
        let parsed = RequestPath::parse(raw).map_err(|e| format!("path_prefix {raw:?}: {e}"))?;
        if parsed.has_encoded_slash() {
            return Err(format!("path_prefix {raw:?} may not contain an encoded slash (%2F)"));
        }
        if parsed.wire() != raw {
            return Err(format!(
                "path_prefix {raw:?} is not normalized; requests are matched on the normalized path, write {:?}",
                parsed.wire()
            ));
        }
        let trim = |s: &str| -> Box<str> {
            if s.len() > 1 {
                s.trim_end_matches('/').into()
            } else {
                s.into()
            }
        };
        let view = trim(parsed.view());
        Ok(PathPrefix {
            wire: trim(raw),
            folded: view.to_lowercase().into(),
            segments: view.split('/').filter(|s| !s.is_empty()).count(),
            view,
        })
    }

    /// The prefix as written.
    pub fn as_str(&self) -> &str {
        &self.wire
    }

    /// The prefix decoded, lowercased: two prefixes with the same folded form
    /// collide for case-insensitive routes.
    pub fn folded(&self) -> &str {
        &self.folded
    }

    /// How many path segments the prefix spans.
    pub fn segments(&self) -> usize {
        self.segments
    }

    /// Whether every path `other` matches is one this prefix matches too (it is
    /// this prefix or lies under it), compared as a route with `case_sensitive`
    /// compares.
    pub fn covers(&self, other: &PathPrefix, case_sensitive: bool) -> bool {
        self.matches(&other.view, Some(&other.folded), case_sensitive)
    }

    /// Whether the prefix matches whole segments of a request `path` (a view).
    /// `folded` is the view lowercased, needed only when it is not ASCII.
    pub fn matches(&self, view: &str, folded: Option<&str>, case_sensitive: bool) -> bool {
        if self.segments == 0 {
            return true;
        }
        match (case_sensitive, folded) {
            (true, _) => segment_prefix(view, &self.view, false),
            (false, None) => segment_prefix(view, &self.view, true),
            (false, Some(folded)) => segment_prefix(folded, &self.folded, false),
        }
    }
}

/// Whether `prefix` (no trailing `/`) is `path` or a run of its leading segments.
fn segment_prefix(path: &str, prefix: &str, ascii_case_insensitive: bool) -> bool {
    let Some(head) = path.get(..prefix.len()) else { return false };
    let same = if ascii_case_insensitive { head.eq_ignore_ascii_case(prefix) } else { head == prefix };
    same && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/'))
}

impl fmt::Display for PathPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.wire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_whole_segments_ignoring_case_unless_asked() {
        let api = PathPrefix::parse("/api/").unwrap();
        assert_eq!(api.as_str(), "/api");
        assert_eq!(api.segments(), 1);
        for (path, matches) in [("/api", true), ("/api/", true), ("/api/v1/x", true), ("/apix", false), ("/ap", false)]
        {
            assert_eq!(api.matches(path, None, false), matches, "{path}");
        }
        assert!(api.matches("/API/x", None, false));
        assert!(api.matches("/Api", None, false));
        assert!(!api.matches("/API/x", None, true));
        let root = PathPrefix::parse("/").unwrap();
        assert!(root.matches("/anything", None, true));
        assert_eq!(root.segments(), 0);
        for bad in ["api", "", "/a/../b", "/a//b", "/%7euser", "/a/./b", "/a%2Fb", "/a;b", "/a\\b", "/a%2fb"] {
            assert!(PathPrefix::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn encoded_prefixes_match_decoded_views_and_fold_unicode_case() {
        let p = PathPrefix::parse("/caf%C3%A9/a%20b").unwrap();
        assert_eq!(p.as_str(), "/caf%C3%A9/a%20b");
        assert!(p.matches("/café/a b/x", None, false));
        // A non-ASCII view is compared in its lowercased form.
        assert!(p.matches("/CAFÉ/A B", Some("/café/a b"), false));
        assert!(!p.matches("/CAFÉ/A B", Some("/café/a b"), true));
        assert!(!p.matches("/cafe/a b", None, false));
    }
}
