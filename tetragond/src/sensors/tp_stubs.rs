//! Tracepoints where links carry no BPF cookie (before Linux 5.15): a
//! program cannot learn which tracepoint ran it (the kernel overwrites the
//! record's common fields), so each tracepoint needs an entry point of its
//! own. Numbered programs in the object would cost every kernel about
//! 340 kB of daemon memory each (aya links each one's whole call graph,
//! measured), so each tracepoint instead gets a stub made here at run
//! time: a dozen instructions that write the tracepoint's site to
//! `STUB_SITE` and tail-call `tp_generic_from_stub` (`STUB_TARGET[0]`),
//! which dispatches it as `tp_generic_any` does by cookie. Tail calls
//! between tracepoint programs are allowed on every kernel (unlike between
//! trampoline or LSM programs of different hooks, which kernels with the
//! fix for CVE-2024-50063 refuse).

use std::os::fd::{OwnedFd, RawFd};

use super::bpf_syscall::{insn, lookup_entry_zero, ProgLoad, BPF_PSEUDO_MAP_FD};

/// The kernel's name of these tracepoint stubs (`bpftool prog`).
pub const PROGRAM_NAME: &str = "tetragond_tp";
const BPF_PROG_TYPE_TRACEPOINT: u32 = 5;
const HELPER_TAIL_CALL: i32 = 12;

/// The stub of `site`: `STUB_SITE[0] = site` (this CPU's entry), then a
/// tail call to `STUB_TARGET[0]`; 0 when either is missing (the tail call
/// fails only when the target is not in place, which the daemon ensures
/// before attaching any stub).
fn instructions(site: u32, site_map: RawFd, target_map: RawFd) -> Vec<u64> {
    let mut insns = vec![insn(0xbf, 6, 1, 0, 0)]; // 0: r6 = r1 (the context)
    insns.extend(lookup_entry_zero(site_map)); // 1-6: r0 = &STUB_SITE[0]
    insns.extend([
        insn(0x15, 0, 0, 6, 0),                          // 7: if r0 == 0 goto 14
        insn(0x62, 0, 0, 0, site as i32),                // 8: *(u32 *)(r0 + 0) = site
        insn(0xbf, 1, 6, 0, 0),                          // 9: r1 = r6
        insn(0x18, 2, BPF_PSEUDO_MAP_FD, 0, target_map), // 10: r2 = STUB_TARGET (ld_imm64)
        insn(0, 0, 0, 0, 0),                             // 11
        insn(0xb7, 3, 0, 0, 0),                          // 12: r3 = 0
        insn(0x85, 0, 0, 0, HELPER_TAIL_CALL),           // 13: call (returns only on failure)
        insn(0xb7, 0, 0, 0, 0),                          // 14: r0 = 0
        insn(0x95, 0, 0, 0, 0),                          // 15: exit
    ]);
    insns
}

/// Loads the stub of `site`, given the descriptors of `STUB_SITE` and
/// `STUB_TARGET`.
pub fn load(site: u32, site_map: RawFd, target_map: RawFd) -> Result<OwnedFd, String> {
    ProgLoad {
        prog_type: BPF_PROG_TYPE_TRACEPOINT,
        expected_attach_type: 0,
        attach_btf_id: 0,
        name: PROGRAM_NAME,
    }
    .load(&instructions(site, site_map, target_map))
    .map_err(|e| format!("loading the stub of site {site}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stub_writes_its_site_and_tail_calls_entry_zero() {
        let p = instructions(0x3_0007, 7, 9);
        assert_eq!(p.len(), 16);
        assert_eq!(p[4] >> 32, 7, "STUB_SITE in the first ld_imm64");
        assert_eq!(p[10] >> 32, 9, "STUB_TARGET in the second");
        assert_eq!(p[8] >> 32, 0x3_0007, "the site stored");
        assert_eq!(p[13] >> 32, HELPER_TAIL_CALL as u64);
        // The null check jumps to `r0 = 0` (7 + 1 + 6 = 14).
        assert_eq!((p[7] >> 16) & 0xffff, 6);
        assert_eq!(p[14], insn(0xb7, 0, 0, 0, 0));
    }
}
