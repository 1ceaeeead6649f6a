//! What a refused route file says: [`LoadError`] for the caller, and while
//! checking, a [`Problem`] that points at a span of the file's text, turned into
//! `file:line:column: problem` by [`locate`].

use std::ops::Range;
use std::path::{Path, PathBuf};

/// Why a route file or folder was refused. The `Display` form is a message an
/// operator can act on: `config/routes/app.toml:12:9: upstream "x" must be host:port`.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file or folder could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `GATEWAY_ROUTES` is a folder without any `*.toml` file.
    #[error("{}: no route files (*.toml) in this folder", path.display())]
    NoFiles {
        /// The folder.
        path: PathBuf,
    },
    /// The files define no route at all, so every request would be a 404.
    #[error("{}: no routes defined; add a [[route]] table", path.display())]
    NoRoutes {
        /// The file or folder.
        path: PathBuf,
    },
    /// A syntax error or an invalid route.
    #[error("{}:{line}:{column}: {message}", file.display())]
    Invalid {
        /// The route file.
        file: PathBuf,
        /// 1-based line of the offending value.
        line: usize,
        /// 1-based column (in characters) of the offending value.
        column: usize,
        /// What is wrong, as a sentence.
        message: String,
    },
}

impl LoadError {
    /// The file and 1-based line and column the error points at, for structured
    /// logs; `None` for errors about a whole file or folder.
    pub fn location(&self) -> Option<(&Path, usize, usize)> {
        match self {
            LoadError::Invalid { file, line, column, .. } => Some((file, *line, *column)),
            _ => None,
        }
    }
}

/// A semantic problem and the span it points at.
pub(super) struct Problem {
    pub(super) span: Range<usize>,
    pub(super) message: String,
}

pub(super) fn problem<T>(span: Range<usize>, message: impl Into<String>) -> Result<T, Problem> {
    Err(Problem { span, message: message.into() })
}

/// 1-based line and column (in characters) of a byte offset.
pub(super) fn locate(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line_start = before.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    // Count UTF-8 leading bytes, not continuation bytes, so columns are characters.
    let column = before[line_start..].iter().filter(|b| (**b & 0xC0) != 0x80).count() + 1;
    (line, column)
}
