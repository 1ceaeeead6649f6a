//! `Quota`: "at most N per window", written `10/1h` in settings.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration::parse_duration;

/// At most `max` events per `window`, written `max/window` (`10/1h`, `5/15m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Quota {
    /// Events allowed per window (at least 1).
    pub max: u32,
    /// The window (at least 1 s).
    pub window: Duration,
}

impl FromStr for Quota {
    type Err = String;

    fn from_str(text: &str) -> Result<Quota, String> {
        let bad = || format!("{text:?} is not a quota like 10/1h (at most 10 per hour)");
        let (max, window) = text.trim().split_once('/').ok_or_else(bad)?;
        let max: u32 = max.trim().parse().map_err(|_| bad())?;
        let window = parse_duration(window)?;
        if max == 0 || window < Duration::from_secs(1) {
            return Err(format!("{text:?}: a quota needs at least 1 event per window of at least 1s"));
        }
        Ok(Quota { max, window })
    }
}

impl TryFrom<String> for Quota {
    type Error = String;

    fn try_from(text: String) -> Result<Quota, String> {
        text.parse()
    }
}

impl From<Quota> for String {
    fn from(quota: Quota) -> String {
        quota.to_string()
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.max, humantime::format_duration(self.window))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_count_and_window_and_round_trips() {
        let q: Quota = "10/1h".parse().unwrap();
        assert_eq!(q, Quota { max: 10, window: Duration::from_secs(3600) });
        assert_eq!(q.to_string().parse::<Quota>(), Ok(q));
        assert_eq!(" 5 / 90 ".parse::<Quota>(), Ok(Quota { max: 5, window: Duration::from_secs(90) }));
        for bad in ["", "10", "x/1h", "0/1h", "10/0s", "-1/1h", "10/soon"] {
            assert!(bad.parse::<Quota>().is_err(), "{bad:?}");
        }
    }
}
