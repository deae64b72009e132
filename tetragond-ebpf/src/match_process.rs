//! Selectors on the current process: matchPIDs (with followForks),
//! matchBinaries (with followChildren), matchParentBinaries,
//! matchCapabilities, matchNamespaces and their changes since exec. Task
//! fields are read at offsets from the running kernel's BTF
//! (`STRUCT_OFFSETS`).

use core::ffi::c_void;

use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_probe_read_kernel,
    generated::{self as gen, bpf_get_current_task},
};
use tetragond_ebpf::{
    cap_set, ns_kind, op, set_op, BinarySetKey, CapFilter, ExePath, ExecCreds, NsFilter, Selector,
    StructOffsets, BINARY_FILTER, MAX_ANCESTORS, MAX_PIDS, PARENT_BINARIES, PARENT_BINARY_FILTER,
    STR_MATCH_LEN,
};

use crate::scratch::scratch;
use crate::{
    loop_state,
    match_args::{str_lookup, FilterAt, EXE_BUF_SOURCE},
    BINARY_IDS, BINARY_SETS, EXEC_CREDS, EXE_BUF, HOOKS, STRUCT_OFFSETS, TASK_EXE,
};

#[inline(always)]
unsafe fn read<T>(base: u64, offset: u32) -> Option<T> {
    if base == 0 {
        return None;
    }
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T) }.ok()
}

/// Do the selector's process filters hold for the current task?
#[inline(always)]
pub fn process_matches(hook_slot: u32, s: usize, sel: &Selector) -> bool {
    if sel.pid_follow != 0 || sel.binary_follow != 0 || sel.parent_binary_follow != 0 {
        if !ancestry_matches(hook_slot, s, sel) {
            return false;
        }
    }
    (sel.pid_follow != 0 || pids_match(sel))
        && (sel.binary_follow != 0
            || binaries_match(hook_slot, s as u32, sel.binary_op, Task::current()))
        && (sel.parent_binary_follow != 0 || parent_binaries_match(hook_slot, s, sel))
        && caps_match(sel)
        && namespaces_match(sel)
        && (!has_change_filters(sel) || changes_hold(u64::from(hook_slot), s as u64) != 0)
}

#[inline(always)]
fn has_change_filters(sel: &Selector) -> bool {
    sel.cap_change.op != set_op::NONE || sel.ns_change_op != set_op::NONE
}

/// Do selector `selector`'s matchNamespaceChanges and
/// matchCapabilityChanges hold, against the process's credentials at exec
/// (or at the last change a selector matched)? A process without them
/// matches neither, as in Tetragon. A call of its own: its frame stays off
/// the selector's, which 5.10's 512 bytes of stack along a call chain
/// cannot spare.
#[no_mangle]
#[inline(never)]
pub extern "C" fn changes_hold(hook_slot: u64, selector: u64) -> i64 {
    let (Some(o), Some(sel)) = (
        STRUCT_OFFSETS.get(0),
        HOOKS
            .get(hook_slot as u32)
            .and_then(|hook| crate::at(&hook.selectors, selector as usize)),
    ) else {
        return 0;
    };
    let Some(base) = (unsafe { EXEC_CREDS.get(&current_tgid()) }) else {
        return 0;
    };
    i64::from(ns_changes_hold(o, base, sel) && cap_change_holds(o, base, &sel.cap_change))
}

/// In: a namespace of the mask changed; NotIn: one outside it did.
/// Namespaces unreadable at exec (0) are not compared.
#[inline(always)]
fn ns_changes_hold(o: &StructOffsets, base: &ExecCreds, sel: &Selector) -> bool {
    if sel.ns_change_op == set_op::NONE {
        return true;
    }
    let watched = if sel.ns_change_op == set_op::IN {
        sel.ns_change_mask
    } else {
        !sel.ns_change_mask
    };
    let mut changed = 0;
    crate::unrolled!([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], |k| {
        let was = base.ns[k];
        let now = namespace_inum(o, k as u8);
        // Arithmetic, not branches: each would double the verifier's paths.
        changed |= (watched >> k) & 1 & u32::from(was != 0) & u32::from(now != was);
    });
    changed != 0
}

