//! In-process fixed windows for single-node mode: what Redis's `INCR` + `EXPIRE
//! NX` gives the shared counters, for one instance.
//!
//! A live window is never evicted, whatever is inserted after it: a flood of new
//! keys must not reset the counter of the account it is guessing the password of.
//! Ended windows are swept when the map is full (at most once a second); if it is
//! still full, a new key is not counted ([`Full`]) and the limit fails open for it,
//! as it does when Redis is down, with a warning.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The most live windows kept: about 40 MiB at most.
const CAPACITY: usize = 250_000;
/// The shortest pause between two sweeps of ended windows.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Every live window is in use and a new key came: it is not counted.
#[derive(Debug, thiserror::Error)]
#[error("{CAPACITY} rate-limit windows are live; a new one is not counted")]
pub(super) struct Full;

/// The windows, by counter key. Cheap to clone.
#[derive(Clone)]
pub(super) struct LocalWindows {
    inner: Arc<Mutex<Windows>>,
    capacity: usize,
}

struct Windows {
    /// Count and end of each window.
    live: HashMap<String, (u64, Instant)>,
    swept: Option<Instant>,
}

impl LocalWindows {
    pub(super) fn new() -> LocalWindows {
        LocalWindows::with_capacity(CAPACITY)
    }

    fn with_capacity(capacity: usize) -> LocalWindows {
        LocalWindows { inner: Arc::new(Mutex::new(Windows { live: HashMap::new(), swept: None })), capacity }
    }

    /// Counts one attempt under `key` at `now`; returns the count in the current
    /// window and the time left in it, in whole seconds and at least one (as
    /// `Retry-After` says it).
    ///
    /// # Errors
    /// [`Full`] when `key` has no window and no room is left for one.
    pub(super) fn incr(&self, key: &str, length: Duration, now: Instant) -> Result<(u64, Duration), Full> {
        let mut windows = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let left = |ends: Instant| {
            let left = ends.saturating_duration_since(now).max(Duration::from_secs(1));
            Duration::from_secs(left.as_secs_f64().ceil() as u64)
        };
        if let Some((count, ends)) = windows.live.get_mut(key) {
            if *ends <= now {
                // Ended, not yet swept: a new window starts with this attempt.
                (*count, *ends) = (0, now + length);
            }
            *count += 1;
            return Ok((*count, left(*ends)));
        }
        if windows.live.len() >= self.capacity && windows.swept.is_none_or(|at| now >= at + SWEEP_EVERY) {
            windows.live.retain(|_, (_, ends)| *ends > now);
            windows.swept = Some(now);
        }
        if windows.live.len() >= self.capacity {
            return Err(Full);
        }
        windows.live.insert(key.to_owned(), (1, now + length));
        Ok((1, left(now + length)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_count_until_they_end_then_start_again() {
        let windows = LocalWindows::new();
        let start = Instant::now();
        let minute = Duration::from_secs(60);
        assert_eq!(windows.incr("a", minute, start).unwrap(), (1, minute));
        let half = start + Duration::from_millis(30_500);
        assert_eq!(windows.incr("a", minute, half).unwrap(), (2, Duration::from_secs(30)));
        assert_eq!(windows.incr("b", minute, start).unwrap().0, 1, "keys count apart");
        // The last second still says one second, never zero.
        let last = start + Duration::from_millis(59_900);
        assert_eq!(windows.incr("a", minute, last).unwrap(), (3, Duration::from_secs(1)));
        assert_eq!(windows.incr("a", minute, start + minute).unwrap(), (1, minute), "a new window once it ended");
    }

    #[test]
    fn a_flood_of_new_keys_never_resets_a_live_window() {
        let windows = LocalWindows::with_capacity(100);
        let start = Instant::now();
        let minute = Duration::from_secs(60);
        for _ in 0..10 {
            windows.incr("victim", minute, start).unwrap();
        }
        // Fill every other slot, then flood: the new keys are refused, not the victim's.
        for i in 0..99 {
            windows.incr(&format!("flood{i}"), minute, start).unwrap();
        }
        assert!(windows.incr("one more", minute, start).is_err(), "full: not counted");
        assert_eq!(windows.incr("victim", minute, start).unwrap().0, 11, "the live window kept its count");
        // Once windows end, a sweep makes room again (at most once a second).
        let later = start + minute;
        assert_eq!(windows.incr("fresh", minute, later).unwrap().0, 1);
        assert_eq!(windows.incr("victim", minute, later).unwrap().0, 1, "ended windows start afresh");
    }
}
