//! The few bpf(2) commands aya 0.16 does not offer, made directly: loading
//! a few hand-written instructions as a program (an fmod_ret program, see
//! `fmod_ret.rs`; a tracepoint's or kprobe's stub, see `stubs.rs`), linking a
//! trampoline, LSM or tracepoint program with a BPF cookie, attaching a
//! program to a tracepoint's perf event where there are no BPF links, and a
//! uprobe whose USDT semaphore the kernel raises (aya has no
//! `ref_ctr_offset`).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const BPF_LINK_CREATE: libc::c_long = 28;
/// `enum bpf_link_type`, `enum bpf_perf_event_type`.
const BPF_LINK_TYPE_PERF_EVENT: u32 = 7;
const BPF_PERF_EVENT_KPROBE: u32 = 3;
/// In `struct bpf_link_info`: `type`, then in the union (at 16)
/// `perf_event.type`, and `perf_event.kprobe.addr` (Linux 6.6).
const LINK_TYPE_AT: usize = 0;
const PERF_EVENT_TYPE_AT: usize = 16;
const KPROBE_ADDR_AT: usize = 40;

/// `src` of a `ld_imm64` whose immediate is a map's descriptor.
pub const BPF_PSEUDO_MAP_FD: u8 = 1;
pub const HELPER_MAP_LOOKUP_ELEM: i32 = 1;
/// Room for the verifier's log of a rejected hand-written program.
const LOG_SIZE: usize = 64 * 1024;

/// One `struct bpf_insn`.
pub fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    u64::from(code)
        | u64::from(dst & 0xf) << 8
        | u64::from(src & 0xf) << 12
        | u64::from(off as u16) << 16
        | u64::from(imm as u32) << 32
}

/// Instructions that look up entry 0 of the map whose descriptor is
/// `map` (an array): r0 is the value's address, or 0; the key is written
/// at `r10 - 4`, and r1 to r5 are clobbered.
pub fn lookup_entry_zero(map: RawFd) -> [u64; 6] {
    [
        insn(0x62, 10, 0, -4, 0),                    // *(u32 *)(r10 - 4) = 0
        insn(0xbf, 2, 10, 0, 0),                     // r2 = r10
        insn(0x07, 2, 0, 0, -4),                     // r2 += -4
        insn(0x18, 1, BPF_PSEUDO_MAP_FD, 0, map),    // r1 = map (ld_imm64)
        insn(0, 0, 0, 0, 0),                         // (its second half)
        insn(0x85, 0, 0, 0, HELPER_MAP_LOOKUP_ELEM), // call map_lookup_elem
    ]
}

/// `union bpf_attr` for BPF_PROG_LOAD, up to the fields used (the rest,
/// zero, is what the kernel expects of a caller that does not know them).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_btf_obj_fd: u32,
    core_relo_cnt: u32,
    fd_array: u64,
    core_relos: u64,
    core_relo_rec_size: u32,
    _pad: u32,
}

/// A hand-written program to load (GPL, no BTF).
pub struct ProgLoad<'a> {
    pub prog_type: u32,
    pub expected_attach_type: u32,
    /// Tracing programs: the kernel function's BTF type id in vmlinux.
    pub attach_btf_id: u32,
    /// At most 15 bytes are kept.
    pub name: &'a str,
}

impl ProgLoad<'_> {
    /// Loads `insns`; the error carries the verifier's log.
    pub fn load(&self, insns: &[u64]) -> Result<OwnedFd, String> {
        let license = b"GPL\0";
        let mut log = vec![0u8; LOG_SIZE];
        let mut name = [0u8; 16];
        let n = self.name.len().min(15);
        name[..n].copy_from_slice(&self.name.as_bytes()[..n]);
        let mut attr = ProgLoadAttr {
            prog_type: self.prog_type,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level: 1,
            log_size: LOG_SIZE as u32,
            log_buf: log.as_mut_ptr() as u64,
            prog_name: name,
            expected_attach_type: self.expected_attach_type,
            attach_btf_id: self.attach_btf_id,
            ..Default::default()
        };
        bpf(
            BPF_PROG_LOAD,
            (&mut attr as *mut ProgLoadAttr).cast(),
            std::mem::size_of::<ProgLoadAttr>(),
        )
        .map_err(|e| {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            format!("{e}: {}", String::from_utf8_lossy(&log[..end]).trim())
        })
    }
}

/// The attach types of the programs linked with a cookie (trampolines,
/// LSM hooks, BTF tracepoints).
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
pub enum TrampolineAttach {
    /// BPF_TRACE_RAW_TP: a tp_btf program (its link's cookie: Linux 6.10).
    RawTracepoint = 23,
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

/// `union bpf_attr` for BPF_LINK_CREATE of a perf event
/// (`link_create.perf_event`, Linux 5.15).
#[repr(C)]
#[derive(Default)]
struct PerfLinkAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    bpf_cookie: u64,
}