/// Tetragon's rule: a change among the listed capabilities makes In hold;
/// a change among the others only, NotIn.
#[inline(always)]
fn cap_change_holds(o: &StructOffsets, base: &ExecCreds, f: &CapFilter) -> bool {
    if f.op == set_op::NONE {
        return true;
    }
    if f.host_user_ns != 0 && namespace_inum(o, ns_kind::USER) == f.host_user_ns {
        return false;
    }
    let was = match f.set {
        cap_set::INHERITABLE => base.caps[usize::from(cap_set::INHERITABLE)],
        cap_set::PERMITTED => base.caps[usize::from(cap_set::PERMITTED)],
        _ => base.caps[usize::from(cap_set::EFFECTIVE)],
    };
    let now = unsafe { read::<u64>(current_cred(o), cap_offset(o, f.set)) }.unwrap_or(0);
    if was & f.mask != now & f.mask {
        f.op == set_op::IN
    } else {
        was != now && f.op == set_op::NOT_IN
    }
}

/// The current task's capabilities and namespaces, as `EXEC_CREDS` keeps
/// them.
#[inline(always)]
pub fn snapshot(o: &StructOffsets, out: &mut ExecCreds) {
    let cred = current_cred(o);
    crate::unrolled!([0, 1, 2], |i| {
        out.caps[i] = unsafe { read::<u64>(cred, cap_offset(o, i as u8)) }.unwrap_or(0);
    });
    crate::unrolled!([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], |k| {
        out.ns[k] = namespace_inum(o, k as u8);
    });
}

/// After a selector with change filters matched: the current credentials
/// become the process's reference, so a change is reported once.
#[inline(always)]
pub fn note_changes(sel: &Selector) {
    if has_change_filters(sel) {
        refresh_exec_creds();
    }
}

/// Records process `tgid`'s credentials as its reference, at exec. The
/// values are written straight into the map entry: the verifier does not
/// track map memory, where on the stack each value read or not would
/// multiply the states it follows (near a million instructions on 5.10).
/// The entry is briefly zero: no other thread of the process runs during
/// its exec.
#[no_mangle]
#[inline(never)]
pub extern "C" fn record_exec_creds(tgid: u64) -> i64 {
    let tgid = tgid as u32;
    let Some(o) = STRUCT_OFFSETS.get(0).filter(|o| o.valid != 0) else {
        return 0;
    };
    if EXEC_CREDS.insert(&tgid, &ExecCreds::default(), 0).is_err() {
        return 0;
    }
    if let Some(creds) = EXEC_CREDS.get_ptr_mut(&tgid) {
        snapshot(o, unsafe { &mut *creds });
    }
    0
}

/// See `note_changes`; a call of its own, as `changes_hold`.
#[no_mangle]
#[inline(never)]
pub extern "C" fn refresh_exec_creds() -> i64 {
    let (Some(o), Some(base)) = (
        STRUCT_OFFSETS.get(0),
        EXEC_CREDS.get_ptr_mut(&current_tgid()),
    ) else {
        return 0;
    };
    snapshot(o, unsafe { &mut *base });
    0
}

#[inline(always)]
fn cap_offset(o: &StructOffsets, set: u8) -> u32 {
    match set {
        cap_set::INHERITABLE => o.cred_cap_inheritable,
        cap_set::PERMITTED => o.cred_cap_permitted,
        _ => o.cred_cap_effective,
    }
}

#[inline(always)]
fn current_tgid() -> u32 {
    (bpf_get_current_pid_tgid() >> 32) as u32
}

/// A task whose executable a selector checks: its `task_struct` and its
/// process id.
#[derive(Clone, Copy)]
struct Task {
    ptr: u64,
    tgid: u32,
}

impl Task {
    #[inline(always)]
    fn current() -> Self {
        Task {
            ptr: unsafe { bpf_get_current_task() },
            tgid: current_tgid(),
        }
    }
}

#[inline(always)]
fn pid_listed(sel: &Selector, tgid: u32) -> bool {
    let n = sel.n_pids as usize;
    let mut found = false;
    crate::unrolled!([0, 1, 2, 3, 4, 5, 6, 7], |i| found |=
        i < n && sel.pids[i] == tgid);
    found
}

#[inline(always)]
fn pids_match(sel: &Selector) -> bool {
    if sel.pid_op == set_op::NONE {
        return true;
    }
    let tgid = if sel.pid_in_ns != 0 {
        let Some(o) = STRUCT_OFFSETS.get(0) else {
            return false;
        };
        ns_tgid(o, unsafe { bpf_get_current_task() })
    } else {
        current_tgid()
    };
    pid_listed(sel, tgid) == (sel.pid_op == set_op::IN)
}

