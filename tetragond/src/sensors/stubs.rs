//! Entry points where links carry no BPF cookie: tracepoints and kprobes
//! before Linux 5.15, raw tracepoints before 6.10. A program cannot learn
//! which tracepoint ran it (the kernel overwrites the record's common
//! fields), which function returned (a kretprobe), which of the functions
//! sharing a name it probes, or which raw tracepoint it is on, so each
//! needs an entry point of its own. Numbered programs in the object would
//! cost every kernel about 340 kB of daemon memory each (aya links each
//! one's whole call graph, measured), so each instead gets a stub made
//! here at run time: a few dozen instructions that push the site on
//! `STUB_SITE` and tail-call the program serving its kind
//! (`tp_generic_from_stub`, `kprobe_from_stub`, `raw_tp_from_stub`),
//! which pops it and dispatches it as the cookie programs do. Tail calls
//! between tracepoint programs, between kprobe programs and between plain
//! raw tracepoint programs are allowed on every kernel (unlike between
//! trampoline, LSM or BTF-typed tracepoint programs of different hooks,
//! which kernels with the fix for CVE-2024-50063 refuse).

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use aya::{
    maps::{Map, ProgramArray},
    programs::ProgramFd,
    Ebpf,
};

use super::{
    bpf_syscall::{insn, lookup_entry_zero, ProgLoad, BPF_PSEUDO_MAP_FD},
    object::map_err,
};
use crate::error::SensorError;
use tetragond_ebpf::{StubSites, STUB_DEPTH};

const BPF_PROG_TYPE_KPROBE: u32 = 2;
const BPF_PROG_TYPE_TRACEPOINT: u32 = 5;
const BPF_PROG_TYPE_RAW_TRACEPOINT: u32 = 17;
const HELPER_TAIL_CALL: i32 = 12;

/// What a stub is attached to: its program type, and the program its
/// tail call enters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StubKind {
    Tracepoint,
    /// A kprobe or a kretprobe (one program type).
    Kprobe,
    /// A raw tracepoint: a plain raw tracepoint program (tail calls
    /// between BTF-typed ones of different tracepoints are refused).
    RawTracepoint,
}

impl StubKind {
    pub const ALL: [StubKind; 3] = [
        StubKind::Tracepoint,
        StubKind::Kprobe,
        StubKind::RawTracepoint,
    ];

    /// The kernel's name of these stubs (`bpftool prog`).
    pub fn program_name(self) -> &'static str {
        match self {
            StubKind::Tracepoint => "tetragond_tp",
            StubKind::Kprobe => "tetragond_kp",
            StubKind::RawTracepoint => "tetragond_raw",
        }
    }

    fn prog_type(self) -> u32 {
        match self {
            StubKind::Tracepoint => BPF_PROG_TYPE_TRACEPOINT,
            StubKind::Kprobe => BPF_PROG_TYPE_KPROBE,
            StubKind::RawTracepoint => BPF_PROG_TYPE_RAW_TRACEPOINT,
        }
    }

    /// The object's program the stubs enter.
    pub const fn target_program(self) -> &'static str {
        match self {
            StubKind::Tracepoint => "tp_generic_from_stub",
            StubKind::Kprobe => "kprobe_from_stub",
            StubKind::RawTracepoint => "raw_tp_from_stub",
        }
    }

    /// The program array holding it (at entry 0).
    const fn target_array(self) -> &'static str {
        match self {
            StubKind::Tracepoint => "STUB_TARGET",
            StubKind::Kprobe => "KPROBE_STUB_TARGET",
            StubKind::RawTracepoint => "RAW_TP_STUB_TARGET",
        }
    }
}

/// The map every stub writes its site to.
pub const STUB_SITE: &str = "STUB_SITE";

/// The stub of `site`: pushes `site` on this CPU's `STUB_SITE[0]` (a
/// `StubSites`), then tail-calls `target_map[0]`, which pops it; when the
/// tail call fails (only when the target is not in place, which the
/// daemon ensures before attaching any stub) it pops it itself. Returns 0;
/// does nothing when the stack is full (nested deeper than interrupts go).
fn instructions(site: u32, site_map: RawFd, target_map: RawFd) -> Vec<u64> {
    let sites = std::mem::offset_of!(StubSites, sites) as i16;
    let top = STUB_DEPTH as i32 - 1;
    let mut insns = vec![insn(0xbf, 6, 1, 0, 0)]; // 0: r6 = r1 (the context)
    insns.extend(lookup_entry_zero(site_map)); // 1-6: r0 = &STUB_SITE[0]
    insns.extend([
        insn(0x15, 0, 0, 17, 0),                         // 7: if r0 == 0 goto 25
        insn(0x61, 1, 0, 0, 0),                          // 8: r1 = depth
        insn(0x25, 1, 0, 15, top),                       // 9: if r1 > top goto 25
        insn(0xbf, 2, 1, 0, 0),                          // 10: r2 = r1
        insn(0x07, 2, 0, 0, 1),                          // 11: r2 += 1
        insn(0x63, 0, 2, 0, 0),                          // 12: depth = r2
        insn(0xbf, 7, 0, 0, 0),                          // 13: r7 = r0
        insn(0x67, 1, 0, 0, 2),                          // 14: r1 <<= 2
        insn(0x0f, 0, 1, 0, 0),                          // 15: r0 += r1
        insn(0x62, 0, 0, sites, site as i32),            // 16: sites[r1 / 4] = site
        insn(0xbf, 1, 6, 0, 0),                          // 17: r1 = r6
        insn(0x18, 2, BPF_PSEUDO_MAP_FD, 0, target_map), // 18: r2 = target (ld_imm64)
        insn(0, 0, 0, 0, 0),                             // 19
        insn(0xb7, 3, 0, 0, 0),                          // 20: r3 = 0
        insn(0x85, 0, 0, 0, HELPER_TAIL_CALL),           // 21: call (returns only on failure)
        insn(0x61, 1, 7, 0, 0),                          // 22: r1 = depth
        insn(0x07, 1, 0, 0, -1),                         // 23: r1 -= 1
        insn(0x63, 7, 1, 0, 0),                          // 24: depth = r1
        insn(0xb7, 0, 0, 0, 0),                          // 25: r0 = 0
        insn(0x95, 0, 0, 0, 0),                          // 26: exit
    ]);
    insns
}

