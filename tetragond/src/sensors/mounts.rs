//! The pseudo file systems the programs need. On a minimal system (or this
//! VM) they are not mounted at boot: tracepoint attach needs tracefs.

use std::{ffi::CString, path::Path};

type Mount = (&'static str, &'static str, &'static str);

const TRACEFS: Mount = ("tracefs", crate::kernel_info::tracefs::TRACEFS, "tracefs");

const MOUNTS: &[Mount] = &[
    TRACEFS,
    ("bpf", "/sys/fs/bpf", "bpf"),
    ("securityfs", "/sys/kernel/security", "securityfs"),
];

pub fn ensure_mounted() {
    ensure(MOUNTS);
}

/// Tracefs alone: what a compile outside the daemon (`tetra tp validate
/// --kernel`) reads tracepoint formats from, as the daemon would.
pub fn ensure_tracefs() {
    ensure(&[TRACEFS]);
}

fn ensure(mounts: &[Mount]) {
    for (source, target, fstype) in mounts {
        if is_mounted(target, fstype) {
            continue;
        }
        match mount(source, target, fstype) {
            Ok(()) => tracing::info!("mounted {fstype} on {target}"),
            Err(e) => tracing::warn!("cannot mount {fstype} on {target}: {e}"),
        }
    }
}

/// By type, not just by path: a sandboxed service (ProtectKernelTunables=)
/// sees a read-only sysfs bind mount at /sys/kernel/tracing, not tracefs.
fn is_mounted(target: &str, fstype: &str) -> bool {
    std::fs::read_to_string("/proc/self/mounts")
        .map(|m| {
            m.lines().any(|l| {
                let mut fields = l.split_whitespace().skip(1);
                fields.next() == Some(target) && fields.next() == Some(fstype)
            })
        })
        .unwrap_or(false)
}

fn mount(source: &str, target: &str, fstype: &str) -> std::io::Result<()> {
    if !Path::new(target).exists() {
        std::fs::create_dir_all(target)?;
    }
    let c = |s: &str| CString::new(s).map_err(std::io::Error::other);
    let (source, target, fstype) = (c(source)?, c(target)?, c(fstype)?);
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
