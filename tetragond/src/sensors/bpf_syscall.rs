//! The few bpf(2) commands aya 0.16 does not offer, made directly: loading
//! an fmod_ret program (see `fmod_ret.rs`) and linking a trampoline or LSM
//! program with a BPF cookie.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

const BPF_LINK_CREATE: libc::c_long = 28;

/// The attach types of the trampoline programs linked with a cookie.
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
pub enum TrampolineAttach {
    Fentry = 24,
    Fexit = 25,
    Lsm = 27,
}

/// `union bpf_attr` for BPF_LINK_CREATE of a tracing or LSM program
/// (`link_create.tracing`, Linux 5.19).
#[repr(C)]
#[derive(Default)]
struct TracingLinkAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    /// 0: the target the program was loaded for.
    target_btf_id: u32,
    _pad: u32,
    cookie: u64,
}

/// bpf(2) with `attr` of `size` bytes; the descriptor it returns.
pub fn bpf(cmd: libc::c_long, attr: *mut libc::c_void, size: usize) -> std::io::Result<OwnedFd> {
    // SAFETY: attr points at a live, zero-padded bpf_attr of `size` bytes.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr, size) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor the kernel just returned, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Links the loaded trampoline or LSM program `prog` to the target it was
/// loaded for, with `cookie` for `bpf_get_attach_cookie`.
pub fn link_with_cookie(
    prog: BorrowedFd<'_>,
    attach: TrampolineAttach,
    cookie: u64,
) -> std::io::Result<OwnedFd> {
    let mut attr = TracingLinkAttr {
        prog_fd: prog.as_raw_fd() as u32,
        attach_type: attach as u32,
        cookie,
        ..Default::default()
    };
    bpf(
        BPF_LINK_CREATE,
        (&mut attr as *mut TracingLinkAttr).cast(),
        std::mem::size_of::<TracingLinkAttr>(),
    )
}

#[cfg(test)]
mod tests {
    use super::TracingLinkAttr;

    #[test]
    fn the_cookie_sits_where_the_kernel_reads_link_create_tracing_cookie() {
        // prog_fd, target_fd, attach_type, flags, then the union: tracing
        // is { u32 target_btf_id; aligned u64 cookie }.
        assert_eq!(std::mem::offset_of!(TracingLinkAttr, target_btf_id), 16);
        assert_eq!(std::mem::offset_of!(TracingLinkAttr, cookie), 24);
    }
}