/// `enum bpf_attach_type`: BPF_PERF_EVENT.
const BPF_PERF_EVENT: u32 = 41;
const PERF_TYPE_TRACEPOINT: u32 = 2;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;

/// `struct perf_event_attr` as its second version (PERF_ATTR_SIZE_VER1,
/// 72 bytes): all a tracepoint or uprobe event needs.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    /// uprobe: the file's path; kprobe: the function's name.
    config1: u64,
    /// uprobe: the offset in the file; kprobe: the offset in the function.
    config2: u64,
}

/// The uprobe and kprobe PMUs' `config`: bit 0 makes a return probe; for
/// uprobes bits 32-63 hold the semaphore's file offset
/// (`/sys/bus/event_source/devices/{uprobe,kprobe}/format`).
const RETPROBE_BIT: u64 = 1;
const UPROBE_REF_CTR_OFFSET_SHIFT: u32 = 32;
const UPROBE_PMU_TYPE: &str = "/sys/bus/event_source/devices/uprobe/type";
const KPROBE_PMU_TYPE: &str = "/sys/bus/event_source/devices/kprobe/type";

/// The perf event type of the PMU whose `type` file is `path`.
fn pmu_type(path: &str) -> std::io::Result<u32> {
    std::fs::read_to_string(path)?
        .trim()
        .parse()
        .map_err(|_| std::io::Error::other(format!("{path} is not a number")))
}

/// Links the loaded tracepoint program `prog` to tracepoint `id` (its
/// tracefs `id`), with `cookie` for `bpf_get_attach_cookie`: a perf event
/// on CPU 0, which runs the program on every CPU, as aya opens one, held
/// by the link (its descriptor here is closed).
pub fn tracepoint_link(prog: BorrowedFd<'_>, id: u64, cookie: u64) -> std::io::Result<OwnedFd> {
    perf_event_link(prog, &tracepoint_event(id), cookie)
}

/// The perf event of tracepoint `id`.
fn tracepoint_event(id: u64) -> PerfEventAttr {
    PerfEventAttr {
        kind: PERF_TYPE_TRACEPOINT,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config: id,
        sample_period: 1,
        wakeup_events: 1,
        ..Default::default()
    }
}

/// Links the loaded uprobe program `prog` at `offset` in the file at
/// `path` (a return probe with `ret`), with `cookie`; the kernel raises the
/// 16-bit semaphore at file offset `semaphore` (0: none) while the link
/// lives, in every process mapping the file, as a USDT probe's users do.
pub fn uprobe_link(
    prog: BorrowedFd<'_>,
    path: &std::ffi::CStr,
    offset: u64,
    semaphore: u64,
    ret: bool,
    cookie: u64,
) -> std::io::Result<OwnedFd> {
    let attr = PerfEventAttr {
        kind: pmu_type(UPROBE_PMU_TYPE)?,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config: (semaphore << UPROBE_REF_CTR_OFFSET_SHIFT) | if ret { RETPROBE_BIT } else { 0 },
        sample_period: 1,
        wakeup_events: 1,
        config1: path.as_ptr() as u64,
        config2: offset,
        ..Default::default()
    };
    perf_event_link(prog, &attr, cookie)
}

/// `union bpf_attr` for BPF_RAW_TRACEPOINT_OPEN.
#[repr(C)]
struct RawTracepointOpenAttr {
    name: u64,
    prog_fd: u32,
    _pad: u32,
}

/// Attaches the loaded (plain, not BTF-typed) raw tracepoint program
/// `prog` to raw tracepoint `name`: a BPF link (Linux 5.7 on), so it can
/// be pinned.
pub fn raw_tracepoint_link(
    prog: BorrowedFd<'_>,
    name: &std::ffi::CStr,
) -> std::io::Result<OwnedFd> {
    let mut attr = RawTracepointOpenAttr {
        name: name.as_ptr() as u64,
        prog_fd: prog.as_raw_fd() as u32,
        _pad: 0,
    };
    bpf(
        BPF_RAW_TRACEPOINT_OPEN,
        (&mut attr as *mut RawTracepointOpenAttr).cast(),
        std::mem::size_of::<RawTracepointOpenAttr>(),
    )
}

/// The kprobe PMU's event on kernel function `function` (at its return
/// with `ret`). `function` must outlive the event's opening.
fn kprobe_event(function: &std::ffi::CStr, ret: bool) -> std::io::Result<PerfEventAttr> {
    Ok(PerfEventAttr {
        kind: pmu_type(KPROBE_PMU_TYPE)?,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config: if ret { RETPROBE_BIT } else { 0 },
        sample_period: 1,
        wakeup_events: 1,
        // `kprobe_func` and `probe_offset`.
        config1: function.as_ptr() as u64,
        config2: 0,
        ..Default::default()
    })
}

