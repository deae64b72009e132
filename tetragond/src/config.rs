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
    /// Prometheus metrics on this address (`127.0.0.1:2112`); none when unset.
    pub metrics_address: Option<std::net::SocketAddr>,
    #[serde(default)]
    pub export: ExportSection,
    /// `auto` (kprobes first), `kprobe` or `fentry`: the program family
    /// serving kernel-function kprobes where the kernel has both.
    pub kernel_functions: Option<crate::kernel_info::KernelFunctions>,
    /// Largest policy or sidecar file read, in bytes (default 1 MiB).
    pub max_policy_file_size: Option<u64>,
    /// Where DnsLookup actions send their queries (Tetragon's 1.1.1.1:53).
    pub dns_lookup_server: Option<std::net::SocketAddr>,
    /// TracingPolicyNamespaced namespaces -> cgroup v2 directories.
    #[serde(default)]
    pub namespaces: std::collections::BTreeMap<String, Vec<PathBuf>>,
}

/// The `[export]` table: where and how events are written.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportSection {
    /// The events file (the top-level `events_file` is the older spelling).
    pub file: Option<PathBuf>,
    /// Rotate when the file would grow past this; 0 never rotates.
    pub max_size_bytes: Option<u64>,
    /// Rotated files kept (`events.log.1` ... `events.log.N`).
    pub backups: Option<u32>,
    /// gzip rotated files (`events.log.1.gz`).
    pub compress: Option<bool>,
    /// Events per minute, all events together; 0 or unset: unlimited.
    pub rate_limit_per_minute: Option<u64>,
    /// Events per minute of each policy; 0 or unset: unlimited.
    pub policy_rate_limit_per_minute: Option<u64>,
    /// `policy` (default), `all` or `none`: which process_exec/exit to export.
    pub process_events: Option<crate::export::ProcessEvents>,
    /// Processes the process cache holds at most.
    pub process_cache_size: Option<usize>,
    /// Process objects carry `cap` and `process_credentials` (Tetragon's
    /// `--enable-process-cred`).
    pub enable_process_cred: Option<bool>,
    /// Process objects carry `ns` (Tetragon's `--enable-process-ns`).
    pub enable_process_ns: Option<bool>,
    /// Events that carry `ancestors`, by Tetragon's `--enable-ancestors`
    /// names: `base` (process_exec and process_exit), `kprobe`,
    /// `tracepoint`, `uprobe`, `lsm`; `base` is needed with any other.
    pub enable_ancestors: Option<crate::export::AncestorEvents>,
    /// The live stream's Unix socket; an empty path turns it off.
    pub socket: Option<PathBuf>,
    /// Aggregation: within this many milliseconds of a posted event, the
    /// kernel keeps back identical ones (same hook, selector, process and
    /// argument values) of a selector without a Post `rateLimit`, and the
    /// next one posted says how many (`repeats`). 0 or unset: off.
    pub aggregate_window_ms: Option<u64>,
    /// Bytes of the kernel's event ring buffer. Unset: 1 MiB per CPU,
    /// 2 MiB to 32 MiB.
    pub ring_buffer_size: Option<RingBufferSize>,
}

/// `[export] ring_buffer_size`: a power of two from 64 KiB to 1 GiB, as
/// the kernel takes a ring buffer's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct RingBufferSize(pub u32);

impl TryFrom<u64> for RingBufferSize {
    type Error = String;

    fn try_from(bytes: u64) -> Result<Self, String> {
        let range = crate::sensors::ring_size::RING_BYTES;
        match u32::try_from(bytes) {
            Ok(b) if range.contains(&bytes) && b.is_power_of_two() => Ok(Self(b)),
            _ => Err(format!(
                "ring_buffer_size {bytes}: must be a power of two from {} (64 KiB) to {} (1 GiB)",
                range.start(),
                range.end()
            )),
        }
    }
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
            "policy_dir = \"/p\"\nbus = \"session\"\nkernel_functions = \"fentry\"\n",
        )
        .expect("valid");
        assert_eq!(
            c.kernel_functions,
            Some(crate::kernel_info::KernelFunctions::Fentry)
        );
        assert_eq!(c.policy_dir.as_deref(), Some(Path::new("/p")));
        assert_eq!(c.bus.as_deref(), Some("session"));
    }

    #[test]
    fn reads_the_export_table() {
        let c = parse(
            Path::new("t.toml"),
            "metrics_address = \"127.0.0.1:2112\"\n[export]\nfile = \"/e.log\"\nmax_size_bytes = 1000\nbackups = 2\ncompress = true\nrate_limit_per_minute = 60\npolicy_rate_limit_per_minute = 10\nprocess_events = \"all\"\nsocket = \"\"\n",
        )
        .expect("valid");
        assert_eq!(
            c.metrics_address,
            Some("127.0.0.1:2112".parse().expect("addr"))
        );
        assert_eq!(c.export.file.as_deref(), Some(Path::new("/e.log")));
        assert_eq!(c.export.backups, Some(2));
        assert_eq!(c.export.compress, Some(true));
        assert_eq!(
            c.export.process_events,
            Some(crate::export::ProcessEvents::All)
        );
        assert_eq!(c.export.socket.as_deref(), Some(Path::new("")));
    }

    #[test]
    fn ring_buffer_size_is_a_power_of_two_in_range() {
        let c = parse(
            Path::new("t.toml"),
            "[export]\nring_buffer_size = 4194304\n",
        )
        .expect("valid");
        assert_eq!(c.export.ring_buffer_size, Some(RingBufferSize(4 << 20)));
        for bad in ["3000000", "32768", "2147483648", "0"] {
            let text = format!("[export]\nring_buffer_size = {bad}\n");
            let err = parse(Path::new("t.toml"), &text).expect_err(bad);
            assert!(
                err.to_string().starts_with(&format!(
                    "t.toml:2:20: ring_buffer_size {bad}: must be a power of two"
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn enable_ancestors_takes_tetragons_names_with_base() {
        let c = parse(
            Path::new("t.toml"),
            "[export]\nenable_ancestors = [\"base\", \"tracepoint\"]\n",
        )
        .expect("valid");
        let a = c.export.enable_ancestors.expect("set");
        assert!(a.base && a.tracepoint && !a.kprobe && !a.uprobe && !a.lsm);
        for (list, message) in [
            (
                "[\"base\", \"fork\"]",
                "t.toml:2:20: enable_ancestors: unknown event type \"fork\"",
            ),
            (
                "[\"kprobe\"]",
                "t.toml:2:20: enable_ancestors: kprobe, tracepoint, uprobe, lsm and usdt need base",
            ),
            ("\"base\"", "t.toml:2:20: invalid type: string"),
        ] {
            let text = format!("[export]\nenable_ancestors = {list}\n");
            let err = parse(Path::new("t.toml"), &text).expect_err(list);
            assert!(err.to_string().starts_with(message), "{err}");
        }
    }

    #[test]
    fn unknown_export_key_names_line_and_column() {
        let err = parse(Path::new("t.toml"), "[export]\nmax_size = 1\n").expect_err("unknown");
        assert!(
            err.to_string()
                .starts_with("t.toml:2:1: unknown field `max_size`"),
            "{err}"
        );
        let err = parse(Path::new("t.toml"), "[export]\nprocess_events = \"some\"\n")
            .expect_err("bad value");
        assert!(err.to_string().starts_with("t.toml:2:18:"), "{err}");
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
