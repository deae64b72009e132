//! Errors of the kernel side: compiling a policy into maps, loading and
//! attaching programs. Each message says what to fix or what is missing.

use thiserror::Error;

use crate::policy::location::NodePath;

#[derive(Debug, Error)]
pub enum SensorError {
    #[error("tracepoint {0} does not exist on this kernel")]
    NoTracepoint(String),
    /// Tracepoints cannot be looked up: tracefs is not mounted (the
    /// daemon mounts it at start).
    #[error("tracefs is not mounted at {0}, so tracepoints cannot be looked up (tetragond mounts it when it starts; as root: mount -t tracefs tracefs {0})")]
    NoTracefs(&'static str),
    #[error("cannot parse tracepoint format {0}")]
    BadFormat(String),
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("loading the BPF object: {0}")]
    Load(String),
    #[error("kernel map {map}: {message}")]
    Map { map: &'static str, message: String },
    #[error("attaching to tracepoint {tracepoint}: {message}")]
    Attach { tracepoint: String, message: String },
    #[error("out of kernel slots: {0}")]
    Full(String),
    /// A hook this kernel cannot serve, and why.
    #[error("{0}")]
    Unsupported(String),
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CompileError {
    /// A hook or feature the kernel side does not serve (yet, or here).
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
    /// One of the above about the policy node at `path` (a hook, a
    /// selector), so it can be reported at its line and column.
    #[error("{error}")]
    At {
        path: NodePath,
        error: Box<CompileError>,
    },
}

impl CompileError {
    /// The error, placed at `prefix` followed by the path it has so far.
    pub fn within(self, prefix: NodePath) -> Self {
        match self {
            CompileError::At { path, error } => CompileError::At {
                path: prefix.join(&path),
                error,
            },
            error => CompileError::At {
                path: prefix,
                error: Box::new(error),
            },
        }
    }

    /// The policy node it is about, when known.
    pub fn node(&self) -> Option<&NodePath> {
        match self {
            CompileError::At { path, .. } => Some(path),
            _ => None,
        }
    }
}