/// Loads the stub of `site` of `kind`, given the descriptors of
/// `STUB_SITE` and of `kind`'s target array.
pub fn load(
    kind: StubKind,
    site: u32,
    site_map: RawFd,
    target_map: RawFd,
) -> Result<OwnedFd, String> {
    ProgLoad {
        prog_type: kind.prog_type(),
        expected_attach_type: 0,
        attach_btf_id: 0,
        name: kind.program_name(),
    }
    .load(&instructions(site, site_map, target_map))
    .map_err(|e| format!("loading the stub of site {site}: {e}"))
}

/// Puts `program` (`kind`'s target, loaded: a descriptor of it, taken
/// out of the object's borrow) in its array's entry 0: to be done before
/// any stub of `kind` is attached, so no tail call misses.
pub(super) fn set_target(
    ebpf: &mut Ebpf,
    kind: StubKind,
    program: ProgramFd,
) -> Result<(), SensorError> {
    let array = kind.target_array();
    let map = ebpf.map_mut(array).ok_or(SensorError::Map {
        map: array,
        message: "missing from the BPF object".into(),
    })?;
    ProgramArray::try_from(map)
        .map_err(map_err(array))?
        .set(0, &program, 0)
        .map_err(map_err(array))
}

/// Loads the stub of `site` of `kind`, given the object holding the maps.
pub(super) fn load_for(ebpf: &Ebpf, kind: StubKind, site: u32) -> Result<OwnedFd, SensorError> {
    load(
        kind,
        site,
        map_fd(ebpf, STUB_SITE)?,
        map_fd(ebpf, kind.target_array())?,
    )
    .map_err(SensorError::Load)
}

/// The descriptor of map `name` (one of the stubs' maps), which stays in
/// the object.
fn map_fd(ebpf: &Ebpf, name: &'static str) -> Result<RawFd, SensorError> {
    match ebpf.map(name) {
        Some(Map::PerCpuArray(data) | Map::ProgramArray(data)) => Ok(data.fd().as_fd().as_raw_fd()),
        _ => Err(SensorError::Map {
            map: name,
            message: "missing from the BPF object, or of another type".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stub_pushes_its_site_and_tail_calls_entry_zero() {
        let p = instructions(0x3_0007, 7, 9);
        assert_eq!(p.len(), 27);
        assert_eq!(p[4] >> 32, 7, "STUB_SITE in the first ld_imm64");
        assert_eq!(p[18] >> 32, 9, "the target array in the second");
        assert_eq!(p[16] >> 32, 0x3_0007, "the site stored");
        assert_eq!((p[16] >> 16) & 0xffff, 4, "after the depth");
        assert_eq!(
            p[9] >> 32,
            u64::from(STUB_DEPTH - 1),
            "a full stack is left"
        );
        assert_eq!(p[21] >> 32, HELPER_TAIL_CALL as u64);
        // Both checks jump to `r0 = 0` (7 + 1 + 17 = 9 + 1 + 15 = 25).
        assert_eq!((p[7] >> 16) & 0xffff, 17);
        assert_eq!((p[9] >> 16) & 0xffff, 15);
        assert_eq!(p[25], insn(0xb7, 0, 0, 0, 0));
        assert_eq!(
            std::mem::size_of::<StubSites>(),
            4 + 4 * STUB_DEPTH as usize,
            "the verifier bounds the store by the value's size"
        );
    }

    #[test]
    fn each_kind_enters_its_own_program_through_its_own_array() {
        assert_eq!(StubKind::Kprobe.prog_type(), BPF_PROG_TYPE_KPROBE);
        assert_eq!(StubKind::Tracepoint.prog_type(), BPF_PROG_TYPE_TRACEPOINT);
        assert_eq!(
            StubKind::RawTracepoint.prog_type(),
            BPF_PROG_TYPE_RAW_TRACEPOINT
        );
        let arrays: std::collections::HashSet<_> = StubKind::ALL.map(StubKind::target_array).into();
        assert_eq!(
            arrays.len(),
            3,
            "a program array holds programs of one type"
        );
        for kind in StubKind::ALL {
            assert!(kind.program_name().len() < 16, "the kernel keeps 15 bytes");
        }
    }
}
