//! Durations written as `30s`, `15m`, `2h`, `30d` (or a bare number of seconds).

use std::time::Duration;

#[cfg(feature = "runtime")]
use serde::{Deserialize, Deserializer, Serializer};

/// Parses `30s`, `15m`, `1h30m`, `30d` or `900` (seconds).
///
/// # Errors
/// A readable message when the text is neither.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text).map_err(|e| format!("{text:?} is not a duration like 30s, 15m or 30d: {e}"))
}

#[cfg(feature = "runtime")]
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Secs(s) => Ok(Duration::from_secs(s)),
        Raw::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
    }
}

#[cfg(feature = "runtime")]
pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_units_and_bare_seconds() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert_eq!(parse_duration("900"), Ok(Duration::from_secs(900)));
        assert!(parse_duration("soon").is_err());
    }
}
