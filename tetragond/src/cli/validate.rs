//! `tetra tracingpolicy validate`: checks policy files offline, with the
//! same parser the daemon uses, so a file that passes here loads there.

use std::io::Write;
use std::path::Path;

use super::Outcome;
use crate::policy::{load_policy_file, load_sidecar, PolicyError};

/// Checks every file (and the TOML sidecar next to it, if any, since the
/// daemon reads both), printing `FILE: ok` to `out` for a good one and each
/// error to `err` as `FILE:LINE:COL: message`. Fails (exit 1) if any file
/// has an error.
pub fn validate_files(
    files: &[impl AsRef<Path>],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<Outcome> {
    let mut outcome = Outcome::Success;
    for file in files {
        let file = file.as_ref();
        let errors = check_file(file);
        if errors.is_empty() {
            writeln!(out, "{}: ok", file.display())?;
        } else {
            outcome = Outcome::Failure;
        }
        for error in errors {
            // PolicyError's Display is already `FILE:LINE:COL: message`.
            writeln!(err, "{error}")?;
        }
    }
    Ok(outcome)
}

/// Every error of a policy file and of its sidecar.
fn check_file(file: &Path) -> Vec<PolicyError> {
    let policy = load_policy_file(file).err();
    let sidecar = load_sidecar(file).err();
    policy.into_iter().chain(sidecar).collect()
}
