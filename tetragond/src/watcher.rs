//! Watches the policy folder. Any change only wakes the daemon, which then
//! rescans the whole folder: a rescan is cheap and is correct whatever order
//! inotify reports creates, renames-over and deletes in.

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// The watch on the folder, renewed when the folder is replaced
/// (configuration tools do `mv new-dir dir`) or appears after a failure.
pub struct FolderWatch {
    dir: PathBuf,
    wake: mpsc::Sender<()>,
    /// The watcher and the (device, inode) of the folder it watches.
    current: Option<(RecommendedWatcher, (u64, u64))>,
}

impl FolderWatch {
    pub fn new(dir: &Path, wake: mpsc::Sender<()>) -> Self {
        let mut watch = FolderWatch {
            dir: dir.to_path_buf(),
            wake,
            current: None,
        };
        watch.refresh();
        watch
    }

    /// Watches the folder now at the path if it is not the one watched;
    /// true when that changed what is watched.
    pub fn refresh(&mut self) -> bool {
        let identity = std::fs::metadata(&self.dir)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if identity == self.current.as_ref().map(|(_, id)| *id) {
            return false;
        }
        self.current = identity.and_then(|id| match watch(&self.dir, self.wake.clone()) {
            Ok(w) => Some((w, id)),
            Err(e) => {
                tracing::error!("watching {}: {e}", self.dir.display());
                None
            }
        });
        true
    }
}

/// Keep the returned watcher alive for as long as events are wanted.
fn watch(dir: &Path, wake: mpsc::Sender<()>) -> notify::Result<RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok_and(|ev| !ev.kind.is_access()) {
            // A full channel already holds a wake-up; dropping this one is fine.
            let _ = wake.try_send(());
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}
