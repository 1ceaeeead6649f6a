//! Watching folders for files that changed, for hot reloads (route files, TLS
//! certificates): the OS watch, the filter, and the debounce, shared.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// How long the files must stay quiet before a reload: editors, `kubectl` and
/// certificate renewers write in several steps, and one reload per save is enough.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(200);

/// Starts watching `folders` (not recursively) and returns the task that calls
/// `on_change` once the files stopped changing for [`DEBOUNCE`], after any change
/// to a path `wants` accepts. The watch is registered before this returns, so no
/// edit made afterwards is missed. A watcher error (events may have been lost)
/// counts as a change. The task ends when `shutdown` resolves.
///
/// Watching folders rather than files sees editors that save by renaming a new
/// file over the old one, and the `..data` symlink swap of a Kubernetes volume.
///
/// # Errors
/// The folder that could not be watched (missing, inotify limits) and why.
pub(crate) fn watch_folders<W, C, S>(
    folders: &[PathBuf],
    wants: W,
    mut on_change: C,
    shutdown: S,
) -> Result<impl Future<Output = ()> + Send, (PathBuf, notify::Error)>
where
    W: Fn(&Path) -> bool + Send,
    C: FnMut() + Send,
    S: Future<Output = ()> + Send,
{
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut watcher = RecommendedWatcher::new(
        move |event: notify::Result<Event>| {
            // The receiver is gone only once the task ended; nothing to do then.
            let _ = tx.send(event);
        },
        notify::Config::default(),
    )
    .map_err(|e| (folders.first().cloned().unwrap_or_default(), e))?;
    for folder in folders {
        watcher.watch(folder, RecursiveMode::NonRecursive).map_err(|e| (folder.clone(), e))?;
    }
    Ok(async move {
        // Dropping the watcher stops the OS watch, so the task owns it.
        let _watcher = watcher;
        tokio::pin!(shutdown);
        loop {
            let event = tokio::select! {
                () = &mut shutdown => return,
                event = rx.recv() => event,
            };
            let Some(event) = event else { return };
            if !relevant(&event, &wants) {
                continue;
            }
            // Let the burst of events from one save settle.
            loop {
                tokio::select! {
                    () = &mut shutdown => return,
                    () = tokio::time::sleep(DEBOUNCE) => break,
                    more = rx.recv() => if more.is_none() { return },
                }
            }
            on_change();
        }
    })
}

/// The folder a watched file lives in (`.` for a bare name).
pub(crate) fn folder_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Whether an event can change what is watched. Reads are ignored: the reload
/// itself opens the files, and counting those would reload forever.
fn relevant(event: &notify::Result<Event>, wants: &impl Fn(&Path) -> bool) -> bool {
    let event = match event {
        Ok(event) => event,
        Err(e) => {
            // Events may have been lost (queue overflow): reload to be safe.
            tracing::warn!(error = %e, "file watcher error");
            return true;
        }
    };
    let writes = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    };
    writes && (event.paths.is_empty() || event.paths.iter().any(|p| wants(p)))
}
