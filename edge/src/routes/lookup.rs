//! [`PathLookup`]: a request path as route matching reads it.

use crate::path::{after_segments, RequestPath};

/// A request path as the matcher reads it, from some segment on: its view (what
/// apps see, matched against prefixes), that view lowercased when it is not ASCII,
/// and its wire form (what is sent upstream).
#[derive(Debug, Clone, Copy)]
pub struct PathLookup<'p> {
    view: &'p str,
    folded: Option<&'p str>,
    wire: &'p str,
}

impl<'p> PathLookup<'p> {
    /// The whole of `path`.
    pub fn of(path: &'p RequestPath<'_>) -> PathLookup<'p> {
        PathLookup { view: path.view(), folded: path.folded(), wire: path.wire() }
    }

    /// From its parts: `folded` is `view` lowercased when `view` is not ASCII.
    pub fn new(view: &'p str, folded: Option<&'p str>, wire: &'p str) -> PathLookup<'p> {
        PathLookup { view, folded, wire }
    }

    /// The same path after its first `n` segments.
    pub fn skip(&self, n: usize) -> PathLookup<'p> {
        PathLookup {
            view: after_segments(self.view, n),
            folded: self.folded.map(|f| after_segments(f, n)),
            wire: after_segments(self.wire, n),
        }
    }

    /// The view.
    pub fn view(&self) -> &'p str {
        self.view
    }

    /// The view lowercased, when it is not ASCII (else `None`: compare the view
    /// ignoring ASCII case).
    pub fn folded(&self) -> Option<&'p str> {
        self.folded
    }

    /// The wire form.
    pub fn wire(&self) -> &'p str {
        self.wire
    }
}
