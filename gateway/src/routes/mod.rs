//! Route files as the running gateway uses them: the table itself comes from
//! [`edge::routes`] (pure, fuzzed); this module adds the checks that need a TLS
//! stack ([`load`]) and the watcher that reloads it.

mod load;
mod watch;

pub use edge::routes::*;
pub use load::load;
pub use watch::{watch, WatchError};
