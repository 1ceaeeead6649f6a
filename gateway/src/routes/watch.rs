//! Hot reload: watch the route file or folder and swap in a new table when it
//! changes. A bad edit keeps the previous table; in-flight requests keep the
//! snapshot they loaded, so no request is dropped either way.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use edge::routes::{is_route_file_name, LoadError, RouteTable};

use crate::file_watch::{folder_of, watch_folders};

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

/// Starts watching `path` (the same file or folder given to [`super::load`])
/// and returns the task that reloads it; spawn the task (or run it in a Pingora
/// `BackgroundService`). The watch is registered before this returns, so no edit
/// made afterwards is missed.
///
/// The task waits for changes, lets them settle, then reloads. On success it
/// stores the new table in `table` and calls `on_reload(Ok(routes))`; on failure it
/// keeps the current table, logs the error with its file and line, and calls
/// `on_reload(Err(&error))` (count both in metrics). It ends when `shutdown`
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
    let is_dir = std::fs::metadata(path)
        .map_err(|e| WatchError::Notify { path: path.to_owned(), source: notify::Error::io(e) })?
        .is_dir();
    let (folder, only_file) =
        if is_dir { (path.to_owned(), None) } else { (folder_of(path), path.file_name().map(|n| n.to_owned())) };
    // In a folder, any change may matter: a new file, a removed one, or the
    // `..data` symlink swap of a Kubernetes ConfigMap. Only hidden non-route
    // files (editor swap files) are skipped.
    let wants = move |p: &Path| match &only_file {
        Some(name) => p.file_name() == Some(name.as_os_str()),
        None => !hidden_scratch(p),
    };
    let path = path.to_owned();
    watch_folders(&[folder], wants, move || reload(&path, &table, &on_reload), shutdown)
        .map_err(|(path, source)| WatchError::Notify { path, source })
}

fn hidden_scratch(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    name.starts_with('.') && !name.starts_with("..") && !is_route_file_name(&name)
}

/// Reads the files again ([`super::load`], TLS files included) and swaps the
/// table in if they are valid. The read is small blocking I/O on the reloader's
/// own task, done at most once per debounce.
fn reload<F>(path: &Path, table: &ArcSwap<RouteTable>, on_reload: &F)
where
    F: Fn(Result<usize, &LoadError>),
{
    match super::load(path) {
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
    use std::time::{Duration, Instant};

    use super::*;
    use crate::file_watch::DEBOUNCE;

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
