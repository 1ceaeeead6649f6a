//! Setting values that are parsed into types when the settings load (raw text in,
//! a value that cannot be wrong out), and the serde helpers that read lists and
//! optional values from the environment's flat strings.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `APP_URL`: an absolute `http(s)` URL with a host and no query or fragment, the
/// base every link in emails and pages is built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PublicUrl(url::Url);

impl PublicUrl {
    /// # Errors
    /// A sentence naming what is wrong.
    pub fn parse(raw: &str) -> Result<PublicUrl, String> {
        let url = url::Url::parse(raw.trim()).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err(format!("{raw:?} must be an http(s) URL with a host, like https://app.example.com"));
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
            return Err(format!("{raw:?} must not carry credentials, a query or a fragment"));
        }
        Ok(PublicUrl(url))
    }

    /// The URL without a trailing `/`, ready for `format!("{}/path", url.base())`.
    #[must_use]
    pub fn base(&self) -> &str {
        self.0.as_str().trim_end_matches('/')
    }

    /// The host name (lowercase, as the URL parser normalized it).
    #[must_use]
    pub fn host(&self) -> &str {
        self.0.host_str().unwrap_or_default()
    }
}

impl Default for PublicUrl {
    /// `http://localhost:8080`, the gateway's own default listener.
    fn default() -> PublicUrl {
        #[allow(clippy::expect_used)] // A literal that parses.
        PublicUrl::parse("http://localhost:8080").expect("the default APP_URL parses")
    }
}

impl TryFrom<String> for PublicUrl {
    type Error = String;
    fn try_from(raw: String) -> Result<PublicUrl, String> {
        PublicUrl::parse(&raw)
    }
}

impl From<PublicUrl> for String {
    fn from(url: PublicUrl) -> String {
        url.base().to_owned()
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.base())
    }
}

/// A browser origin (`CORS_ORIGINS` entries): `scheme://host[:port]` with nothing
/// after it, in the ASCII serialization browsers send (lowercase host, default port
/// dropped). `*` is refused: credentials are allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Origin(String);

impl Origin {
    /// # Errors
    /// A sentence naming what is wrong.
    pub fn parse(raw: &str) -> Result<Origin, String> {
        let raw = raw.trim();
        let shape = || format!("{raw:?} is not an origin like https://app.example.com");
        if raw == "*" {
            return Err("`*` cannot be used with credentials; list the origins".into());
        }
        let url = url::Url::parse(raw).map_err(|_| shape())?;
        let bare = url.path() == "/" && !raw.ends_with('/') && url.query().is_none() && url.fragment().is_none();
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() || !bare || !url.username().is_empty()
        {
            return Err(shape());
        }
        Ok(Origin(url.origin().ascii_serialization()))
    }

    /// The origin as an `Origin` header carries it.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A CSS colour written `#rgb` or `#rrggbb` (`PORTAL_PRIMARY_COLOR`), lowercase:
/// safe to put in a style attribute as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Colour(String);

impl Colour {
    /// # Errors
    /// A sentence naming what is wrong.
    pub fn parse(raw: &str) -> Result<Colour, String> {
        let hex = raw.trim().strip_prefix('#').unwrap_or("");
        if !matches!(hex.len(), 3 | 6) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{raw:?} must be a colour like #3b5bdb"));
        }
        Ok(Colour(format!("#{}", hex.to_ascii_lowercase())))
    }

    /// `#rrggbb` or `#rgb`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Colour {
    /// The portal's blue.
    fn default() -> Colour {
        Colour("#3b5bdb".into())
    }
}

/// An image or other asset the portal links to (`PORTAL_LOGO_URL`): an absolute
/// `http(s)` URL (as the `url` crate normalizes it) or a path on this site (`/...`,
/// never `//`), with no whitespace, quote or backslash: safe in an attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AssetUrl(String);

impl AssetUrl {
    /// # Errors
    /// A sentence naming what is wrong.
    pub fn parse(raw: &str) -> Result<AssetUrl, String> {
        let bad = || format!("{raw:?} must be an http(s) URL or a /path");
        if raw.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\\' | '\'' | '<' | '>')) {
            return Err(bad());
        }
        if raw.starts_with('/') {
            return if raw.starts_with("//") { Err(bad()) } else { Ok(AssetUrl(raw.to_owned())) };
        }
        let url = url::Url::parse(raw).map_err(|_| bad())?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() || !url.username().is_empty() {
            return Err(bad());
        }
        Ok(AssetUrl(url.into()))
    }

    /// The URL as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `TryFrom<String>` through `parse` (serde's `try_from`) and back into the text.
