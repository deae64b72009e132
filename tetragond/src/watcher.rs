//! Watches the policy folder. Any change only wakes the daemon, which then
//! rescans the whole folder: a rescan is cheap and is correct whatever order
//! inotify reports creates, renames-over and deletes in.

use std::path::Path;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Keep the returned watcher alive for as long as events are wanted.
pub fn watch(dir: &Path, wake: mpsc::Sender<()>) -> notify::Result<RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok_and(|ev| !ev.kind.is_access()) {
            // A full channel already holds a wake-up; dropping this one is fine.
            let _ = wake.try_send(());
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}
