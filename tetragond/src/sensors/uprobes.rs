//! Uprobe and USDT hooks: which program serves a hook, and its link to
//! the binary, the hook slot as the BPF cookie (the program finds the hook
//! by it).

use std::os::fd::{AsFd, AsRawFd};

use aya::{
    programs::{
        uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeScope},
        UProbe,
    },
    Ebpf,
};

use super::{
    bpf_syscall,
    object::log_verified,
    pin::{Held, Pins},
};
use crate::{
    compile::{UprobeLocation, UprobeTarget},
    error::SensorError,
};

/// The program serving `target`: the return probe's, the entry probe's,
/// for a hook with Set the one that may write user memory (see
/// `uprobe_dispatch_writing`), for one with Override the one that may
/// write the registers (`uprobe_dispatch_regs`); each loaded only then.
pub fn program_of(target: &UprobeTarget) -> &'static str {
    match target {
        UprobeTarget { ret: true, .. } => "uretprobe_dispatch",
        UprobeTarget { writes: true, .. } => "uprobe_dispatch_writing",
        UprobeTarget { regs: true, .. } => "uprobe_dispatch_regs",
        _ => "uprobe_dispatch",
    }
}

/// The uprobe program `name`, loaded (and verified) on first use.
pub fn loaded<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut UProbe, SensorError> {
    let prog: &mut UProbe = ebpf
        .program_mut(name)
        .ok_or_else(|| SensorError::Load(format!("program {name} missing from the BPF object")))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| SensorError::Load(format!("{name}: {e}")))?;
    if prog.fd().is_err() {
        prog.load()
            .map_err(|e| SensorError::Load(format!("{name}: {e:?}")))?;
        log_verified(name, prog.info().ok());
    }
    Ok(prog)
}

/// Links `prog` to `target` with `hook_slot` as the cookie, the link held
/// (pinned) in `pins`.
pub fn link(
    prog: &mut UProbe,
    pins: &Pins,
    target: &UprobeTarget,
    hook_slot: u32,
) -> Result<Held, SensorError> {
    let (binary, location) = (target.binary.as_str(), &target.location);
    let attach_err = |message: String| SensorError::Attach {
        tracepoint: format!("uprobe {binary}:{location}"),
        message,
    };
    // aya reads the binary to find a symbol, and the kernel looks the
    // path up: both are handed the file checked here, through
    // /proc/self/fd, so nothing put at the path can stall the attach.
    let file = crate::usdt::open_binary(std::path::Path::new(binary))
        .map_err(|e| attach_err(e.to_string()))?;
    let checked = format!("/proc/self/fd/{}", file.as_raw_fd());
    let kind = if target.ret { "uretprobe" } else { "uprobe" };
    let what = format!("{kind}-{hook_slot}-{binary}:{location}");
    let cookie = u64::from(hook_slot);
    match location {
        // A USDT probe with a semaphore: linked here, as aya cannot have
        // the kernel raise it.
        UprobeLocation::Offset(offset) if target.semaphore != 0 => {
            let prog_fd = prog.fd().map_err(|e| attach_err(e.to_string()))?;
            let path = std::ffi::CString::new(checked).map_err(|e| attach_err(e.to_string()))?;
            let link = bpf_syscall::uprobe_link(
                prog_fd.as_fd(),
                &path,
                *offset,
                target.semaphore,
                target.ret,
                cookie,
            )
            .map_err(|e| attach_err(format!("linking with its semaphore: {e}")))?;
            Ok(pins.hold_owned(&what, link))
        }
        _ => {
            let location = match location {
                UprobeLocation::Symbol(s) => UProbeAttachLocation::Symbol(s),
                UprobeLocation::Offset(o) => UProbeAttachLocation::AbsoluteOffset(*o),
            };
            let point = UProbeAttachPoint {
                location,
                cookie: Some(cookie),
            };
            let id = prog
                .attach([point], &checked, UProbeScope::AllProcesses)
                .map_err(|e| attach_err(e.to_string()))?;
            let link = prog.take_link(id).map_err(|e| attach_err(e.to_string()))?;
            Ok(pins.hold_uprobe(&what, link))
        }
    }
}
