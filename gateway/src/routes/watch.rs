//! Hot reload: watch the route file or folder and swap in a new table when it
//! changes. A bad edit keeps the previous table; in-flight requests keep the
//! snapshot they loaded, so no request is dropped either way.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use edge::routes::{is_route_file_name, LoadError, RouteTable};

/// How long the files must stay quiet before a reload: editors and `kubectl` write
/// in several steps, and one reload per save is enough.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The OS watcher could not be created or could not watch the path (missing
    /// folder, inotify limits).
    #[error("cannot watch {} for route changes: {source}", path.display())]
    Notify {
        /// The watched file or folder.
        path: PathBuf,
        /// The watcher's error.
        #[source]
        source: notify::Error,
    },
}

/// Starts watching `path` (the same file or folder given to [`RouteTable::load`])
/// and returns the task that reloads it; spawn the task (or run it in a Pingora
/// `BackgroundService`). The watch is registered before this returns, so no edit
/// made afterwards is missed.
///
/// The task waits for changes, lets them settle for [`DEBOUNCE`], then reloads. On
/// success it stores the new table in `table` and calls `on_reload(Ok(routes))`; on
/// failure it keeps the current table, logs the error with its file and line, and
/// calls `on_reload(Err(&error))` (count both in metrics). It ends when `shutdown`
/// resolves.
///
/// A single file is watched through its folder, so editors that save by renaming a
/// new file over the old one are seen; other files in that folder are ignored.
///
/// # Errors
/// [`WatchError`] when the OS watcher cannot be set up.
pub fn watch<F, S>(
    path: &Path,
    table: Arc<ArcSwap<RouteTable>>,
    on_reload: F,
    shutdown: S,
) -> Result<impl Future<Output = ()> + Send, WatchError>
where
    F: Fn(Result<usize, &LoadError>) + Send,
    S: Future<Output = ()> + Send,
{
    let notify_err = |source| WatchError::Notify { path: path.to_owned(), source };
    let is_dir = std::fs::metadata(path).map_err(|e| notify_err(notify::Error::io(e)))?.is_dir();
    let (folder, only_file) = if is_dir {
        (path.to_owned(), None)
    } else {
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        (folder, path.file_name().map(|n| n.to_owned()))
    };

    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut watcher = RecommendedWatcher::new(
        move |event: notify::Result<Event>| {
            // The receiver is gone only once the task ended; nothing to do then.
            let _ = tx.send(event);
        },
        notify::Config::default(),
    )
    .map_err(notify_err)?;
    watcher.watch(&folder, RecursiveMode::NonRecursive).map_err(notify_err)?;

    let path = path.to_owned();
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
            if !relevant(&event, only_file.as_deref()) {
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
            reload(&path, &table, &on_reload);
        }
    })
}

/// Whether an event can change the routes. Reads are ignored: the reload itself
/// opens the files, and counting those would reload forever.
fn relevant(event: &notify::Result<Event>, only_file: Option<&std::ffi::OsStr>) -> bool {
    let event = match event {
        Ok(event) => event,
        Err(e) => {
            // Events may have been lost (queue overflow): reload to be safe.
            tracing::warn!(error = %e, "route file watcher error");
            return true;
        }
    };
    let writes = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    };
    if !writes {
        return false;
    }
    match only_file {
        Some(name) => event.paths.iter().any(|p| p.file_name() == Some(name)),
        // In a folder, any change may matter: a new file, a removed one, or the
        // `..data` symlink swap of a Kubernetes ConfigMap. Only hidden non-route
        // files (editor swap files) are skipped.
        None => event.paths.is_empty() || event.paths.iter().any(|p| !hidden_scratch(p)),
    }
}

fn hidden_scratch(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    name.starts_with('.') && !name.starts_with("..") && !is_route_file_name(&name)
}

