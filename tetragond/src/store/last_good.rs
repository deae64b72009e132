//! The last version of each policy file that loaded, kept in the state
//! folder, so a file that is broken when the daemon starts still has its
//! last good version enforced (listed `load_error`, saying which version
//! runs) instead of nothing.

use std::{
    fs,
    path::{Path, PathBuf},
    time::SystemTime,
};

use super::folder::{FileError, Snapshot};

const FOLDER: &str = "last-good";
const SIDECAR_SUFFIX: &str = ".sidecar";

/// The copies of one state folder.
#[derive(Debug, Clone)]
pub struct LastGood {
    dir: PathBuf,
}

/// A stored version and when it was stored.
pub struct Stored {
    pub snapshot: Snapshot,
    pub saved: SystemTime,
}

impl LastGood {
    pub fn new(state_dir: &Path) -> Self {
        LastGood {
            dir: state_dir.join(FOLDER),
        }
    }

    fn paths(&self, policy_file: &Path) -> Option<(PathBuf, PathBuf)> {
        let name = policy_file.file_name()?.to_str()?;
        Some((
            self.dir.join(name),
            self.dir.join(format!("{name}{SIDECAR_SUFFIX}")),
        ))
    }

    /// Keeps `snapshot` as the last good version of `policy_file`; written
    /// only when it differs from the stored one.
    pub fn save(&self, policy_file: &Path, snapshot: &Snapshot) {
        let (Ok(yaml), Ok(sidecar)) = (&snapshot.yaml, &snapshot.sidecar) else {
            return;
        };
        let Some((yaml_path, sidecar_path)) = self.paths(policy_file) else {
            return;
        };
        let result = fs::create_dir_all(&self.dir)
            .and_then(|()| write_if_changed(&yaml_path, Some(yaml)))
            .and_then(|()| write_if_changed(&sidecar_path, sidecar.as_deref()));
        if let Err(e) = result {
            tracing::warn!(
                "last good version of {} not kept: {e}",
                policy_file.display()
            );
        }
    }

    /// The stored version of `policy_file`, if any.
    pub fn load(&self, policy_file: &Path) -> Option<Stored> {
        let (yaml_path, sidecar_path) = self.paths(policy_file)?;
        let yaml = fs::read_to_string(&yaml_path).ok()?;
        let saved = fs::metadata(&yaml_path).and_then(|m| m.modified()).ok()?;
        let sidecar = match fs::read_to_string(&sidecar_path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(FileError::Io {
                path: sidecar_path,
                message: e.to_string(),
            }),
        };
        Some(Stored {
            snapshot: Snapshot {
                yaml: Ok(yaml),
                sidecar,
            },
            saved,
        })
    }

    /// The policy file is gone: so is its last good version.
    pub fn remove(&self, policy_file: &Path) {
        if let Some((yaml_path, sidecar_path)) = self.paths(policy_file) {
            let _ = fs::remove_file(yaml_path);
            let _ = fs::remove_file(sidecar_path);
        }
    }
}

fn write_if_changed(path: &Path, text: Option<&str>) -> std::io::Result<()> {
    let Some(text) = text else {
        return match fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    };
    if fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    crate::atomic_file::write(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_replaces_and_forgets_a_version() {
        let state = std::env::temp_dir().join(format!("tetragond-lastgood-{}", std::process::id()));
        let _ = fs::remove_dir_all(&state);
        let store = LastGood::new(&state);
        let file = Path::new("/etc/policies.d/a.yaml");
        assert!(store.load(file).is_none());
        let snap = |yaml: &str, sidecar: Option<&str>| Snapshot {
            yaml: Ok(yaml.into()),
            sidecar: Ok(sidecar.map(Into::into)),
        };
        store.save(file, &snap("one", Some("mode = \"monitor\"\n")));
        let got = store.load(file).unwrap().snapshot;
        assert_eq!(got, snap("one", Some("mode = \"monitor\"\n")));
        store.save(file, &snap("two", None));
        assert_eq!(store.load(file).unwrap().snapshot, snap("two", None));
        // A failed read is never stored as good.
        let broken = Snapshot {
            yaml: Err(FileError::Io {
                path: file.into(),
                message: "x".into(),
            }),
            sidecar: Ok(None),
        };
        store.save(file, &broken);
        assert_eq!(store.load(file).unwrap().snapshot, snap("two", None));
        store.remove(file);
        assert!(store.load(file).is_none());
        fs::remove_dir_all(&state).unwrap();
    }
}
