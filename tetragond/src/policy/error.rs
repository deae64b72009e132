//! Errors of the policy language. Each one names the place to fix: a file,
//! a line and a column, so `FILE:LINE:COL: MESSAGE` can be acted on directly.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A problem at a known place of a file (YAML policy or TOML sidecar).
    #[error("{}:{line}:{column}: {message}", file.display())]
    Located {
        file: PathBuf,
        /// 1-based.
        line: usize,
        /// 1-based, in characters.
        column: usize,
        message: String,
    },
    /// A problem in a policy that did not come from a file (built in code).
    #[error("{message}")]
    Invalid { message: String },
    /// The file could not be read.
    #[error("{}: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl PolicyError {
    pub fn located(file: &Path, line: usize, column: usize, message: impl Into<String>) -> Self {
        PolicyError::Located {
            file: file.to_path_buf(),
            line: line.max(1),
            column: column.max(1),
            message: message.into(),
        }
    }

    pub fn io(file: &Path, source: std::io::Error) -> Self {
        PolicyError::Io {
            file: file.to_path_buf(),
            source,
        }
    }

    /// The message without the location prefix.
    pub fn message(&self) -> String {
        match self {
            PolicyError::Located { message, .. } | PolicyError::Invalid { message } => {
                message.clone()
            }
            PolicyError::Io { source, .. } => source.to_string(),
        }
    }

    pub fn file(&self) -> Option<&Path> {
        match self {
            PolicyError::Located { file, .. } | PolicyError::Io { file, .. } => Some(file),
            PolicyError::Invalid { .. } => None,
        }
    }

    /// `LINE:COL: MESSAGE` (the message alone without a position): the
    /// error of a text that came without its file's name (AddPolicy,
    /// CheckPolicy), for the caller to put its file in front
    /// ([`in_file`]).
    pub fn without_file(&self) -> String {
        match self.position() {
            Some((line, column)) => format!("{line}:{column}: {}", self.message()),
            None => self.message(),
        }
    }

    /// `(line, column)`, both 1-based, when the error has a position.
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            PolicyError::Located { line, column, .. } => Some((*line, *column)),
            _ => None,
        }
    }
}

/// `FILE:LINE:COL: MESSAGE` from a reason [`PolicyError::without_file`]
/// gave (`FILE: MESSAGE` when it has no position).
pub fn in_file(file: &Path, reason: &str) -> String {
    let mut parts = reason.splitn(3, ':');
    let number =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if number(parts.next()) && number(parts.next()) {
        format!("{}:{reason}", file.display())
    } else {
        format!("{}: {reason}", file.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_without_its_file_gets_it_back() {
        let e = PolicyError::located(Path::new("/probe.yaml"), 4, 3, "bad: thing");
        assert_eq!(e.without_file(), "4:3: bad: thing");
        let file = Path::new("mine.yaml");
        assert_eq!(
            in_file(file, &e.without_file()),
            "mine.yaml:4:3: bad: thing"
        );
        assert_eq!(in_file(file, "no place: here"), "mine.yaml: no place: here");
    }

    #[test]
    fn located_display_is_file_line_column_message() {
        let e = PolicyError::located(Path::new("/etc/policies.d/x.yaml"), 12, 7, "boom");
        assert_eq!(e.to_string(), "/etc/policies.d/x.yaml:12:7: boom");
        assert_eq!(e.position(), Some((12, 7)));
        assert_eq!(e.message(), "boom");
        assert_eq!(e.file(), Some(Path::new("/etc/policies.d/x.yaml")));
    }

    #[test]
    fn positions_are_never_zero() {
        let e = PolicyError::located(Path::new("x.yaml"), 0, 0, "m");
        assert_eq!(e.to_string(), "x.yaml:1:1: m");
    }

    #[test]
    fn io_display_names_the_file() {
        let e = PolicyError::io(
            Path::new("/nope.yaml"),
            std::io::Error::new(std::io::ErrorKind::NotFound, "not there"),
        );
        assert_eq!(e.to_string(), "/nope.yaml: not there");
        assert!(e.position().is_none());
    }
}
