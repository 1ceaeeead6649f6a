//! Route files as the running gateway uses them: the table itself comes from
//! [`edge::routes`] (pure, fuzzed); this module adds the watcher that reloads it.

mod watch;

pub use edge::routes::*;
pub use watch::{watch, WatchError, DEBOUNCE};