/// The process id of `task` as its own pid namespace numbers it:
/// `group_leader->thread_pid->numbers[level].nr`.
#[inline(always)]
fn ns_tgid(o: &StructOffsets, task: u64) -> u32 {
    ns_level_and_tgid(o, task).1
}

/// The level of `task`'s pid namespace (0: the initial one) and its
/// process id there.
#[inline(always)]
fn ns_level_and_tgid(o: &StructOffsets, task: u64) -> (u32, u32) {
    let leader = unsafe { read::<u64>(task, o.task_group_leader) }.unwrap_or(0);
    let pid = unsafe { read::<u64>(leader, o.task_thread_pid) }.unwrap_or(0);
    let level = unsafe { read::<u32>(pid, o.pid_level) }.unwrap_or(0) & 31;
    let at = o.pid_numbers + level * o.upid_size + o.upid_nr;
    (level, unsafe { read::<u32>(pid, at) }.unwrap_or(0))
}

/// The current process's id in its own pid namespace, 0 in the initial
/// one (Tetragon's `nspid`): a process tree is a container's init tree
/// from the namespace's pid 1 down.
#[inline(always)]
pub fn container_tgid() -> u32 {
    let Some(o) = STRUCT_OFFSETS.get(0).filter(|o| o.valid != 0) else {
        return 0;
    };
    match ns_level_and_tgid(o, unsafe { bpf_get_current_task() }) {
        (0, _) => 0,
        (_, tgid) => tgid,
    }
}

/// The executable of `task`'s process, from `TASK_EXE`. A miss (the
/// process exec'd before the daemon started, or the LRU evicted it: any
/// user can fork enough to evict entries) is filled from the task's own
/// `mm->exe_file`, so matchBinaries, matchParentBinaries and followChildren
/// do not fail open on a miss. Only the current process's entry is put
/// back: another may be exiting, and an entry written after its exit would
/// outlive it.
#[inline(always)]
fn exe_of(task: Task) -> Option<*const ExePath> {
    if let Some(exe) = TASK_EXE.get_ptr(&task.tgid) {
        return Some(exe);
    }
    let path = crate::zeroed_exe_scratch()?;
    if crate::read_args::read_exe(task.ptr, path.bytes.as_mut_ptr()) == 0 {
        return None;
    }
    if task.tgid == current_tgid() {
        let _ = TASK_EXE.insert(&task.tgid, path, 0);
    }
    Some(path as *const ExePath)
}

/// The `BINARY_IDS` id of the current process's executable, 0 when no
/// policy lists it (ids start at 1): the key `run_lists` looks up the
/// hooks gated on binaries with. A global function, so the verifier checks
/// the executable's path walk once rather than in every entry point.
#[no_mangle]
#[inline(never)]
pub extern "C" fn current_binary_id() -> u32 {
    let Some(exe) = exe_of(Task::current()) else {
        return 0;
    };
    unsafe { BINARY_IDS.get(&*exe) }.copied().unwrap_or(0)
}

/// Is the binary of `task` in the selector's set? `selector` may carry
/// `PARENT_BINARIES`.
#[inline(always)]
fn binary_listed(hook_slot: u32, selector: u32, task: Task) -> bool {
    let Some(exe) = exe_of(task) else {
        return false;
    };
    let Some(binary_id) = (unsafe { BINARY_IDS.get(&*exe) }).copied() else {
        return false;
    };
    let key = BinarySetKey {
        hook_slot,
        selector,
        binary_id,
    };
    unsafe { BINARY_SETS.get(&key) }.is_some()
}

/// Does the binary of `task` match the operator's positive form (In,
/// Prefix, Postfix)?
#[inline(always)]
fn binary_found(hook_slot: u32, selector: u32, binary_op: u8, task: Task) -> bool {
    match binary_op {
        set_op::IN | set_op::NOT_IN => binary_listed(hook_slot, selector, task),
        _ => binary_path_matches(hook_slot, selector, binary_op, task),
    }
}

