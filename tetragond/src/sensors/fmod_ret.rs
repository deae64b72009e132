//! fmod_ret programs, which aya 0.16 cannot load (it has no such program
//! type), loaded with the bpf(2) syscall directly. The program is a few
//! hand-written instructions: the decision is taken by the policy's fentry
//! program on the same function, which runs first in the trampoline and
//! leaves an enforced Override in `OVERRIDE_DECISION` under the thread and
//! the function's site (`OverrideKey`); this program takes it out and
//! returns its errno, so the function is skipped and fails with the
//! policy's errno.

use std::os::fd::{OwnedFd, RawFd};

use super::bpf_syscall::{bpf, insn, ProgLoad, BPF_PSEUDO_MAP_FD, HELPER_MAP_LOOKUP_ELEM};

/// The kernel's name of these fmod_ret programs (`bpftool prog`).
pub const PROGRAM_NAME: &str = "tetragond_ret";
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const BPF_PROG_TYPE_TRACING: u32 = 26;
const BPF_MODIFY_RETURN: u32 = 26;
const HELPER_MAP_DELETE_ELEM: i32 = 3;
const HELPER_GET_CURRENT_PID_TGID: i32 = 14;

/// `union bpf_attr` for BPF_RAW_TRACEPOINT_OPEN (no name: a tracing program).
#[repr(C)]
#[derive(Default)]
struct RawTracepointOpenAttr {
    name: u64,
    prog_fd: u32,
    _pad: u32,
}

/// The program: build the `OverrideKey` (this thread, `site`) at
/// `r10 - 16`; if `OVERRIDE_DECISION` holds it, delete it and return its
/// errno (sign extended), else return 0.
fn instructions(decision_map: RawFd, site: u32) -> Vec<u64> {
    let map = |dst| {
        [
            insn(0x18, dst, BPF_PSEUDO_MAP_FD, 0, decision_map), // ld_imm64 map
            insn(0, 0, 0, 0, 0),
        ]
    };
    let mut insns = vec![
        insn(0x85, 0, 0, 0, HELPER_GET_CURRENT_PID_TGID), // 0: call
        insn(0x7b, 10, 0, -16, 0),                        // 1: *(u64 *)(r10 - 16) = r0
        insn(0x62, 10, 0, -8, site as i32),               // 2: *(u32 *)(r10 - 8) = site
        insn(0x62, 10, 0, -4, 0),                         // 3: *(u32 *)(r10 - 4) = 0
        insn(0xbf, 2, 10, 0, 0),                          // 4: r2 = r10
        insn(0x07, 2, 0, 0, -16),                         // 5: r2 += -16
    ];
    insns.extend(map(1)); // 6-7: r1 = map
    insns.extend([
        insn(0x85, 0, 0, 0, HELPER_MAP_LOOKUP_ELEM), // 8: call
        insn(0x15, 0, 0, 10, 0),                     // 9: if r0 == 0 goto 20
        insn(0x61, 6, 0, 0, 0),                      // 10: r6 = *(u32 *)(r0 + 0)
        insn(0x67, 6, 0, 0, 32),                     // 11: r6 <<= 32
        insn(0xc7, 6, 0, 0, 32),                     // 12: r6 s>>= 32
        insn(0xbf, 2, 10, 0, 0),                     // 13: r2 = r10
        insn(0x07, 2, 0, 0, -16),                    // 14: r2 += -16
    ]);
    insns.extend(map(1)); // 15-16: r1 = map
    insns.extend([
        insn(0x85, 0, 0, 0, HELPER_MAP_DELETE_ELEM), // 17: call
        insn(0xbf, 0, 6, 0, 0),                      // 18: r0 = r6
        insn(0x95, 0, 0, 0, 0),                      // 19: exit
        insn(0xb7, 0, 0, 0, 0),                      // 20: r0 = 0
        insn(0x95, 0, 0, 0, 0),                      // 21: exit
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
/// vmlinux), whose fentry program runs for `site`, and attaches it.
pub fn attach(btf_id: u32, site: u32, decision_map: RawFd) -> Result<ModifyReturn, String> {
    let prog = ProgLoad {
        prog_type: BPF_PROG_TYPE_TRACING,
        expected_attach_type: BPF_MODIFY_RETURN,
        attach_btf_id: btf_id,
        name: PROGRAM_NAME,
    }
    .load(&instructions(decision_map, site))
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
        let p = instructions(7, 300);
        assert_eq!(p.len(), 22);
        assert_eq!(p[2] >> 32, 300, "the site in the key");
        assert_eq!(p[6] >> 32, 7, "the map descriptor in ld_imm64");
        assert_eq!(p[15] >> 32, 7, "the map descriptor in ld_imm64");
        // Both jumps land on `r0 = 0`.
        assert_eq!(9 + 1 + ((p[9] >> 16) & 0xffff) as usize, 20);
        assert_eq!(p[20] & 0xff, 0xb7);
    }
}
