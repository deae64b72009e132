//! Small facts about the loaded BPF object that every kernel-facing file
//! of `sensors` needs: map errors, taking a map out of the object, the
//! verifier's work per program, and paths as the kernel keys them.

use tetragond_ebpf::{ExePath, PATH_LEN};

use crate::error::SensorError;

pub(super) fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> SensorError {
    move |e| SensorError::Map {
        map,
        message: e.to_string(),
    }
}

/// As `map_err`, but a full map (E2BIG) is `Full`, naming the limit.
pub(super) fn map_full(
    map: &'static str,
    limit: u32,
    what: &'static str,
) -> impl Fn(aya::maps::MapError) -> SensorError {
    move |e| match &e {
        aya::maps::MapError::SyscallError(s) if s.io_error.raw_os_error() == Some(libc::E2BIG) => {
            SensorError::Full(format!("at most {limit} {what} ({map})"))
        }
        _ => map_err(map)(e),
    }
}

/// Map `name` as taken out of the object (`Ebpf::take_map`), whatever its
/// type, or the error saying it is missing.
pub(super) fn taken(
    map: Option<aya::maps::Map>,
    name: &'static str,
) -> Result<aya::maps::Map, SensorError> {
    map.ok_or_else(|| SensorError::Map {
        map: name,
        message: "missing from the BPF object".into(),
    })
}

/// Takes map `$name` out of the object as a `$kind` (or returns the error).
macro_rules! take {
    ($ebpf:expr, $kind:ident, $name:literal) => {
        $kind::try_from($crate::sensors::object::taken(
            $ebpf.take_map($name),
            $name,
        )?)
        .map_err(map_err($name))?
    };
}
pub(super) use take;

/// How much work the verifier did: the headroom left under its limit of a
/// million instructions is worth watching as programs grow.
pub(super) fn log_verified(name: &str, info: Option<aya::programs::ProgramInfo>) {
    match info.and_then(|i| i.verified_instruction_count()) {
        Some(n) => tracing::info!("program {name} verified ({n} instructions processed)"),
        // aya keeps no verifier log of a program that loads.
        None => tracing::info!(
            "program {name} verified (this kernel does not report the count: verified_insns came in Linux 5.16)"
        ),
    }
}

/// A path as the kernel stores it: NUL padded; None when too long.
pub fn exe_path(path: &str) -> Option<ExePath> {
    let bytes = path.as_bytes();
    if bytes.len() >= PATH_LEN {
        return None;
    }
    let mut out = ExePath::default();
    out.bytes[..bytes.len()].copy_from_slice(bytes);
    Some(out)
}
