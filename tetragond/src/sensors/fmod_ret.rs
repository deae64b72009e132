//! fmod_ret programs, which aya 0.16 cannot load (it has no such program
//! type), loaded with the bpf(2) syscall directly. The program is a few
//! hand-written instructions: the decision is taken by the policy's fentry
//! program on the same function, which runs first in the trampoline and
//! leaves an enforced Override in `OVERRIDE_DECISION`; this program returns
//! that errno for the task it was meant for (and clears it), so the
//! function is skipped and fails with the policy's errno.

use std::os::fd::{OwnedFd, RawFd};

use super::bpf_syscall::{bpf, insn, lookup_entry_zero, ProgLoad};

const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const BPF_PROG_TYPE_TRACING: u32 = 26;
const BPF_MODIFY_RETURN: u32 = 26;
const HELPER_GET_CURRENT_PID_TGID: i32 = 14;

/// `union bpf_attr` for BPF_RAW_TRACEPOINT_OPEN (no name: a tracing program).
#[repr(C)]
#[derive(Default)]
struct RawTracepointOpenAttr {
    name: u64,
    prog_fd: u32,
    _pad: u32,
}

/// The program: look up `OVERRIDE_DECISION[0]`; if it is for this task,
/// clear it and return its errno (sign extended), else return 0.
fn instructions(decision_map: RawFd) -> Vec<u64> {
    let mut insns = lookup_entry_zero(decision_map).to_vec(); // 0-5
    insns.extend([
        insn(0x15, 0, 0, 9, 0),                           // 6: if r0 == 0 goto 16
        insn(0xbf, 6, 0, 0, 0),                           // 7: r6 = r0
        insn(0x85, 0, 0, 0, HELPER_GET_CURRENT_PID_TGID), // 8: call
        insn(0x79, 1, 6, 0, 0),                           // 9: r1 = *(u64 *)(r6 + 0)
        insn(0x5d, 1, 0, 5, 0),                           // 10: if r1 != r0 goto 16
        insn(0x61, 0, 6, 8, 0),                           // 11: r0 = *(u32 *)(r6 + 8)
        insn(0x67, 0, 0, 0, 32),                          // 12: r0 <<= 32
        insn(0xc7, 0, 0, 0, 32),                          // 13: r0 s>>= 32
        insn(0x7a, 6, 0, 0, 0),                           // 14: *(u64 *)(r6 + 0) = 0
        insn(0x95, 0, 0, 0, 0),                           // 15: exit
        insn(0xb7, 0, 0, 0, 0),                           // 16: r0 = 0
        insn(0x95, 0, 0, 0, 0),                           // 17: exit
    ]);
    insns
}

/// A loaded and attached fmod_ret program: both descriptors close on drop,
/// which detaches and unloads it.
pub struct ModifyReturn {
    _link: OwnedFd,
    _prog: OwnedFd,
}

impl ModifyReturn {
    /// The BPF link, to pin it (see `pin.rs`).
    pub fn link(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self._link)
    }
}

/// Loads the program for kernel function `btf_id` (its BTF type id in
/// vmlinux) and attaches it.
pub fn attach(btf_id: u32, decision_map: RawFd) -> Result<ModifyReturn, String> {
    let prog = ProgLoad {
        prog_type: BPF_PROG_TYPE_TRACING,
        expected_attach_type: BPF_MODIFY_RETURN,
        attach_btf_id: btf_id,
        name: "tetragond_ret",
    }
    .load(&instructions(decision_map))
    .map_err(|e| format!("loading the fmod_ret program: {e}"))?;
    let mut open = RawTracepointOpenAttr {
        prog_fd: std::os::fd::AsRawFd::as_raw_fd(&prog) as u32,
        ..Default::default()
    };
    let link = bpf(
        BPF_RAW_TRACEPOINT_OPEN,
        (&mut open as *mut RawTracepointOpenAttr).cast(),
        std::mem::size_of::<RawTracepointOpenAttr>(),
    )
    .map_err(|e| format!("attaching the fmod_ret program: {e}"))?;
    Ok(ModifyReturn {
        _link: link,
        _prog: prog,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_encode_as_the_kernel_reads_them() {
        // `r1 = *(u64 *)(r6 + 0)`: code 0x79, dst 1, src 6.
        assert_eq!(insn(0x79, 1, 6, 0, 0), 0x6179);
        // `r2 += -4`: the immediate in the high 32 bits, two's complement.
        assert_eq!(insn(0x07, 2, 0, 0, -4) >> 32, 0xffff_fffc);
        // A jump offset in bits 16..32.
        assert_eq!((insn(0x15, 0, 0, 9, 0) >> 16) & 0xffff, 9);
        let p = instructions(7);
        assert_eq!(p.len(), 18);
        assert_eq!(p[3] >> 32, 7, "the map descriptor in ld_imm64");
    }
}
