//! The control API shared by the daemon, its D-Bus server and the `tetra` CLI.
//!
//! The D-Bus layer turns each method call into a [`Request`] sent to the
//! daemon's main loop, which owns the policy store and answers on a oneshot
//! channel. That keeps all state changes on one task, in order.

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use zbus::zvariant::Type;

use crate::policy::PolicyKey;

pub const BUS_NAME: &str = "org.tetragond.Tetragond1";
pub const OBJECT_PATH: &str = "/org/tetragond/Tetragond1";
pub const MANAGER_INTERFACE: &str = "org.tetragond.Tetragond1.Manager";
pub const ERROR_PREFIX: &str = "org.tetragond.Tetragond1.Error";

/// One row of `tetra tracingpolicy list`, as sent over D-Bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct PolicyInfo {
    pub id: u64,
    pub name: String,
    /// Empty for a global `TracingPolicy`.
    pub namespace: String,
    /// `static` for policies from the policy folder.
    pub domain: String,
    /// `enabled`, `disabled`, `load_error`, ...
    pub state: String,
    pub filter_id: u64,
    /// `generic_tracepoint`, ...
    pub sensors: Vec<String>,
    /// Bytes the kernel holds for the policy's programs and maps.
    pub kernel_memory: u64,
    /// `enforce`, `monitor`, `monitor_only`, or `unknown` when not loaded.
    pub mode: String,
    /// `policy`, `sidecar` or `runtime`.
    pub mode_source: String,
    pub npost: u64,
    pub nenforce: u64,
    pub nmonitor: u64,
    /// Events a Post `rateLimit` kept from being posted.
    pub nratelimited: u64,
    /// Load error text, empty when none.
    pub error: String,
    /// The YAML file the policy came from.
    pub file: String,
}

/// Errors the API returns; each maps to a D-Bus error name
/// `org.tetragond.Tetragond1.Error.<Variant>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidMode(String),
    #[error("{0}")]
    MonitorOnly(String),
    #[error("{0}")]
    InvalidPolicy(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    Failed(String),
}

impl ApiError {
    /// The last component of the D-Bus error name.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::NotFound(_) => "NotFound",
            ApiError::InvalidMode(_) => "InvalidMode",
            ApiError::MonitorOnly(_) => "MonitorOnly",
            ApiError::InvalidPolicy(_) => "InvalidPolicy",
            ApiError::AlreadyExists(_) => "AlreadyExists",
            ApiError::AccessDenied(_) => "AccessDenied",
            ApiError::Failed(_) => "Failed",
        }
    }
}

pub type Reply<T> = oneshot::Sender<Result<T, ApiError>>;

/// A request from the D-Bus layer to the daemon's main loop.
#[derive(Debug)]
pub enum Request {
    ListPolicies(Reply<Vec<PolicyInfo>>),
    SetMode {
        key: PolicyKey,
        mode: String,
        reply: Reply<()>,
    },
    /// Validates `yaml`, then writes it (and a sidecar when `mode` is not
    /// empty) into the policy folder. Returns the file path written.
    AddPolicy {
        yaml: String,
        mode: String,
        reply: Reply<String>,
    },
    /// Runs on `yaml` the parse and the compile a load runs, against the
    /// running kernel; writes nothing.
    CheckPolicy {
        yaml: String,
        reply: Reply<()>,
    },
    /// Removes the policy's file (and sidecar) from the policy folder.
    DeletePolicy {
        key: PolicyKey,
        reply: Reply<()>,
    },
    /// Rescans the policy folder; returns a one-line summary.
    Reload(Reply<String>),
    GetPolicy {
        key: PolicyKey,
        reply: Reply<PolicyInfo>,
    },
    /// Drops the run-time mode (the sidecar's or the policy's applies again).
    ResetMode {
        key: PolicyKey,
        reply: Reply<()>,
    },
    /// Enables or disables a policy at run time (stored, survives restarts).
    SetEnabled {
        key: PolicyKey,
        enabled: bool,
        reply: Reply<()>,
    },
    /// Daemon-wide facts for the Manager's properties.
    Status(Reply<DaemonStatus>),
}

/// What the Manager object's properties show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct DaemonStatus {
    pub version: String,
    pub policy_directory: String,
    /// `name=yes|no` facts about the running kernel.
    pub kernel_features: Vec<String>,
    pub enabled: u32,
    pub load_errors: u32,
    pub disabled: u32,
    /// Why the policy folder cannot be read (nothing changes until it can);
    /// empty when it can.
    pub policy_directory_error: String,
    /// Bytes the kernel charges for the daemon's programs and maps, shared
    /// by every policy (each policy's own share is its `kernel_memory`).
    pub kernel_memory: u64,
}
