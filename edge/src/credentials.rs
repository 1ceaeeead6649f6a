//! The access token a request presents, from `Authorization: Bearer` or the
//! gateway's access cookie, and only when there is exactly one.
//!
//! If the gateway authenticated one token and the app behind it read another (a
//! second `Authorization` header, a second cookie tossed in by a sibling
//! subdomain, a header that disagrees with the cookie), the two would act for
//! different users. Such requests are refused instead.

use http::{header, HeaderMap};

/// Why the credentials of a request are refused (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// More than one `Authorization` header.
    #[error("the request has more than one Authorization header")]
    MultipleAuthorization,
    /// Two different access tokens: header and cookie disagree, or the access
    /// cookie is sent twice with different values.
    #[error("the request carries two different access tokens")]
    Conflicting,
}

/// The access token a request presents and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presented<'h> {
    /// The token text (possibly empty for `Authorization: Bearer `).
    pub token: &'h str,
    /// It came in `Authorization: Bearer`.
    pub in_header: bool,
    /// It came in the access cookie (also when the header carried the same token):
    /// a cookie authenticated the request, so the CSRF check applies.
    pub in_cookie: bool,
}

/// The bearer token of an `Authorization` value, if its scheme is `Bearer`.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Every value of the cookie called `name`, in order, in every `Cookie` header.
pub fn cookie_values<'h>(headers: &'h HeaderMap, name: &'h str) -> impl Iterator<Item = &'h str> + 'h {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(move |c| c.name_raw() == Some(name))
        .filter_map(|c| c.value_raw())
}

/// The access token of a request: the bearer token, the access cookie
/// (`cookie_name`), or both when they are the same token. An `Authorization`
/// header with another scheme (`Basic`...) is the app's business, not a token.
///
/// # Errors
/// [`CredentialError`] when the request carries more than one `Authorization`
/// header or two different access tokens.
pub fn access_token<'h>(
    headers: &'h HeaderMap,
    cookie_name: &'h str,
) -> Result<Option<Presented<'h>>, CredentialError> {
    let mut authorization = headers.get_all(header::AUTHORIZATION).iter();
    let (first, second) = (authorization.next(), authorization.next());
    if second.is_some() {
        return Err(CredentialError::MultipleAuthorization);
    }
    // `as_bytes` + an ASCII check reads the value as `to_str` does (a parsed header
    // value holds no control bytes) at a fraction of the cost for a long token.
    let from_header = first.map(|v| v.as_bytes()).filter(|b| b.is_ascii()).and_then(|b| std::str::from_utf8(b).ok());
    let from_header = from_header.and_then(bearer);
    let mut from_cookie: Option<&str> = None;
    // Only requests with a Cookie header pay for parsing it.
    if headers.contains_key(header::COOKIE) {
        for value in cookie_values(headers, cookie_name).filter(|v| !v.is_empty()) {
            match from_cookie {
                Some(seen) if seen != value => return Err(CredentialError::Conflicting),
                _ => from_cookie = Some(value),
            }
        }
    }
    match (from_header, from_cookie) {
        (Some(h), Some(c)) if h != c => Err(CredentialError::Conflicting),
        (Some(h), c) => Ok(Some(Presented { token: h, in_header: true, in_cookie: c.is_some() })),
        (None, Some(c)) => Ok(Some(Presented { token: c, in_header: false, in_cookie: true })),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn token_comes_from_bearer_or_cookie() {
        let h = headers(&[("cookie", "a=1; tg_access=abc.def.ghi; b=2")]);
        assert_eq!(
            access_token(&h, "tg_access"),
            Ok(Some(Presented { token: "abc.def.ghi", in_header: false, in_cookie: true }))
        );
        assert_eq!(access_token(&h, "other"), Ok(None));
        let h = headers(&[("authorization", "Bearer xyz")]);
        assert_eq!(
            access_token(&h, "tg_access"),
            Ok(Some(Presented { token: "xyz", in_header: true, in_cookie: false }))
        );
        let h = headers(&[("authorization", "bearer  xyz ")]);
        assert_eq!(access_token(&h, "tg_access").unwrap().map(|p| p.token), Some("xyz"));
        // Another scheme is the app's; the cookie still authenticates.
        let h = headers(&[("authorization", "Basic eHl6"), ("cookie", "tg_access=t")]);
        assert_eq!(access_token(&h, "tg_access").unwrap().map(|p| (p.token, p.in_header)), Some(("t", false)));
    }

    #[test]
    fn a_header_value_beyond_ascii_carries_no_token_as_to_str_reads_it() {
        for raw in [&b"Bearer abc\xff"[..], b"Bearer \xc3\xa9t\xc3\xa9", b"\xe2\x80\x8bBearer t"] {
            let value = http::HeaderValue::from_bytes(raw).unwrap();
            assert!(value.to_str().is_err(), "{raw:?}");
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, value);
            assert_eq!(access_token(&h, "tg_access"), Ok(None), "{raw:?}");
        }
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, http::HeaderValue::from_bytes(b"Bearer a\tb").unwrap());
        assert_eq!(access_token(&h, "tg_access").unwrap().map(|p| p.token), Some("a\tb"));
    }

    #[test]
    fn the_same_token_in_header_and_cookie_counts_as_a_cookie() {
        let h = headers(&[("authorization", "Bearer t"), ("cookie", "tg_access=t")]);
        assert_eq!(access_token(&h, "tg_access"), Ok(Some(Presented { token: "t", in_header: true, in_cookie: true })));
        let h = headers(&[("cookie", "tg_access=t"), ("cookie", "x=1; tg_access=t")]);
        assert_eq!(access_token(&h, "tg_access").unwrap().map(|p| p.token), Some("t"));
    }

    #[test]
    fn two_different_tokens_or_two_headers_are_refused() {
        for pairs in [
            &[("authorization", "Bearer a"), ("cookie", "tg_access=b")][..],
            &[("cookie", "tg_access=a; tg_access=b")],
            &[("cookie", "tg_access=a"), ("cookie", "tg_access=b")],
        ] {
            assert_eq!(access_token(&headers(pairs), "tg_access"), Err(CredentialError::Conflicting), "{pairs:?}");
        }
        let h = headers(&[("authorization", "Bearer a"), ("authorization", "Bearer a")]);
        assert_eq!(access_token(&h, "tg_access"), Err(CredentialError::MultipleAuthorization));
        let h = headers(&[("authorization", "Basic a"), ("authorization", "Bearer b")]);
        assert_eq!(access_token(&h, "tg_access"), Err(CredentialError::MultipleAuthorization));
    }
}