macro_rules! text_value {
    ($($name:ident),+) => {$(
        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(raw: String) -> Result<$name, String> {
                $name::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
    )+};
}

text_value!(Origin, Colour, AssetUrl);

/// An optional value parsed from text: empty (or blank) text is none, so
/// `GATEWAY_BASE_DOMAIN=` turns a feature off.
pub(super) fn optional<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<String>,
    T::Error: fmt::Display,
{
    let raw = String::deserialize(d)?;
    if raw.trim().is_empty() {
        return Ok(None);
    }
    T::try_from(raw).map(Some).map_err(serde::de::Error::custom)
}

/// Writes what [`optional`] reads: none as empty text.
pub(super) fn optional_text<S: Serializer, T: Clone + Into<String>>(
    value: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(&value.clone().map(Into::into).unwrap_or_default())
}

/// Any list of values parsed from text, as [`string_list`] reads it.
pub(super) fn parsed_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<String>,
    T::Error: fmt::Display,
{
    string_list(d)?.into_iter().map(|raw| T::try_from(raw).map_err(serde::de::Error::custom)).collect()
}

/// A list of IP networks (`10.0.0.0/8`) or addresses (a /32 or /128), as
/// [`string_list`] accepts it.
pub(super) fn net_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
    string_list(d)?
        .iter()
        .map(|raw| {
            raw.parse::<ipnet::IpNet>()
                .or_else(|_| raw.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| {
                    serde::de::Error::custom(format!("{raw:?} is not an IP address or CIDR block like 10.0.0.0/8"))
                })
        })
        .collect()
}

/// A list of `ip:port` socket addresses, as [`string_list`] accepts it.
pub(super) fn addr_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
    string_list(d)?
        .iter()
        .map(|raw| {
            raw.parse().map_err(|_| serde::de::Error::custom(format!("{raw:?} is not an ip:port like 10.0.0.2:53")))
        })
        .collect()
}

pub(super) fn display_list<S: Serializer, T: fmt::Display>(items: &[T], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(items.iter().map(ToString::to_string))
}

/// Accepts `"a, b"` (as the environment gives it) or a TOML array.
pub(super) fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        One(String),
        Many(Vec<String>),
    }
    let items = match List::deserialize(d)? {
        List::One(s) => s.split(',').map(str::to_owned).collect(),
        List::Many(v) => v,
    };
    Ok(items.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_are_http_with_a_host_and_lose_the_trailing_slash() {
        let url = PublicUrl::parse("https://App.Example.com/").unwrap();
        assert_eq!((url.base(), url.host()), ("https://app.example.com", "app.example.com"));
        assert_eq!(PublicUrl::parse("http://localhost:3000/app/").unwrap().base(), "http://localhost:3000/app");
        for bad in ["app.example.com", "ftp://x.test", "https://", "https://x.test/?a=1", "https://u:p@x.test", ""] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn origins_are_scheme_host_port_in_browser_form() {
        assert_eq!(Origin::parse("https://A.test").unwrap().as_str(), "https://a.test");
        assert_eq!(Origin::parse("http://b.test:3000").unwrap().as_str(), "http://b.test:3000");
        assert_eq!(Origin::parse("https://c.test:443").unwrap().as_str(), "https://c.test");
        for bad in ["*", "https://a.test/", "https://a.test/x", "a.test", "null", "https://a.test?x", "file:///x"] {
            assert!(Origin::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn asset_urls_are_http_urls_or_local_paths() {
        assert_eq!(AssetUrl::parse("/static/logo.svg").unwrap().as_str(), "/static/logo.svg");
        assert_eq!(AssetUrl::parse("https://CDN.test/l.png").unwrap().as_str(), "https://cdn.test/l.png");
        for bad in ["javascript:alert(1)", "//evil.test/l.png", "logo.png", "/a b", "/a\"b", "https://x.test/\\a", ""] {
            assert!(AssetUrl::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn colours_are_hex_triplets() {
        assert_eq!(Colour::parse("#3B5BDB").unwrap().as_str(), "#3b5bdb");
        assert_eq!(Colour::parse("#abc").unwrap().as_str(), "#abc");
        for bad in ["3b5bdb", "#12345", "#ggg", "red", "#abc;x:y", ""] {
            assert!(Colour::parse(bad).is_err(), "{bad:?}");
        }
    }
}