/// Links the loaded kprobe program `prog` at the entry (or with `ret`, the
/// return) of kernel function `function`, with `cookie` (Linux 5.15): what
/// aya's attach cannot give a kprobe.
pub fn kprobe_link(
    prog: BorrowedFd<'_>,
    function: &std::ffi::CStr,
    ret: bool,
    cookie: u64,
) -> std::io::Result<OwnedFd> {
    perf_event_link(prog, &kprobe_event(function, ret)?, cookie)
}

/// Opens the perf event `attr` describes, on CPU 0 for every process (the
/// program runs on every CPU), and links `prog` to it with `cookie`; the
/// link holds the event (its descriptor here is closed).
fn perf_event_link(
    prog: BorrowedFd<'_>,
    attr: &PerfEventAttr,
    cookie: u64,
) -> std::io::Result<OwnedFd> {
    let event = open_perf_event(attr)?;
    let mut link = PerfLinkAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_fd: event.as_raw_fd() as u32,
        attach_type: BPF_PERF_EVENT,
        bpf_cookie: cookie,
        ..Default::default()
    };
    bpf(
        BPF_LINK_CREATE,
        (&mut link as *mut PerfLinkAttr).cast(),
        std::mem::size_of::<PerfLinkAttr>(),
    )
}

/// Attaches the loaded tracepoint program `prog` to tracepoint `id` (its
/// tracefs `id`) the way kernels without BPF links for perf events (before
/// 5.15) take it: the perf event runs the program (it holds a reference to
/// it) until its descriptor, returned, is closed.
pub fn tracepoint_perf_event(prog: BorrowedFd<'_>, id: u64) -> std::io::Result<OwnedFd> {
    perf_event_running(prog, &tracepoint_event(id))
}

/// As [`tracepoint_perf_event`], the kprobe program `prog` on kernel
/// function `function` (its return with `ret`).
pub fn kprobe_perf_event(
    prog: BorrowedFd<'_>,
    function: &std::ffi::CStr,
    ret: bool,
) -> std::io::Result<OwnedFd> {
    perf_event_running(prog, &kprobe_event(function, ret)?)
}

/// The perf event `attr` describes, running `prog` (no BPF link).
fn perf_event_running(prog: BorrowedFd<'_>, attr: &PerfEventAttr) -> std::io::Result<OwnedFd> {
    let event = open_perf_event(attr)?;
    let ioctl = |request: libc::c_ulong, arg: libc::c_int| {
        // SAFETY: perf ioctls on a descriptor we own, with an int argument.
        match unsafe { libc::ioctl(event.as_raw_fd(), request as _, arg) } {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        }
    };
    ioctl(PERF_EVENT_IOC_SET_BPF, prog.as_raw_fd())?;
    ioctl(PERF_EVENT_IOC_ENABLE, 0)?;
    Ok(event)
}

/// `_IOW('$', 8, __u32)` and `_IO('$', 0)` of linux/perf_event.h.
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;