/// Prefix/Postfix on the executable's path, through the string trie.
#[inline(always)]
fn binary_path_matches(hook_slot: u32, selector: u32, binary_op: u8, task: Task) -> bool {
    let (Some(exe), Some(buf)) = (exe_of(task), scratch(&EXE_BUF)) else {
        return false;
    };
    let n = unsafe {
        gen::bpf_probe_read_kernel_str(buf.cast(), STR_MATCH_LEN as u32, exe as *const c_void)
    };
    if n <= 0 {
        return false;
    }
    let code = match binary_op {
        set_op::PREFIX | set_op::NOT_PREFIX => op::PREFIX,
        _ => op::POSTFIX,
    };
    let filter = if selector & PARENT_BINARIES != 0 {
        PARENT_BINARY_FILTER
    } else {
        BINARY_FILTER
    };
    let at = FilterAt {
        hook_slot,
        selector: selector as u8,
        filter,
        arg: EXE_BUF_SOURCE,
    };
    str_lookup(&at, code, buf as *const u8, (n - 1) as u64)
}

#[inline(always)]
fn binaries_match(hook_slot: u32, selector: u32, binary_op: u8, task: Task) -> bool {
    if binary_op == set_op::NONE {
        return true;
    }
    binary_found(hook_slot, selector, binary_op, task) == set_op::is_positive(binary_op)
}

#[inline(always)]
fn parent_binaries_match(hook_slot: u32, s: usize, sel: &Selector) -> bool {
    if sel.parent_binary_op == set_op::NONE {
        return true;
    }
    let Some(o) = STRUCT_OFFSETS.get(0) else {
        return false;
    };
    let task = unsafe { bpf_get_current_task() };
    let parent = unsafe { read::<u64>(task, o.task_real_parent) }.unwrap_or(0);
    let tgid = unsafe { read::<u32>(parent, o.task_tgid) }.unwrap_or(0);
    binaries_match(
        hook_slot,
        s as u32 | PARENT_BINARIES,
        sel.parent_binary_op,
        Task { ptr: parent, tgid },
    )
}

/// followForks / followChildren: walks the current task and its ancestors
/// (the task reached and what was found live in `LoopState`). For
/// matchParentBinaries the current task itself does not count.
#[inline(always)]
fn ancestry_matches(hook_slot: u32, s: usize, sel: &Selector) -> bool {
    let Some(state) = loop_state() else {
        return false;
    };
    state.ancestor = unsafe { bpf_get_current_task() };
    state.found_pid = 0;
    state.found_binary = 0;
    state.found_parent_binary = 0;
    crate::repeat!(
        MAX_ANCESTORS,
        MAX_ANCESTORS,
        ancestor_step(hook_slot as u64, s as u64)
    );
    let Some(state) = loop_state() else {
        return false;
    };
    let pids_ok = sel.pid_follow == 0 || (state.found_pid != 0) == (sel.pid_op == set_op::IN);
    let bins_ok =
        sel.binary_follow == 0 || (state.found_binary != 0) == set_op::is_positive(sel.binary_op);
    let parents_ok = sel.parent_binary_follow == 0
        || (state.found_parent_binary != 0) == set_op::is_positive(sel.parent_binary_op);
    pids_ok && bins_ok && parents_ok
}

/// Loop step: checks the task reached (`LoopState::ancestor`) against
/// selector `selector`'s followed pids and binaries (and, past the
/// current task, parent binaries), then moves to its parent.
#[no_mangle]
#[inline(never)]
pub extern "C" fn ancestor_step(index: u64, hook_slot: u64, selector: u64) -> i64 {
    let s = selector as usize;
    // Also keeps `index` used (see `path_step`).
    if index >= u64::from(MAX_ANCESTORS) {
        return 1;
    }
    let hook_slot = hook_slot as u32;
    let (Some(o), Some(sel), Some(state)) = (
        STRUCT_OFFSETS.get(0),
        HOOKS
            .get(hook_slot)
            .and_then(|hook| crate::at(&hook.selectors, s)),
        loop_state(),
    ) else {
        return 1;
    };
    let task = state.ancestor;
    let Some(tgid) = (unsafe { read::<u32>(task, o.task_tgid) }) else {
        return 1;
    };
    // The idle task (pid 0) ends every chain.
    if tgid == 0 {
        return 1;
    }
    let pid = if sel.pid_in_ns != 0 {
        ns_tgid(o, task)
    } else {
        tgid
    };
    if sel.pid_follow != 0 && pid_listed(sel, pid) {
        state.found_pid = 1;
    }
    let ancestor = Task { ptr: task, tgid };
    if sel.binary_follow != 0 && binary_found(hook_slot, s as u32, sel.binary_op, ancestor) {
        // Re-fetched: binary_found may have run a loop of its own.
        if let Some(state) = loop_state() {
            state.found_binary = 1;
        }
    }
    let parent_op = sel.parent_binary_op;
    if sel.parent_binary_follow != 0
        && index > 0
        && binary_found(hook_slot, s as u32 | PARENT_BINARIES, parent_op, ancestor)
    {
        if let Some(state) = loop_state() {
            state.found_parent_binary = 1;
        }
    }
    let parent = unsafe { read::<u64>(task, o.task_real_parent) }.unwrap_or(0);
    if parent == 0 || parent == task {
        return 1;
    }
    if let Some(state) = loop_state() {
        state.ancestor = parent;
    }
    0
}

