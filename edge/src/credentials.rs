//! The access token a request presents, from `Authorization: Bearer`, the
//! gateway's access cookie or (for tenant API keys, `tgk_...`) `X-Api-Key`, and
//! only when there is exactly one.
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
    /// More than one `X-Api-Key` header, one of them an API key of ours.
    #[error("the request has more than one X-Api-Key header")]
    MultipleApiKeys,
}

/// The header an API key may come in (besides `Authorization: Bearer`).
pub const X_API_KEY: &str = "x-api-key";

/// Whether `token` is (shaped as) one of our tenant API keys rather than a JWT.
pub fn is_api_key(token: &str) -> bool {
    token.starts_with(shared::domain::API_KEY_PREFIX)
}

/// Whether any `X-Api-Key` header holds one of our API keys: such a request is
/// a machine's (never redirected to a login page, never given a session), and
/// the key never reaches the app.
pub fn holds_api_key(headers: &HeaderMap) -> bool {
    headers.get_all(X_API_KEY).iter().any(|v| v.to_str().is_ok_and(|t| is_api_key(t.trim())))
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
    /// It came in `X-Api-Key` (an API key; also when `Authorization` carried the
    /// same one).
    pub in_api_key: bool,
}

/// The bearer token of an `Authorization` value, if its scheme is `Bearer`
/// (separated by a space or a tab, as servers behind the gateway read it).
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once([' ', '\t'])?;
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

/// The API key in `X-Api-Key`, if that header holds one of ours (another value is
/// the app's own business, forwarded as sent).
///
/// # Errors
/// [`CredentialError::MultipleApiKeys`] when there are two such headers and one
/// holds a key of ours: the gateway would check one, and the app might read the
/// other.
pub fn api_key_header(headers: &HeaderMap) -> Result<Option<&str>, CredentialError> {
    let mut values = headers.get_all(X_API_KEY).iter();
    let Some(first) = values.next() else { return Ok(None) };
    fn ours(v: &http::HeaderValue) -> Option<&str> {
        v.to_str().ok().map(str::trim).filter(|t| is_api_key(t))
    }
    let mut rest = values.peekable();
    if rest.peek().is_some() {
        return if ours(first).is_some() || rest.any(|v| ours(v).is_some()) {
            Err(CredentialError::MultipleApiKeys)
        } else {
            Ok(None)
        };
    }
    Ok(ours(first))
}

/// The access token of a request: the bearer token, the access cookie
/// (`cookie_name`), an API key in `X-Api-Key`, or several of them when they are
/// the same token. An `Authorization` header with another scheme (`Basic`...) is
/// the app's business, not a token.
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
    // Only requests with an X-Api-Key header pay for reading it.
    let from_api_key = if headers.contains_key(X_API_KEY) { api_key_header(headers)? } else { None };
    let mut token: Option<&str> = None;
    for candidate in [from_header, from_cookie, from_api_key].into_iter().flatten() {
        match token {
            Some(seen) if seen != candidate => return Err(CredentialError::Conflicting),
            _ => token = Some(candidate),
        }
    }
    Ok(token.map(|token| Presented {
        token,
        in_header: from_header.is_some(),
        in_cookie: from_cookie.is_some(),
        in_api_key: from_api_key.is_some(),
    }))
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
            Ok(Some(Presented { token: "abc.def.ghi", in_header: false, in_cookie: true, in_api_key: false }))
        );
        assert_eq!(access_token(&h, "other"), Ok(None));
        let h = headers(&[("authorization", "Bearer xyz")]);
        assert_eq!(
            access_token(&h, "tg_access"),
            Ok(Some(Presented { token: "xyz", in_header: true, in_cookie: false, in_api_key: false }))
        );
        let h = headers(&[("authorization", "bearer  xyz ")]);
        assert_eq!(access_token(&h, "tg_access").unwrap().map(|p| p.token), Some("xyz"));
        // A tab separates as well as a space (servers behind split on either).
        let h = headers(&[("authorization", "Bearer\txyz")]);
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
        assert_eq!(
            access_token(&h, "tg_access"),
            Ok(Some(Presented { token: "t", in_header: true, in_cookie: true, in_api_key: false }))
        );
        let h = headers(&[("cookie", "tg_access=t"), ("cookie", "x=1; tg_access=t")]);
        assert_eq!(access_token(&h, "tg_access").unwrap().map(|p| p.token), Some("t"));
    }

    const KEY: &str = "tgk_AbCdEf123456_0123456789abcdefghijABCDEFGHIJ0123456789abcde";

    #[test]
    fn an_api_key_comes_in_x_api_key_or_as_a_bearer_token() {
        let h = headers(&[("x-api-key", KEY)]);
        assert_eq!(
            access_token(&h, "tg_access"),
            Ok(Some(Presented { token: KEY, in_header: false, in_cookie: false, in_api_key: true }))
        );
        let bearer = format!("Bearer {KEY}");
        let h = headers(&[("authorization", &bearer), ("X-API-KEY", KEY)]);
        assert_eq!(access_token(&h, "tg_access").unwrap().map(|p| (p.in_header, p.in_api_key)), Some((true, true)));
        // The app's own X-Api-Key is not ours: no token, and a JWT still counts.
        let h = headers(&[("x-api-key", "app-secret"), ("authorization", "Bearer a.b.c")]);
        assert_eq!(access_token(&h, "tg_access").unwrap().map(|p| (p.token, p.in_api_key)), Some(("a.b.c", false)));
        assert_eq!(api_key_header(&headers(&[("x-api-key", "x"), ("x-api-key", "y")])), Ok(None));
    }

    #[test]
    fn a_key_beside_another_credential_or_a_second_x_api_key_is_refused() {
        let other = KEY.replace("AbCdEf", "ZyXwVu");
        let other_bearer = format!("Bearer {other}");
        for pairs in [
            &[("x-api-key", KEY), ("authorization", "Bearer a.b.c")][..],
            &[("x-api-key", KEY), ("cookie", "tg_access=a.b.c")],
            &[("x-api-key", KEY), ("authorization", &other_bearer)],
        ] {
            assert_eq!(access_token(&headers(pairs), "tg_access"), Err(CredentialError::Conflicting), "{pairs:?}");
        }
        for pairs in [&[("x-api-key", KEY), ("x-api-key", "app")][..], &[("x-api-key", "app"), ("x-api-key", KEY)]] {
            assert_eq!(access_token(&headers(pairs), "tg_access"), Err(CredentialError::MultipleApiKeys), "{pairs:?}");
        }
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