/// Opens the perf event `attr` describes, on CPU 0 for every process (a
/// program attached to it runs on every CPU).
fn open_perf_event(attr: &PerfEventAttr) -> std::io::Result<OwnedFd> {
    // SAFETY: `attr` is a complete PERF_ATTR_SIZE_VER1 struct, and what
    // its fields point at (a uprobe's path), live for the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr as *const PerfEventAttr,
            -1 as libc::c_int,
            0 as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor the kernel just returned.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// bpf(2) with `attr` of `size` bytes, which must be a live, zero-padded
/// `union bpf_attr` prefix (and what it points at live for the call); the
/// kernel's return value.
pub fn bpf_call(
    cmd: libc::c_long,
    attr: *mut libc::c_void,
    size: usize,
) -> std::io::Result<libc::c_long> {
    // SAFETY: see above: every caller passes its own attr struct.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr, size) };
    if ret < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(ret)
}

/// bpf(2) with `attr` of `size` bytes; the descriptor it returns.
pub fn bpf(cmd: libc::c_long, attr: *mut libc::c_void, size: usize) -> std::io::Result<OwnedFd> {
    let fd = bpf_call(cmd, attr, size)?;
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

/// `union bpf_attr` for BPF_OBJ_GET_INFO_BY_FD.
#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The kernel's info struct of BPF object `fd` (a program's `struct
/// bpf_prog_info`, a link's `struct bpf_link_info`), and how many of its
/// bytes the kernel filled (the rest is zero): 256 bytes are more than any
/// of them holds so far.
fn object_info(fd: BorrowedFd<'_>) -> std::io::Result<([u8; 256], u32)> {
    let mut info = [0u8; 256];
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: info.len() as u32,
        info: info.as_mut_ptr() as u64,
    };
    // `info` outlives the call; the kernel writes back how much it filled.
    bpf_call(
        BPF_OBJ_GET_INFO_BY_FD,
        (&mut attr as *mut InfoAttr).cast(),
        std::mem::size_of::<InfoAttr>(),
    )?;
    Ok((info, attr.info_len))
}

/// Where the kernel put the kprobe of perf-event link `link`: the address
/// it reports (Linux 6.6 on), None where it reports none.
pub fn kprobe_address(link: BorrowedFd<'_>) -> std::io::Result<Option<u64>> {
    Ok(kprobe_address_in(&object_info(link)?.0))
}

fn kprobe_address_in(info: &[u8]) -> Option<u64> {
    let u32_at = |at: usize| Some(u32::from_le_bytes(info.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(info.get(at..at + 8)?.try_into().ok()?));
    if u32_at(LINK_TYPE_AT)? != BPF_LINK_TYPE_PERF_EVENT
        || u32_at(PERF_EVENT_TYPE_AT)? != BPF_PERF_EVENT_KPROBE
    {
        return None;
    }
    u64_at(KPROBE_ADDR_AT).filter(|addr| *addr != 0)
}

/// In `struct bpf_prog_info`: `recursion_misses` (Linux 5.12), after
/// `run_time_ns` and `run_cnt`.
const RECURSION_MISSES_AT: usize = 208;

/// Runs of program `prog` the kernel skipped because it found the program
/// running on that CPU already; None where the kernel does not count them
/// (before 5.12).
pub fn recursion_misses(prog: BorrowedFd<'_>) -> std::io::Result<Option<u64>> {
    let (info, filled) = object_info(prog)?;
    Ok(recursion_misses_in(&info, filled))
}

fn recursion_misses_in(info: &[u8], filled: u32) -> Option<u64> {
    let field = RECURSION_MISSES_AT..RECURSION_MISSES_AT + 8;
    if (filled as usize) < field.end {
        return None;
    }
    Some(u64::from_le_bytes(info.get(field)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::{
        kprobe_address_in, recursion_misses_in, PerfEventAttr, PerfLinkAttr, TracingLinkAttr,
    };

    #[test]
    fn perf_event_attrs_sit_where_the_kernel_reads_them() {
        // PERF_ATTR_SIZE_VER1, with wakeup_events after the flag bits and
        // a uprobe's path and offset in config1 and config2.
        assert_eq!(std::mem::size_of::<PerfEventAttr>(), 72);
        assert_eq!(std::mem::offset_of!(PerfEventAttr, config), 8);
        assert_eq!(std::mem::offset_of!(PerfEventAttr, wakeup_events), 48);
        assert_eq!(std::mem::offset_of!(PerfEventAttr, config1), 56);
        assert_eq!(std::mem::offset_of!(PerfEventAttr, config2), 64);
        // link_create.perf_event.bpf_cookie follows the four u32s.
        assert_eq!(std::mem::offset_of!(PerfLinkAttr, bpf_cookie), 16);
    }

    #[test]
    fn a_kprobe_links_address_is_read_where_6_6_puts_it() {
        let mut info = [0u8; 256];
        info[0..4].copy_from_slice(&7u32.to_le_bytes());
        info[16..20].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(kprobe_address_in(&info), None, "no address: before 6.6");
        info[40..48].copy_from_slice(&0xffff_ffff_8123_4564u64.to_le_bytes());
        assert_eq!(kprobe_address_in(&info), Some(0xffff_ffff_8123_4564));
        info[16..20].copy_from_slice(&5u32.to_le_bytes());
        assert_eq!(kprobe_address_in(&info), None, "a tracepoint link");
    }

    #[test]
    fn recursion_misses_are_read_where_5_12_puts_them_and_only_there() {
        let mut info = [0u8; 256];
        info[208..216].copy_from_slice(&41u64.to_le_bytes());
        assert_eq!(recursion_misses_in(&info, 228), Some(41));
        // 5.10's bpf_prog_info ends with run_cnt.
        assert_eq!(recursion_misses_in(&info, 208), None);
    }

    #[test]
    fn the_cookie_sits_where_the_kernel_reads_link_create_tracing_cookie() {
        // prog_fd, target_fd, attach_type, flags, then the union: tracing
        // is { u32 target_btf_id; aligned u64 cookie }.
        assert_eq!(std::mem::offset_of!(TracingLinkAttr, target_btf_id), 16);
        assert_eq!(std::mem::offset_of!(TracingLinkAttr, cookie), 24);
    }
}
