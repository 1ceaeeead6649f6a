//! Token extraction: never panics, and a token is accepted only when every
//! bearer header, access cookie and `X-Api-Key` holding an API key of the
//! request carries that same token.
#![no_main]

use edge::credentials::{access_token, bearer, cookie_values, is_api_key, X_API_KEY};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut headers = http::HeaderMap::new();
    for line in text.split('\n') {
        let Some((name, value)) = line.split_once(':') else { continue };
        let name = match name.trim().to_ascii_lowercase().as_str() {
            "a" | "authorization" => http::header::AUTHORIZATION,
            "k" | "x-api-key" => http::HeaderName::from_static(X_API_KEY),
            _ => http::header::COOKIE,
        };
        if let Ok(value) = http::HeaderValue::from_str(value.trim()) {
            headers.append(name, value);
        }
    }
    let Ok(Some(presented)) = access_token(&headers, "tg_access") else { return };
    let auth: Vec<&str> = headers.get_all(http::header::AUTHORIZATION).iter().filter_map(|v| v.to_str().ok()).collect();
    assert!(auth.len() <= 1, "two Authorization headers accepted");
    if let Some(token) = auth.first().and_then(|v| bearer(v)) {
        assert_eq!(token, presented.token);
    }
    for value in cookie_values(&headers, "tg_access").filter(|v| !v.is_empty()) {
        assert_eq!(value, presented.token, "a second, different access cookie was accepted");
    }
    let keys: Vec<&str> = headers.get_all(X_API_KEY).iter().filter_map(|v| v.to_str().ok()).collect();
    if keys.iter().any(|k| is_api_key(k.trim())) {
        assert_eq!(keys.len(), 1, "an API key beside another X-Api-Key was accepted");
        assert_eq!(keys[0].trim(), presented.token, "an API key beside another credential was accepted");
    }
});
