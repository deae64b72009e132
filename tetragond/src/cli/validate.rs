//! `tetra tracingpolicy validate`: checks policy files with the parser and
//! the compile step the daemon runs, so a file that passes here loads
//! there. The compile runs in the daemon (CheckPolicy, against the running
//! kernel) or, with `--kernel`, here against a stated set of features, for
//! linting a policy meant for another machine.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use super::Outcome;
use crate::compile::{self, Tracefs};
use crate::dbus::ManagerProxy;
use crate::kernel_info::{btf::KernelBtf, probe};
use crate::policy::{error::in_file, load_policy_file, load_sidecar};

/// The kernel features `--kernel` may name: those `tetra status` lists
/// that decide how a policy compiles.
pub const KERNEL_FEATURES: [&str; 10] = [
    "kprobes",
    "bpf_trampolines",
    "trampoline_cookies",
    "bpf_lsm_programs",
    "bpf_lsm_active",
    "attach_cookie",
    "bpf_probe_write_user",
    "uprobe_regs",
    "ima_file_hash",
    "xattr_discard_one",
];

/// Where the compile runs.
pub enum Compiler<'a> {
    /// The daemon, over the bus; `Err` says why it cannot be reached.
    Daemon(Result<&'a ManagerProxy<'a>, String>),
    /// Here, against stated features and this machine's tracefs formats.
    Offline(Tracefs),
}

impl Compiler<'_> {
    /// Compiles for the kernel `spec` states: `all`, or a comma-separated
    /// list of [`KERNEL_FEATURES`].
    pub fn offline(spec: &str) -> Result<Self, String> {
        let named: Vec<&str> = match spec.trim() {
            "all" => KERNEL_FEATURES.to_vec(),
            list => list
                .split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .collect(),
        };
        let mut features = Vec::new();
        for name in named {
            let known = KERNEL_FEATURES
                .iter()
                .find(|f| **f == name)
                .ok_or_else(|| {
                    format!(
                        "unknown kernel feature {name:?} (known: all, {})",
                        KERNEL_FEATURES.join(", ")
                    )
                })?;
            features.push((*known, true));
        }
        // As the daemon would, where this runs as root; else a tracepoint
        // policy is refused naming the missing mount.
        crate::sensors::mounts::ensure_tracefs();
        Ok(Compiler::Offline(Tracefs {
            caps: probe::hook_caps(&features),
            btf: KernelBtf::from_sys_fs().ok().map(Arc::new),
            functions: None,
        }))
    }

    async fn compile(&self, file: &Path) -> Result<(), String> {
        match self {
            Compiler::Offline(kernel) => {
                let tp = load_policy_file(file).map_err(|e| e.without_file())?;
                let yaml = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
                compile::compile(&tp, kernel)
                    .map(drop)
                    .map_err(|e| compile::located(&e, &tp, file, &yaml).without_file())
            }
            Compiler::Daemon(Err(why)) => Err(format!(
                "not compiled: {why}; --kernel all (or a list of features) compiles here"
            )),
            Compiler::Daemon(Ok(proxy)) => {
                let yaml = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
                proxy
                    .check_policy(&yaml)
                    .await
                    .map_err(|e| super::daemon_message(&e))
            }
        }
    }
}

/// Checks every file (and the TOML sidecar next to it, if any, since the
/// daemon reads both), then compiles it with `compiler`, printing
/// `FILE: ok` to `out` for a good one and each error to `err` as
/// `FILE:LINE:COL: message` (`FILE: message` when it has no place). Fails
/// (exit 1) if any file has an error.
pub async fn validate_files(
    files: &[impl AsRef<Path>],
    compiler: &Compiler<'_>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<Outcome> {
    let mut outcome = Outcome::Success;
    for file in files {
        let file = file.as_ref();
        let mut errors = check_file(file);
        if errors.is_empty() {
            if let Err(why) = compiler.compile(file).await {
                errors.push(in_file(file, &why));
            }
        }
        if errors.is_empty() {
            writeln!(out, "{}: ok", file.display())?;
        } else {
            outcome = Outcome::Failure;
        }
        for error in errors {
            writeln!(err, "{error}")?;
        }
    }
    Ok(outcome)
}

/// Every error of a policy file and of its sidecar; PolicyError's Display
/// is already `FILE:LINE:COL: message`.
fn check_file(file: &Path) -> Vec<String> {
    let policy = load_policy_file(file).err();
    let sidecar = load_sidecar(file).err();
    policy
        .into_iter()
        .chain(sidecar)
        .map(|e| e.to_string())
        .collect()
}
