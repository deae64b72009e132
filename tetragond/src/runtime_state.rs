//! What operators set at run time (modes, enable/disable), kept in the state
//! folder so a restart or a crash never silently drops an operator's
//! `enforce`. Written atomically: a temporary file, fsync, rename.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::policy::Mode;

pub const FILE_NAME: &str = "runtime.json";

/// Keyed by [`crate::policy::PolicyKey::runtime_key`]: `namespace/name` (`/name` for a
/// global policy).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeState {
    #[serde(default)]
    pub modes: BTreeMap<String, String>,
    #[serde(default)]
    pub enabled: BTreeMap<String, bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{file}: {source}")]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: not a tetragond state file: {message}")]
    Corrupt { file: PathBuf, message: String },
}

impl RuntimeState {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(FILE_NAME)
    }

    /// An absent file is an empty state; an unreadable one is an error the
    /// daemon reports loudly.
    pub fn load(state_dir: &Path) -> Result<Self, StateError> {
        let file = Self::path(state_dir);
        match fs::read_to_string(&file) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
                file,
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(StateError::Io { file, source }),
        }
    }

    pub fn save(&self, state_dir: &Path) -> Result<(), StateError> {
        let file = Self::path(state_dir);
        let io = |source| StateError::Io {
            file: file.clone(),
            source,
        };
        fs::create_dir_all(state_dir).map_err(io)?;
        let text = serde_json::to_string_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        crate::atomic_file::write(&file, text.as_bytes()).map_err(io)
    }

    pub fn mode(&self, key: &str) -> Option<Mode> {
        self.modes.get(key).and_then(|m| m.parse().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyKey;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tetragond-state-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn round_trips_and_absent_is_empty() {
        let dir = temp_dir("rt");
        assert_eq!(
            RuntimeState::load(&dir).expect("absent is fine"),
            RuntimeState::default()
        );
        let mut s = RuntimeState::default();
        s.modes
            .insert(PolicyKey::new("", "p").runtime_key(), "monitor".into());
        s.enabled
            .insert(PolicyKey::new("ns", "q").runtime_key(), false);
        s.save(&dir).expect("save");
        let back = RuntimeState::load(&dir).expect("load");
        assert_eq!(back, s);
        assert_eq!(back.mode("/p"), Some(Mode::Monitor));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn corrupt_file_is_an_error() {
        let dir = temp_dir("bad");
        fs::create_dir_all(&dir).expect("dir");
        fs::write(RuntimeState::path(&dir), "{ nope").expect("write");
        assert!(matches!(
            RuntimeState::load(&dir),
            Err(StateError::Corrupt { .. })
        ));
        let _ = fs::remove_dir_all(&dir);
    }
}