/// Reads the files again and swaps the table in if they are valid. The read is
/// small blocking I/O on the reloader's own task, done at most once per
/// [`DEBOUNCE`].
fn reload<F>(path: &Path, table: &ArcSwap<RouteTable>, on_reload: &F)
where
    F: Fn(Result<usize, &LoadError>),
{
    match RouteTable::load(path) {
        Ok(new) => {
            let routes = new.len();
            table.store(Arc::new(new));
            tracing::info!(path = %path.display(), routes, "route table reloaded");
            on_reload(Ok(routes));
        }
        Err(error) => {
            let (file, line, column) = error.location().map_or((path, 0, 0), |(f, l, c)| (f, l, c));
            tracing::error!(
                file = %file.display(),
                line,
                column,
                error = %error,
                "route files are invalid; keeping the previous route table"
            );
            on_reload(Err(&error));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Instant;

    use super::*;

    /// A route called `name` on the prefix `/{name}`, upstream on line 3.
    fn route(name: &str) -> String {
        format!("[[route]]\nname = \"{name}\"\nupstreams = [\"127.0.0.1:3000\"]\npath_prefix = \"/{name}\"\n")
    }

    /// Polls `check` until it holds or ten seconds pass.
    async fn eventually(what: &str, check: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn names(table: &ArcSwap<RouteTable>) -> Vec<String> {
        table.load().routes().iter().map(|r| r.name().to_string()).collect()
    }

    #[tokio::test]
    async fn reloads_good_edits_and_keeps_the_table_on_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), route("first")).unwrap();
        let table = Arc::new(ArcSwap::from_pointee(RouteTable::load(dir.path()).unwrap()));
        let outcomes = Arc::new(Mutex::new(Vec::<Result<usize, String>>::new()));
        let record = {
            let outcomes = outcomes.clone();
            move |r: Result<usize, &LoadError>| outcomes.lock().unwrap().push(r.map_err(|e| e.to_string()))
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = watch(dir.path(), table.clone(), record, async move {
            let _ = stopped.await;
        })
        .unwrap();
        let task = tokio::spawn(task);

        // A new file with a second route.
        std::fs::write(dir.path().join("b.toml"), route("second")).unwrap();
        eventually("the new route", || names(&table) == ["first", "second"]).await;
        eventually("a success report", || outcomes.lock().unwrap().last() == Some(&Ok(2))).await;

        // A broken edit: reported with file and line, table unchanged.
        std::fs::write(dir.path().join("b.toml"), route("second").replace("127.0.0.1:3000", "nope")).unwrap();
        eventually("a failure report", || outcomes.lock().unwrap().last().is_some_and(Result::is_err)).await;
        let last = outcomes.lock().unwrap().last().cloned().unwrap().unwrap_err();
        assert!(last.contains("b.toml:3:"), "{last}");
        assert_eq!(names(&table), ["first", "second"]);

        // Fixed again, by an editor-style rename over the file.
        let tmp = dir.path().join(".b.toml.tmp");
        std::fs::write(&tmp, route("renamed")).unwrap();
        std::fs::rename(&tmp, dir.path().join("b.toml")).unwrap();
        eventually("the renamed route", || names(&table) == ["first", "renamed"]).await;

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn watches_a_single_file_and_ignores_its_neighbours() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("routes.toml");
        std::fs::write(&file, route("one")).unwrap();
        let table = Arc::new(ArcSwap::from_pointee(RouteTable::load(&file).unwrap()));
        let reloads = Arc::new(Mutex::new(0));
        let count = {
            let reloads = reloads.clone();
            move |_: Result<usize, &LoadError>| *reloads.lock().unwrap() += 1
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(
            watch(&file, table.clone(), count, async move {
                let _ = stopped.await;
            })
            .unwrap(),
        );

        std::fs::write(dir.path().join("other.toml"), "not toml at all [").unwrap();
        std::fs::write(&file, route("two")).unwrap();
        eventually("the edited route", || names(&table) == ["two"]).await;
        tokio::time::sleep(DEBOUNCE * 2).await;
        assert_eq!(*reloads.lock().unwrap(), 1, "only the watched file triggers reloads");

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    }

    #[test]
    fn a_missing_path_cannot_be_watched() {
        let table = Arc::new(ArcSwap::from_pointee(RouteTable::default()));
        let result = watch(Path::new("/nonexistent/routes"), table, |_| {}, std::future::pending());
        assert!(matches!(result, Err(WatchError::Notify { .. })));
    }
}