/// Every matchCapabilities entry holds. The credentials are read once.
#[inline(always)]
fn caps_match(sel: &Selector) -> bool {
    if sel.caps[0].op == set_op::NONE {
        return true;
    }
    let Some(o) = STRUCT_OFFSETS.get(0) else {
        return false;
    };
    let cred = current_cred(o);
    let mut ok = true;
    crate::unrolled!([0, 1, 2], |i| ok &= cap_holds(o, cred, &sel.caps[i]));
    ok
}

#[inline(always)]
fn cap_holds(o: &StructOffsets, cred: u64, f: &CapFilter) -> bool {
    if f.op == set_op::NONE {
        return true;
    }
    if f.host_user_ns != 0 && namespace_inum(o, ns_kind::USER) == f.host_user_ns {
        return false;
    }
    let caps = unsafe { read::<u64>(cred, cap_offset(o, f.set)) }.unwrap_or(0);
    (caps & f.mask != 0) == (f.op == set_op::IN)
}

#[inline(always)]
fn current_cred(o: &StructOffsets) -> u64 {
    let task = unsafe { bpf_get_current_task() };
    unsafe { read::<u64>(task, o.task_cred) }.unwrap_or(0)
}

/// Every matchNamespaces entry holds.
#[inline(always)]
fn namespaces_match(sel: &Selector) -> bool {
    if sel.namespaces[0].op == set_op::NONE {
        return true;
    }
    let Some(o) = STRUCT_OFFSETS.get(0) else {
        return false;
    };
    let mut ok = true;
    crate::unrolled!([0, 1, 2, 3], |i| ok &=
        namespace_holds(o, &sel.namespaces[i]));
    ok
}

#[inline(always)]
fn namespace_holds(o: &StructOffsets, f: &NsFilter) -> bool {
    if f.op == set_op::NONE {
        return true;
    }
    let inum = namespace_inum(o, f.kind);
    let n = f.n as usize;
    let mut found = false;
    crate::unrolled!([0, 1, 2, 3], |i| found |= i < n && f.values[i] == inum);
    found == (f.op == set_op::IN)
}

/// The inode number of the current task's namespace of `kind`; 0 when it
/// cannot be read (no namespace has inode 0: In fails, NotIn holds).
#[inline(always)]
fn namespace_inum(o: &StructOffsets, kind: u8) -> u32 {
    let task = unsafe { bpf_get_current_task() };
    if kind == ns_kind::PID {
        // task_active_pid_ns(): thread_pid->numbers[level].ns.
        let pid = unsafe { read::<u64>(task, o.task_thread_pid) }.unwrap_or(0);
        let level = unsafe { read::<u32>(pid, o.pid_level) }.unwrap_or(0) & 31;
        let at = o.pid_numbers + level * o.upid_size + o.upid_ns;
        let ns = unsafe { read::<u64>(pid, at) }.unwrap_or(0);
        let inum_at = o.ns[ns_kind::PID_FOR_CHILDREN as usize].inum;
        return unsafe { read::<u32>(ns, inum_at) }.unwrap_or(0);
    }
    let k = kind as usize;
    if k >= ns_kind::KINDS {
        return 0;
    }
    let at = o.ns[k];
    let holder = if kind == ns_kind::USER {
        current_cred(o)
    } else {
        unsafe { read::<u64>(task, o.task_nsproxy) }.unwrap_or(0)
    };
    let ns = unsafe { read::<u64>(holder, at.member) }.unwrap_or(0);
    unsafe { read::<u32>(ns, at.inum) }.unwrap_or(0)
}

const _: () = assert!(
    MAX_PIDS == 8
        && tetragond_ebpf::MAX_NS_VALUES == 4
        && tetragond_ebpf::MAX_NS_FILTERS == 4
        && tetragond_ebpf::MAX_CAP_FILTERS == 3
);
