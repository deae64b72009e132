//! The daemon's configuration file (`/etc/tetragond/tetragond.toml`).
//! Every key is optional; command-line flags override it. Unknown keys are
//! errors that name the file, line and column.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub policy_dir: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub events_file: Option<PathBuf>,
    /// `system`, `session` or a D-Bus address.
    pub bus: Option<String>,
    /// A tracing filter such as `info` or `tetragond=debug`.
    pub log_level: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {source}")]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        file: path.into(),
        source,
    })?;
    parse(path, &text)
}

pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        ConfigError::Invalid {
            file: path.into(),
            line,
            column,
            message: e.message().to_string(),
        }
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_known_keys() {
        let c = parse(
            Path::new("t.toml"),
            "policy_dir = \"/p\"\nbus = \"session\"\n",
        )
        .expect("valid");
        assert_eq!(c.policy_dir.as_deref(), Some(Path::new("/p")));
        assert_eq!(c.bus.as_deref(), Some("session"));
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let err = parse(
            Path::new("/etc/tetragond/tetragond.toml"),
            "bus = \"system\"\npolicy_folder = \"/x\"\n",
        )
        .expect_err("unknown key");
        let text = err.to_string();
        assert!(
            text.starts_with("/etc/tetragond/tetragond.toml:2:1: unknown field `policy_folder`"),
            "{text}"
        );
    }
}
