//! tetragond's kernel programs.
//!
//! `generic_tracepoint` is attached once to every tracepoint some policy
//! hooks. It reads the event id from the record, looks up the hook slots that
//! can fire for it, and evaluates each one's selectors against the record's
//! fields. Enforcement (signals) happens here, in the kernel, unless the
//! owning policy's entry in `POLICY_MODE` says monitor.
//!
//! `task_exec`, `task_fork` and `task_exit` keep `TASK_EXE` (pid -> path of
//! the executable) for matchBinaries.
#![no_std]
#![no_main]
// For `atomic_add` (below): core's atomic types have no read-modify-write
// operations on the bpf target.
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod match_args;
mod match_process;
mod read_args;
mod scratch;

use core::{ffi::c_void, intrinsics::AtomicOrdering};

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_ktime_get_ns,
        bpf_probe_read_kernel_buf, bpf_probe_read_kernel_str_bytes,
        generated::{
            self as gen, bpf_get_attach_cookie, bpf_get_current_ancestor_cgroup_id,
            bpf_get_current_task, bpf_get_stack, bpf_probe_write_user, bpf_send_signal,
        },
    },
    macros::{
        btf_tracepoint, fentry, fexit, kprobe, lsm, map, raw_tracepoint, tracepoint, uprobe,
        uretprobe,
    },
    maps::{
        lpm_trie::{Key, LpmTrie},
        Array, HashMap, LruHashMap, PerCpuArray, ProgramArray, RingBuf,
    },
    programs::{
        BtfTracePointContext, FEntryContext, FExitContext, LsmContext, ProbeContext,
        RawTracePointContext, RetProbeContext, TracePointContext,
    },
    EbpfContext,
};
use match_args::{data_filter_matches, FilterAt};
use scratch::{scratch, Held};
use tetragond_ebpf::{
    action, arg_kind, arg_source, cap_set, gate, op, rate_scope, record, reg_source, return_half,
    site, size_from, stack, AddrTrieData, ArgFilter, ArgSetKey, ArgSpec, BinarySetKey, CredInfo,
    DataRecord, Event, EventBuf, EventInfo, ExePath, ExecBinary, ExecCreds, ExecRecord, ExitRecord,
    GateKey, HookConf, HookKey, HookSet, ImaPending, ImaRecord, OverrideKey, PolicyCounters,
    PrefixGateData, RateLimitKey, RateLimitState, RegAssign, RegOverride, RegsKey, ReturnArmed,
    ReturnKey, Selector, SkbInfo, SockInfo, SockOwner, StrTrieData, StructOffsets, StubSites,
    SubstrKey, SubstrValue, TaskTrackingOffsets, UserNsInfo, ABI_I386, ARGS_LEN,
    BINARY_GATE_ENTRIES, DATA_CHUNK, DATA_CHUNKS, DATA_HEADER_LEN, EXEC_CREDS_ENTRIES,
    FILE_TYPE_BITS, HOOK_LIST_ENTRIES, HOOK_SET_WORDS, IMA_HASH_MAX, IMA_PENDING_ENTRIES,
    KPROBE_SITE_ENTRIES, MAX_ACTIONS, MAX_ARGS, MAX_ARG_FILTERS, MAX_CGROUP_SCOPES, MAX_DATA,
    MAX_FIELD_LOADS, MAX_HOOKS, MAX_PIDS, MAX_POLICIES, MAX_REG_ASSIGNMENTS, MAX_SELECTORS,
    MAX_VALUES, MAX_WRITES, MODE_MONITOR, NS_CHANGE_KINDS, OVERRIDE_DECISION_ENTRIES, PATH_CUT,
    PATH_LEN, PATH_WALK_LEN, PREFIX_GATE_ALL, PREFIX_GATE_ENTRIES, PT_REGS_WORDS,
    RATE_LIMIT_ENTRIES, RECORD_KINDS, RECORD_LEN, RETURN_ARMED_ENTRIES, SCRATCH_SLOTS,
    SOCK_OWNER_ENTRIES, STACK_BYTES, STACK_DEPTH, STR_LEN, STR_MATCH_LEN, STR_TRIE_HEADER_BITS,
    SUBSTR_LEN, SUB_ANY, TASK_EXE_ENTRIES, TS_COMPAT, UNKNOWN_CAPS,
};

#[map]
static HOOKS: Array<HookConf> = Array::with_max_entries(MAX_HOOKS, 0);
#[map]
static HOOK_LISTS: HashMap<HookKey, HookSet> = HashMap::with_max_entries(HOOK_LIST_ENTRIES, 0);
#[map]
static BINARY_GATES: HashMap<GateKey, HookSet> = HashMap::with_max_entries(BINARY_GATE_ENTRIES, 0);
/// Probed address -> site of the kernel function `kprobe_any` serves there.
#[map]
static KPROBE_SITES: HashMap<u64, u32> = HashMap::with_max_entries(KPROBE_SITE_ENTRIES, 0);
#[map]
static EVENT_INFO: HashMap<u32, EventInfo> = HashMap::with_max_entries(1024, 0);
#[map]
static POLICY_MODE: Array<u32> = Array::with_max_entries(MAX_POLICIES, 0);
#[map]
static POLICY_COUNTERS: PerCpuArray<PolicyCounters> =
    PerCpuArray::with_max_entries(MAX_POLICIES, 0);
#[map]
static ARG_SETS: HashMap<ArgSetKey, u8> = HashMap::with_max_entries(65536, 0);
#[map]
static BINARY_SETS: HashMap<BinarySetKey, u8> = HashMap::with_max_entries(16384, 0);
#[map]
static BINARY_IDS: HashMap<ExePath, u32> = HashMap::with_max_entries(4096, 0);
#[map]
static TASK_EXE: LruHashMap<u32, ExePath> = LruHashMap::with_max_entries(TASK_EXE_ENTRIES, 0);
/// Each process's credentials at exec (see `ExecCreds`).
#[map]
static EXEC_CREDS: LruHashMap<u32, ExecCreds> = LruHashMap::with_max_entries(EXEC_CREDS_ENTRIES, 0);
/// Sockets a TrackSock recorded, by `struct sock` address.
#[map]
static SOCK_OWNERS: LruHashMap<u64, SockOwner> =
    LruHashMap::with_max_entries(SOCK_OWNER_ENTRIES, 0);
/// 1 while a loaded hook tracks sockets (set by user space): only then is
/// a socket argument's owner looked up.
#[map]
static SOCK_TRACKING: Array<u32> = Array::with_max_entries(1, 0);
#[map]
static TASK_OFFSETS: Array<TaskTrackingOffsets> = Array::with_max_entries(1, 0);
/// Scratch for building a path key: too big for the 512-byte stack.
#[map]
static PATH_SCRATCH: PerCpuArray<ExePath> = PerCpuArray::with_max_entries(SCRATCH_SLOTS, 0);
#[map]
static STRUCT_OFFSETS: Array<StructOffsets> = Array::with_max_entries(1, 0);
/// The event being built, with its arguments' data (strings, paths, sockets).
#[map]
static EVENT_BUF: PerCpuArray<EventBuf> = PerCpuArray::with_max_entries(SCRATCH_SLOTS, 0);
/// Where `post_data_step` builds each piece of a `maxData` buffer.
#[map]
static DATA_BUF: PerCpuArray<DataRecord> = PerCpuArray::with_max_entries(SCRATCH_SLOTS, 0);
/// A path is built here right to left, then copied to its data slot. Twice
/// `PATH_WALK_LEN`: a component's copy starts at a masked position and may
/// run past it.
#[map]
static WALK_BUF: PerCpuArray<[u8; 2 * PATH_WALK_LEN]> =
    PerCpuArray::with_max_entries(SCRATCH_SLOTS, 0);
/// An executable's path, for Prefix/Postfix matchBinaries.
#[map]
static EXE_BUF: PerCpuArray<[u8; STR_LEN]> = PerCpuArray::with_max_entries(SCRATCH_SLOTS, 0);
/// Scratch for the (264-byte) key of a string lookup.
#[map]
static STR_KEY: PerCpuArray<Key<StrTrieData>> = PerCpuArray::with_max_entries(SCRATCH_SLOTS, 0);
/// LPM tries need BPF_F_NO_PREALLOC.
const NO_PREALLOC: u32 = 1;
#[map]
static STR_TRIE: LpmTrie<StrTrieData, u8> = LpmTrie::with_max_entries(16384, NO_PREALLOC);
#[map]
static SUBSTRINGS: HashMap<SubstrKey, SubstrValue> = HashMap::with_max_entries(4096, 0);
/// The register assignments of each uprobe Override, by hook and selector.
/// Read only by `uprobe_dispatch_regs`, loaded where the kernel allocates
/// map memory safely from tracing programs, so never preallocated.
#[map]
static UPROBE_REGS: HashMap<RegsKey, RegOverride> =
    HashMap::with_max_entries(MAX_HOOKS, NO_PREALLOC);
/// A SubString window (kept off the nested callbacks' stack).
#[map]
static WINDOW: PerCpuArray<[u64; SUBSTR_LEN / 8]> = PerCpuArray::with_max_entries(SCRATCH_SLOTS, 0);
/// Hooks gated on an argument's string prefix (see `PrefixGateData`).
#[map]
static PREFIX_GATES: LpmTrie<PrefixGateData, HookSet> =
    LpmTrie::with_max_entries(PREFIX_GATE_ENTRIES, NO_PREALLOC);
/// Scratch for the (256-byte) key of a prefix gate lookup.
#[map]
static GATE_KEY: PerCpuArray<Key<PrefixGateData>> = PerCpuArray::with_max_entries(SCRATCH_SLOTS, 0);
#[map]
static ADDR_TRIE: LpmTrie<AddrTrieData, u8> = LpmTrie::with_max_entries(4096, NO_PREALLOC);
/// What the loop steps (see `repeat!`) read and change. They are global
/// functions, which take scalars only, so the walk's state lives here, in
/// map memory, rather than on the caller's stack.
#[repr(C)]
struct LoopState {
    /// The program's context (a tracepoint record, pt_regs, or a
    /// trampoline's argument array), read with probe reads by the steps.
    ctx: u64,
    /// The sets `run_lists` walks, in order: every event's, then this
    /// syscall's, each as listed and as gated by the executable; then
    /// both as gated by an argument's prefix.
    sets: [SetRef; SETS_PER_EVENT],
    /// The prefix gates' sets found for this event (every event's, this
    /// syscall's): copied, as a trie's values are found by a key too big
    /// to keep for each step of the walk.
    prefix_sets: [HookSet; 2],
    /// Per key (every event's, this syscall's): its gates (`gate::*`),
    /// and the hook and argument its prefix gates are read by.
    key_gates: [u32; 2],
    prefix_hooks: [u32; 2],
    prefix_args: [u32; 2],
    /// Summary bits of each set that `walk_word` has not reached yet.
    words_left: [u64; SETS_PER_EVENT],
    list_ret: i32,
    matched: i32,
    all_match: u32,
    found: u32,
    found_pid: u32,
    found_binary: u32,
    found_parent_binary: u32,
    ancestor: u64,
    path_dentry: u64,
    path_mnt: u64,
    path_pos: u64,
    /// 1 while the hooks of a 32-bit syscall run (see `dispatch`): read
    /// by the argument readers from here, so the verifier sees one
    /// unknown value instead of following each ABI through every hook.
    compat: u32,
    /// 1 once a path walk reached the root: a walk that stops before it
    /// leaves the path cut (`PATH_CUT`).
    path_complete: u32,
    /// The stacks a hook of the event's sets may post
    /// (`HookSet::stacks`): `run_lists` takes them.
    stacks: u32,
    /// A rate-limited Post: the key being built, and the argument whose
    /// data `rate_hash_word` mixes into `rate_key.args_hash` (its index
    /// and the bytes of its slot that count).
    rate_key: RateLimitKey,
    rate_arg: u32,
    rate_len: u32,
    /// Identical events folded into the one being posted (`Event::repeats`).
    repeats: u32,
    /// The pointer a field path behind an argument has reached (see
    /// `follow_field`); 0 once a load failed.
    field: u64,
    /// The exit half of a return hook: what its entry half recorded.
    armed: ReturnArmed,
    /// The buffer of the hook's `maxData` argument (`read_arg_step`), and
    /// its size (at most `MAX_DATA`), which `post_data` posts.
    data_ptr: u64,
    data_len: u64,
    /// Set writes the hooks of a uprobe passage queued (`queue_write`),
    /// for `uprobe_dispatch_writing` to make.
    writes: [UserWrite; MAX_WRITES],
    n_writes: u32,
    /// The `struct sock` address of each socket argument of the hook
    /// running (0 for other kinds), for TrackSock.
    socks: [u64; MAX_ARGS],
    /// The owner TrackSock recorded for a socket argument of the hook
    /// running (`tgid` 0: none), which its event names.
    owner: SockOwner,
    /// The owner a TrackSock records, built here.
    new_owner: SockOwner,
    /// The uprobe Override an enforcing hook queued: its hook slot and
    /// selector (`slot << 8 | selector`), plus 1; 0 for none.
    regs_queued: u64,
    /// The registers `uprobe_dispatch_regs` works the assignments on.
    regs_work: [u64; PT_REGS_WORDS],
}

/// 4 bytes to write at a user address (Set).
#[repr(C)]
#[derive(Clone, Copy)]
struct UserWrite {
    addr: u64,
    value: u32,
    _pad: u32,
}

/// Dispatch sets one event walks: (every event, this syscall) x (listed,
/// gated by the executable, gated by a prefix), and two unused (a power
/// of two: indices are masked).
const SETS_PER_EVENT: usize = 8;
/// `sets` index of the first prefix gate.
const PREFIX_SETS_AT: usize = 4;
const _: () = assert!(SETS_PER_EVENT.is_power_of_two() && HOOK_SET_WORDS.is_power_of_two());

/// One set of hooks `run_lists` walks: a `HOOK_LISTS` entry (`binary_id`
/// 0) or a `BINARY_GATES` one, or (`present` `IN_LOOP`) the prefix gate's
/// set copied to `LoopState::prefix_sets[key.binary_id]`; `present` 0 for
/// none.
#[repr(C)]
#[derive(Clone, Copy)]
struct SetRef {
    key: GateKey,
    present: u32,
}

const IN_MAP: u32 = 1;
const IN_LOOP: u32 = 2;

impl SetRef {
    const NONE: SetRef = SetRef {
        key: GateKey {
            site: 0,
            sub_id: 0,
            binary_id: 0,
        },
        present: 0,
    };

    #[inline(always)]
    fn new(key: HookKey, binary_id: u32) -> SetRef {
        SetRef {
            key: GateKey {
                site: key.site,
                sub_id: key.sub_id,
                binary_id,
            },
            present: IN_MAP,
        }
    }

    #[inline(always)]
    fn in_loop(index: u32) -> SetRef {
        SetRef {
            key: GateKey {
                site: 0,
                sub_id: 0,
                binary_id: index,
            },
            present: IN_LOOP,
        }
    }

    #[inline(always)]
    fn get(&self) -> Option<&'static HookSet> {
        if self.present == IN_LOOP {
            let state = loop_state()?;
            return at(&state.prefix_sets, self.key.binary_id as usize);
        }
        if self.present == 0 {
            return None;
        }
        if self.key.binary_id == 0 {
            let key = HookKey {
                site: self.key.site,
                sub_id: self.key.sub_id,
            };
            unsafe { HOOK_LISTS.get(&key) }
        } else {
            unsafe { BINARY_GATES.get(&self.key) }
        }
    }
}

#[map]
static LOOP: PerCpuArray<LoopState> = PerCpuArray::with_max_entries(SCRATCH_SLOTS, 0);

/// The stacks of the event being dispatched, taken by `run_lists` when a
/// hook may post them; a length 0 for one not taken.
#[repr(C)]
struct Stacks {
    kernel_len: u32,
    user_len: u32,
    kernel: [u64; STACK_DEPTH],
    user: [u64; STACK_DEPTH],
}

#[map]
static STACKS: PerCpuArray<Stacks> = PerCpuArray::with_max_entries(SCRATCH_SLOTS, 0);

/// Takes the stacks `wanted` (`stack::*`) into `STACKS`, marking the
/// others empty. Here, in the entry point's own code: the stack walk needs
/// the program's context, which the hooks' global functions do not have.
#[inline(always)]
fn take_stacks(ctx: &TracePointContext, wanted: u32) {
    let Some(stacks) = scratch(&STACKS) else {
        return;
    };
    let stacks = unsafe { &mut *stacks };
    stacks.kernel_len = 0;
    stacks.user_len = 0;
    if wanted & u32::from(stack::KERNEL) != 0 {
        stacks.kernel_len = take_stack(ctx, &mut stacks.kernel, 0);
    }
    if wanted & u32::from(stack::USER) != 0 {
        stacks.user_len = take_stack(ctx, &mut stacks.user, BPF_F_USER_STACK);
    }
}

/// `BPF_F_USER_STACK`: bpf_get_stack walks the user stack.
const BPF_F_USER_STACK: u64 = 1 << 8;

/// Bytes of frames bpf_get_stack wrote (0 on failure).
#[inline(always)]
fn take_stack(ctx: &TracePointContext, frames: &mut [u64; STACK_DEPTH], flags: u64) -> u32 {
    let n = unsafe {
        bpf_get_stack(
            ctx.as_ptr(),
            frames.as_mut_ptr() as *mut c_void,
            STACK_BYTES as u32,
            flags,
        )
    };
    if n > 0 {
        (n as u32).min(STACK_BYTES as u32)
    } else {
        0
    }
}

#[inline(always)]
fn loop_state() -> Option<&'static mut LoopState> {
    scratch(&LOOP).map(|p| unsafe { &mut *p })
}

/// Last post time (`bpf_ktime_get_ns`) of each identical event of a
/// rate-limited Post or of the aggregation window, and the repeats kept
/// back since (see `rate_limited`).
#[map]
static RATE_LIMITS: LruHashMap<RateLimitKey, RateLimitState> =
    LruHashMap::with_max_entries(RATE_LIMIT_ENTRIES, 0);

/// Calls an entry half of a return hook matched, until their exit (see
/// `return_half`). An LRU: a thread that never returns (exit_group) is
/// forgotten in time.
#[map]
static RETURN_ARMED: LruHashMap<ReturnKey, ReturnArmed> =
    LruHashMap::with_max_entries(RETURN_ARMED_ENTRIES, 0);

/// The daemon's aggregation window in ns (0: off): the events of a
/// selector without a Post `rateLimit` are limited per process by it,
/// their repeats counted (the actions are taken every time).
#[map]
static AGGREGATE_WINDOW: Array<u64> = Array::with_max_entries(1, 0);
#[map]
static OVERRIDE_DECISION: LruHashMap<OverrideKey, i32> =
    LruHashMap::with_max_entries(OVERRIDE_DECISION_ENTRIES, 0);
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);
/// Records that did not fit in `EVENTS`, per CPU and by record kind:
/// nothing is lost silently.
#[map]
static LOSSES: PerCpuArray<u64> = PerCpuArray::with_max_entries(RECORD_KINDS, 0);

/// Threads whose LSM hook call posted an event waiting for an IMA hash,
/// with the call's verdict, until the hook's companion program runs.
#[map]
static IMA_PENDING: HashMap<u64, ImaPending> = HashMap::with_max_entries(IMA_PENDING_ENTRIES, 0);

#[inline(always)]
fn count_loss(kind: u32) {
    // Atomic: a run preempted between a load and a store would lose the
    // counts of those that ran in between.
    if let Some(n) = LOSSES.get_ptr_mut(kind) {
        atomic_add(n, 1);
    }
}

const SIGKILL: u32 = 9;

/// 0 when tracing programs cannot call `bpf_get_current_ancestor_cgroup_id`
/// (Linux 5.10), set by user space at load (`EbpfLoader::override_global`).
/// A constant of a frozen read-only map: the verifier drops the branch that
/// calls the helper on a kernel without it, so the programs load there.
/// Not 0 here, or the compiler would put it in writable `.bss`.
#[no_mangle]
static HAS_ANCESTOR_CGROUP_ID: u8 = 1;

/// The same for `bpf_get_attach_cookie` (Linux 5.15), which the uprobe
/// entry points need to know their hook.
#[no_mangle]
static HAS_ATTACH_COOKIE: u8 = 1;

/// 0 unless process objects carry `process_credentials`
/// (`enable_process_cred`): the exec's credentials cost about fifteen
/// probe reads per exec, paid only when asked for.
#[no_mangle]
static EXEC_CREDENTIALS: u8 = 1;

/// `&array[i]`, or None past its end, with the address computed here.
/// 5.10's verifier forgets an index's bound when the index is spilled to
/// the stack (across a helper call), but keeps a pointer's: so a loop
/// step bounds its indices and takes the references at once, and
/// `black_box` stops the optimiser from moving the check back above the
/// map lookups or the address computation down to the use.
#[inline(always)]
pub fn at<T, const N: usize>(array: &[T; N], i: usize) -> Option<&T> {
    array
        .get(core::hint::black_box(i))
        .map(core::hint::black_box)
}

/// `at` for a mutable element.
#[inline(always)]
pub fn at_mut<T, const N: usize>(array: &mut [T; N], i: usize) -> Option<&mut T> {
    array
        .get_mut(core::hint::black_box(i))
        .map(core::hint::black_box)
}

#[inline(always)]
fn load_constant(c: &'static u8) -> u8 {
    unsafe { core::ptr::read_volatile(c) }
}

/// Calls `$step(i, args..)` for `i` in `0..min($n, $max)`, stopping at the
/// first non-zero return. Every step is a global function
/// (`#[no_mangle] pub extern "C"`, scalar arguments, state in `LoopState`):
/// the verifier checks it once, on its own, so a turn costs the caller a
/// few instructions whatever the step does. This is the one loop form all
/// supported kernels accept at that cost: `bpf_loop` needs 5.17, and a
/// static callee in a bounded loop is verified once per turn.
#[macro_export]
macro_rules! repeat {
    ($n:expr, $max:expr, $step:ident($($arg:expr),*)) => {{
        // Hidden from the optimiser, which would drop a clamp it can prove
        // redundant and leave 5.10's verifier a loop it cannot bound.
        let n: u32 = core::cmp::min(core::hint::black_box($n as u32), $max as u32);
        let mut i: u32 = 0;
        while i < n {
            if $step(i as u64 $(, $arg)*) != 0 {
                break;
            }
            i += 1;
        }
    }};
}

/// Runs `body` once per listed index, with no loop left in the program.
/// Loops over these small fixed arrays compile to shapes older verifiers
/// reject (a count-down they cannot bound on 6.1, or a loop closed by a
/// fall-through edge), so they are written out instead.
#[macro_export]
macro_rules! unrolled {
    ([$($i:literal),*], |$idx:ident| $body:expr) => {
        $({
            let $idx: usize = $i;
            $body;
        })*
    };
}

// The unrolled index lists above are written for these sizes.
const _: () = assert!(
    MAX_VALUES == 4
        && MAX_PIDS == 8
        && MAX_ARGS == 5
        && MAX_ACTIONS == 3
        && MAX_CGROUP_SCOPES == 4
        && MAX_WRITES == 8
        && MAX_REG_ASSIGNMENTS == 8
);

// The kernel overwrites a tracepoint record's common fields with a pt_regs
// pointer before running BPF programs, so a program cannot read which
// tracepoint fired: each attachment site gets an entry point of its own.

#[tracepoint]
pub fn tp_raw_sys_enter(ctx: TracePointContext) -> u32 {
    dispatch(&ctx, site::RAW_SYS_ENTER)
}

#[tracepoint]
pub fn tp_raw_sys_exit(ctx: TracePointContext) -> u32 {
    dispatch(&ctx, site::RAW_SYS_EXIT)
}

#[tracepoint]
pub fn tp_syscalls_enter(ctx: TracePointContext) -> u32 {
    dispatch(&ctx, site::SYSCALLS_ENTER)
}

#[tracepoint]
pub fn tp_syscalls_exit(ctx: TracePointContext) -> u32 {
    dispatch(&ctx, site::SYSCALLS_EXIT)
}

/// Every other tracepoint, where its link carries a BPF cookie (Linux
/// 5.15): the cookie is the tracepoint's site, so one program serves them
/// all. Loaded only where the kernel has cookies.
#[tracepoint]
pub fn tp_generic_any(ctx: TracePointContext) -> u32 {
    let k = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) } as u32;
    dispatch(&ctx, site::GENERIC_ANY_BASE + k % site::GENERIC_ANY_SLOTS)
}

/// Where links carry no cookie (before 5.15), each tracepoint gets a stub
/// program of its own, made at run time (`sensors/stubs.rs`): it pushes
/// its site here and tail-calls `tp_generic_from_stub` (`STUB_TARGET[0]`),
/// which pops it; kprobes and raw tracepoints the same, through their own
/// program arrays (one holds programs of one type). Only stubs push and
/// only their targets pop.
#[map]
static STUB_SITE: PerCpuArray<StubSites> = PerCpuArray::with_max_entries(1, 0);
#[map]
static STUB_TARGET: ProgramArray = ProgramArray::with_max_entries(1, 0);
#[map]
static KPROBE_STUB_TARGET: ProgramArray = ProgramArray::with_max_entries(1, 0);
#[map]
static RAW_TP_STUB_TARGET: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// The site the stub that tail-called this program pushed, popped; None
/// outside `range` (no stub pushed one for this kind of program).
#[inline(always)]
fn stub_site(range: core::ops::Range<u32>) -> Option<u32> {
    let stack = STUB_SITE.get_ptr_mut(0)?;
    // SAFETY: this CPU's entry; nothing else runs on the CPU between a
    // stub's push and this pop but whole runs of nested stubs and their
    // targets, which leave it as they found it.
    let stack = unsafe { &mut *stack };
    let top = stack.depth.checked_sub(1)?;
    let site = *stack.sites.get(top as usize)?;
    stack.depth = top;
    range.contains(&site).then_some(site)
}

/// Every other tracepoint, before 5.15: entered by tail call from the
/// tracepoint's stub, which pushed the site.
#[tracepoint]
pub fn tp_generic_from_stub(ctx: TracePointContext) -> u32 {
    match stub_site(site::GENERIC_ANY_BASE..site::GENERIC_ANY_BASE + site::GENERIC_ANY_SLOTS) {
        Some(site) => dispatch(&ctx, site),
        None => 0,
    }
}

/// Uprobes: each attachment carries its hook slot as the BPF cookie, so one
/// program serves every uprobe hook. Arguments are read from the pt_regs the
/// context points at, at offsets the compiler gives per calling convention.
#[uprobe]
pub fn uprobe_dispatch(ctx: ProbeContext) -> u32 {
    let Some(_held) = Held::take() else {
        return 0;
    };
    run_uprobe(&ctx);
    0
}

/// `uprobe_dispatch` for USDT hooks with Set: then makes the writes the
/// hooks queued. The only program that may write user memory, so the
/// kernel's warning about `bpf_probe_write_user` (and its refusal under
/// lockdown) concern it alone, loaded when a policy needs it.
#[uprobe]
pub fn uprobe_dispatch_writing(ctx: ProbeContext) -> u32 {
    let Some(_held) = Held::take() else {
        return 0;
    };
    run_uprobe(&ctx);
    make_writes();
    0
}

/// Makes the Set writes the hooks of this passage queued.
#[inline(always)]
fn make_writes() {
    let Some(state) = loop_state() else {
        return;
    };
    let n = state.n_writes as usize;
    unrolled!([0, 1, 2, 3, 4, 5, 6, 7], |i| if i < n {
        let w = state.writes[i];
        // A write that faults (the page is not in memory) is not made.
        unsafe {
            bpf_probe_write_user(
                w.addr as *mut c_void,
                (&raw const w.value).cast(),
                core::mem::size_of::<u32>() as u32,
            )
        };
    });
}

/// `uprobe_dispatch` for uprobe hooks with Override: then makes the
/// register assignments an enforcing hook queued, so the process goes on
/// with them (by default returning from the function at once). The only
/// program that writes its context: Linux 6.18 lets uprobe programs do so,
/// and refuses such a program on kprobes; loaded when a policy needs it.
#[uprobe]
pub fn uprobe_dispatch_regs(ctx: ProbeContext) -> u32 {
    let Some(_held) = Held::take() else {
        return 0;
    };
    run_uprobe(&ctx);
    let Some(state) = loop_state() else {
        return 0;
    };
    let queued = state.regs_queued;
    if queued != 0 {
        state.regs_queued = 0;
        override_regs(&ctx, state, queued - 1);
    }
    0
}

/// The registers an Override may read and write: (`pt_regs` word, field).
macro_rules! with_override_registers {
    ($m:ident) => {
        $m!(
            0 => r15, 1 => r14, 2 => r13, 3 => r12, 4 => rbp, 5 => rbx, 6 => r11,
            7 => r10, 8 => r9, 9 => r8, 10 => rax, 11 => rcx, 12 => rdx, 13 => rsi,
            14 => rdi, 16 => rip, 19 => rsp
        )
    };
}

/// Makes the assignments of the Override `queued` names (hook slot and
/// selector) on a copy of the registers, in order, then writes the
/// registers they changed back into the context, each at its constant
/// offset (the verifier allows no other context write). A read of user
/// memory that fails leaves every register as it was.
#[inline(always)]
fn override_regs(ctx: &ProbeContext, state: &mut LoopState, queued: u64) {
    let key = RegsKey {
        hook_slot: (queued >> 8) as u32,
        selector: (queued & 0xff) as u32,
    };
    let Some(ov) = (unsafe { UPROBE_REGS.get(&key) }) else {
        return;
    };
    let regs = ctx.regs;
    macro_rules! copy_in {
        ($($i:literal => $f:ident),*) => {$(
            state.regs_work[$i] = unsafe { (*regs).$f };
        )*};
    }
    with_override_registers!(copy_in);
    let n = ov.n as usize;
    let mut changed = 0u32;
    let mut failed = false;
    unrolled!([0, 1, 2, 3, 4, 5, 6, 7], |i| if i < n && !failed {
        match assign(&mut state.regs_work, &ov.assign[i]) {
            Some(word) => changed |= 1 << (word & 31),
            None => failed = true,
        }
    });
    if failed {
        return;
    }
    macro_rules! copy_out {
        ($($i:literal => $f:ident),*) => {$(
            if changed & (1 << $i) != 0 {
                unsafe { core::ptr::write_volatile(&raw mut (*regs).$f, state.regs_work[$i]) };
            }
        )*};
    }
    with_override_registers!(copy_out);
}

/// The low `size` bytes of a word.
#[inline(always)]
fn low_bytes(size: u8) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (u32::from(size) * 8)) - 1
    }
}

/// Makes one assignment on `work`; returns the word it changed, or None
/// when its value cannot be read.
#[inline(always)]
fn assign(work: &mut [u64; PT_REGS_WORDS], a: &RegAssign) -> Option<u32> {
    let src_word = at(work, usize::from(a.src / 8)).copied()?;
    let src = (src_word >> ((u32::from(a.src) % 8) * 8)) & low_bytes(a.src_size);
    let value = match a.kind {
        reg_source::CONST => a.off,
        reg_source::REG => src,
        reg_source::REG_OFF => src.wrapping_add(a.off),
        reg_source::REG_DEREF => unsafe {
            aya_ebpf::helpers::bpf_probe_read_user(src.wrapping_add(a.off) as *const u64).ok()?
        },
        _ => return None,
    };
    let word = u32::from(a.dst / 8);
    let dst = at_mut(work, word as usize)?;
    let shift = (u32::from(a.dst) % 8) * 8;
    let mask = low_bytes(a.dst_size) << shift;
    *dst = (*dst & !mask) | ((value << shift) & mask);
    Some(word)
}

/// Runs the uprobe hook whose slot the attachment's cookie holds.
#[inline(always)]
fn run_uprobe(ctx: &ProbeContext) {
    // User space attaches no uprobe on a kernel without cookies.
    if load_constant(&HAS_ATTACH_COOKIE) == 0 {
        return;
    }
    let slot = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) } as u32;
    if let Some(state) = loop_state() {
        state.compat = 0;
        state.n_writes = 0;
        state.regs_queued = 0;
        state.ctx = ctx.as_ptr() as u64;
        run_list_item(u64::from(slot));
    }
}

// Function hooks. Where trampoline links carry no cookie (before 5.19),
// each numbered fentry, fexit or LSM program is bound, when loaded, to
// one kernel function or LSM hook, and its site number says which slot
// fired (tail calls between such programs of different targets are
// refused, so stubs cannot serve them). Kprobes need no slots (below).
// LSM programs return the Override errno.

macro_rules! function_sites {
    ($attr:ident, $ctx:ty, $ret:ty, $base:expr, [$($name:ident = $k:expr),* $(,)?]) => {$(
        #[$attr]
        pub fn $name(ctx: $ctx) -> $ret {
            errno_or_zero(dispatch_function(ctx.as_ptr(), $base + $k)) as $ret
        }
    )*};
}

/// Kprobes on any number of kernel functions: this one program is attached
/// to each, and finds which one fired by the probed address. A kprobe
/// hands its program the registers with `ip` just past the breakpoint
/// (int3, or the ftrace call it replaces): `ip - 1` is where the probe sits,
/// the function's first byte, or the byte after its `endbr64` on kernels
/// built with IBT; user space lists both. Works from 5.10 (no
/// `bpf_get_func_ip`, no cookies needed).
#[kprobe]
pub fn kprobe_any(ctx: ProbeContext) -> u32 {
    let ip = unsafe { (*ctx.regs).rip };
    let Some(site) = (unsafe { KPROBE_SITES.get(&ip.wrapping_sub(1)) }).copied() else {
        return 0;
    };
    errno_or_zero(dispatch_function(ctx.as_ptr(), site)) as u32
}

/// Kprobes and kretprobes on any number of kernel functions, where
/// perf-event links carry a BPF cookie (Linux 5.15): this one program is
/// linked to each, the link's cookie naming the site (a return has no
/// address of its function to find it by, and a name several functions
/// share has no one address). Older kernels enter `kprobe_from_stub`.
#[kprobe]
pub fn kprobe_by_cookie(ctx: ProbeContext) -> u32 {
    if load_constant(&HAS_ATTACH_COOKIE) == 0 {
        return 0;
    }
    errno_or_zero(dispatch_function(ctx.as_ptr(), cookie_site(ctx.as_ptr()))) as u32
}

/// Where perf-event links carry no cookie (before 5.15), each kprobe or
/// kretprobe `kprobe_by_cookie` would serve gets a stub program of its
/// own, made at run time (`sensors/stubs.rs`), which pushes its site and
/// tail-calls this program (`KPROBE_STUB_TARGET[0]`).
#[kprobe]
pub fn kprobe_from_stub(ctx: ProbeContext) -> u32 {
    match stub_site(site::COOKIE_BASE..site::COOKIE_BASE + site::COOKIE_SLOTS) {
        Some(site) => errno_or_zero(dispatch_function(ctx.as_ptr(), site)) as u32,
        None => 0,
    }
}

/// The kernel (6.12 on) checks an LSM program returns 0 or -4095..-1.
#[inline(always)]
fn errno_or_zero(ret: i32) -> i32 {
    if (-4095..0).contains(&ret) {
        ret
    } else {
        0
    }
}

// fentry programs leave an enforced Override for the fmod_ret program
// attached after them to the same function (see `OverrideKey`): an
// errno, or 1, the one positive answer compile lets through (where the
// function's caller takes it: `compile/positive.rs`).
#[inline(always)]
fn fentry_decide(ctx: *mut c_void, site: u32) -> i32 {
    let verdict = dispatch_function(ctx, site);
    let errno = if verdict == 1 {
        1
    } else {
        errno_or_zero(verdict)
    };
    if errno != 0 {
        leave_override(u64::from(site), errno as u64);
    }
    0
}

/// Leaves `errno` for this thread's fmod_ret program on `site`. A global
/// function: its key and value on a stack frame of its own, not on the
/// fentry program's, which begins the deepest call chain.
#[no_mangle]
#[inline(never)]
pub extern "C" fn leave_override(site: u64, errno: u64) -> i64 {
    let key = OverrideKey {
        pid_tgid: bpf_get_current_pid_tgid(),
        site: site as u32,
        _pad: 0,
    };
    // The LRU makes room: an insert does not fail for want of it.
    let _ = OVERRIDE_DECISION.insert(&key, &(errno as i32), 0);
    0
}

macro_rules! fentry_sites {
    ($($name:ident = $k:expr),* $(,)?) => {$(
        #[fentry]
        pub fn $name(ctx: FEntryContext) -> i32 {
            fentry_decide(ctx.as_ptr(), site::FENTRY_BASE + $k)
        }
    )*};
}

fentry_sites!(
    fentry_0 = 0,
    fentry_1 = 1,
    fentry_2 = 2,
    fentry_3 = 3,
    fentry_4 = 4,
    fentry_5 = 5,
    fentry_6 = 6,
    fentry_7 = 7,
);

// LSM hooks, fentry and fexit on any number of targets, where trampoline
// links carry a BPF cookie (Linux 5.19): each program below is loaded once
// per target, and the link's cookie is the site. Only loaded on such
// kernels; older ones use the numbered slots.

/// The site in the cookie of the link that ran the program.
#[inline(always)]
fn cookie_site(ctx: *mut c_void) -> u32 {
    unsafe { bpf_get_attach_cookie(ctx) as u32 }
}

#[lsm]
pub fn lsm_any(ctx: LsmContext) -> i32 {
    let verdict = errno_or_zero(dispatch_function(ctx.as_ptr(), cookie_site(ctx.as_ptr())));
    if verdict != 0 {
        // An event of this call waits for its IMA hash: the companion,
        // which runs next, returns the verdict once it has taken it (a
        // non-zero return here would skip it).
        if let Some(p) = IMA_PENDING.get_ptr_mut(&bpf_get_current_pid_tgid()) {
            unsafe { (*p).errno = verdict };
            return 0;
        }
    }
    verdict
}

/// With `asked`, asks the IMA companion of the running LSM hook for the
/// hash: 1 when asked and the table had room (else the event goes
/// without it). A global function: verified once, and its result costs
/// `post`'s callers no branch (5.10 and 6.1 count every path through
/// it: inline, the check added some 8,400 instructions to each
/// dispatcher).
#[no_mangle]
#[inline(never)]
pub extern "C" fn ima_request(asked: u64) -> u64 {
    if asked == 0 {
        return 0;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    u64::from(
        IMA_PENDING
            .insert(&pid_tgid, &ImaPending::default(), 0)
            .is_ok(),
    )
}

// IMA companions: a sleepable LSM program per hook on which a policy may
// ask for `imaHash` (`bpf_ima_file_hash` may sleep, so `lsm_any` cannot
// call it), attached just before `lsm_any` so that it runs right after
// it (a hook's programs run newest first). With nothing pending for the
// thread it returns at once.

/// Offset of `linux_binprm.file` in the running kernel, from its BTF.
#[no_mangle]
static BPRM_FILE_OFFSET: u32 = 0;

/// Hooks whose first argument is a `struct file *`.
#[lsm(hook = "file_open", sleepable)]
pub fn ima_file(ctx: LsmContext) -> i32 {
    let file: *mut aya_ebpf::bindings::file = ctx.arg(0);
    ima_finish(file)
}

/// Hooks whose first argument is a `struct linux_binprm *`: its `file`.
#[lsm(hook = "bprm_check_security", sleepable)]
pub fn ima_bprm(ctx: LsmContext) -> i32 {
    let bprm: *const u8 = ctx.arg(0);
    let offset = unsafe { core::ptr::read_volatile(&BPRM_FILE_OFFSET) } as usize;
    // A direct load (not bpf_probe_read): the verifier types the result as
    // the `struct file` BTF pointer the helper takes.
    let file = unsafe { *(bprm.add(offset) as *const *mut aya_ebpf::bindings::file) };
    ima_finish(file)
}

/// Posts the hash of `file` for the events this thread's call left
/// pending, and returns the call's verdict.
#[inline(always)]
fn ima_finish(file: *mut aya_ebpf::bindings::file) -> i32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(pending) = (unsafe { IMA_PENDING.get(&pid_tgid) }).copied() else {
        return 0;
    };
    let _ = IMA_PENDING.remove(&pid_tgid);
    let mut rec = ImaRecord {
        kind: record::IMA_HASH,
        tid: pid_tgid as u32,
        algo: 0,
        _pad: 0,
        hash: [0; IMA_HASH_MAX],
    };
    rec.algo = unsafe {
        gen::bpf_ima_file_hash(
            file,
            rec.hash.as_mut_ptr() as *mut c_void,
            IMA_HASH_MAX as u32,
        )
    } as i32;
    if EVENTS.output(&rec, 0).is_err() {
        count_loss(record::IMA_HASH);
    }
    errno_or_zero(pending.errno)
}

#[fentry]
pub fn fentry_any(ctx: FEntryContext) -> i32 {
    fentry_decide(ctx.as_ptr(), cookie_site(ctx.as_ptr()))
}

#[fexit]
pub fn fexit_any(ctx: FExitContext) -> i32 {
    errno_or_zero(dispatch_function(ctx.as_ptr(), cookie_site(ctx.as_ptr())))
}

/// Raw tracepoints on any number of events, where their links carry a
/// BPF cookie (Linux 6.10).
#[btf_tracepoint]
pub fn tp_btf_any(ctx: BtfTracePointContext) -> i32 {
    dispatch_function(ctx.as_ptr(), cookie_site(ctx.as_ptr()));
    0
}

/// Raw tracepoints before 6.10 (no cookies): each gets a stub program of
/// its own (`sensors/stubs.rs`), a raw tracepoint program (not BTF-typed:
/// the kernel refuses tail calls between tracing programs of different
/// tracepoints), which pushes its site and tail-calls this one
/// (`RAW_TP_STUB_TARGET[0]`). The context is the tracepoint's arguments,
/// as for `tp_btf_any`, read through helpers here.
#[raw_tracepoint]
pub fn raw_tp_from_stub(ctx: RawTracePointContext) -> i32 {
    if let Some(site) = stub_site(site::COOKIE_BASE..site::COOKIE_BASE + site::COOKIE_SLOTS) {
        dispatch_function(ctx.as_ptr(), site);
    }
    0
}

function_sites!(
    fexit,
    FExitContext,
    i32,
    site::FEXIT_BASE,
    [fexit_0 = 0, fexit_1 = 1, fexit_2 = 2, fexit_3 = 3,]
);
function_sites!(
    lsm,
    LsmContext,
    i32,
    site::LSM_BASE,
    [
        lsm_0 = 0,
        lsm_1 = 1,
        lsm_2 = 2,
        lsm_3 = 3,
        lsm_4 = 4,
        lsm_5 = 5,
        lsm_6 = 6,
        lsm_7 = 7,
    ]
);

/// Return uprobes (`return: true`): the same, at the function's return.
#[uretprobe]
pub fn uretprobe_dispatch(ctx: RetProbeContext) -> u32 {
    // User space attaches no uprobe on a kernel without cookies.
    if load_constant(&HAS_ATTACH_COOKIE) == 0 {
        return 0;
    }
    let slot = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) } as u32;
    let Some(_held) = Held::take() else {
        return 0;
    };
    if let Some(state) = loop_state() {
        state.compat = 0;
        state.ctx = ctx.as_ptr() as u64;
        run_list_item(u64::from(slot));
    }
    0
}

/// Runs the hooks listed for a function site; returns the errno of an
/// enforced Override (0 when none).
#[inline(always)]
fn dispatch_function(ctx: *mut c_void, site: u32) -> i32 {
    let any = HookKey {
        site,
        sub_id: SUB_ANY,
    };
    let Some(_held) = Held::take() else {
        return 0;
    };
    run_lists(&TracePointContext::new(ctx), any, None, 0)
}

/// Runs the hooks listed for every event of `site`, then (for syscall
/// sites) those listed for this syscall number, in its ABI, only.
#[inline(always)]
fn dispatch(ctx: &TracePointContext, site: u32) -> u32 {
    let Some(_held) = Held::take() else {
        return 0;
    };
    let any = HookKey {
        site,
        sub_id: SUB_ANY,
    };
    // `id` (long) or `__syscall_nr` (int): the low 32 bits either way.
    let nr = unsafe { EVENT_INFO.get(&site) }
        .filter(|info| info.syscall_offset != 0)
        .and_then(|info| unsafe { ctx.read_at::<u32>(info.syscall_offset as usize) }.ok());
    // Only the raw syscall tracepoints see 32-bit syscalls (the kernel
    // skips `syscalls/*` for them): there the number is keyed with its ABI.
    let compat = match nr {
        Some(_) if site == site::RAW_SYS_ENTER || site == site::RAW_SYS_EXIT => {
            let Some(state) = loop_state() else {
                return 0;
            };
            // Through map memory: one unknown value for the verifier
            // whichever way `in_compat_syscall` returned.
            state.compat = in_compat_syscall();
            (unsafe { core::ptr::read_volatile(&state.compat as *const u32) }) & 1
        }
        _ => 0,
    };
    let sub = nr
        .map(|nr| nr | (compat << 31))
        // -1 (a syscall a tracer skipped) would be the every-event list again.
        .filter(|sub_id| *sub_id != SUB_ANY)
        .map(|sub_id| HookKey { site, sub_id });
    run_lists(ctx, any, sub, compat);
    0
}

// A 32-bit syscall's key and `syscall64` value are `nr | compat << 31`.
const _: () = assert!(ABI_I386 == 1 << 31);

/// 1 when the current task is in a 32-bit syscall (`int 0x80`, or the
/// 32-bit `syscall`/`sysenter` entries): TS_COMPAT in
/// `current->thread_info.status`, the kernel's `in_ia32_syscall()`, at the
/// offset the kernel's BTF gives. 0 otherwise, and when BTF was unreadable.
#[inline(always)]
fn in_compat_syscall() -> u32 {
    let Some(o) = STRUCT_OFFSETS.get(0) else {
        return 0;
    };
    if o.valid == 0 {
        return 0;
    }
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let status = unsafe { read_kernel::<u32>(task.add(o.task_ti_status as usize)) };
    u32::from(status.is_some_and(|s| s & TS_COMPAT != 0))
}

/// Runs every hook in the sets of `any` and `sub`: those listed for the
/// key, and those gated on the running executable when the key has gates
/// (see `HookSet`). A set is walked by its non-zero words only, each word
/// by its set bits, so hooks that cannot match cost nothing.
///
/// 5.10 allows 512 bytes of stack along a chain of calls, each frame
/// rounded up to 32, and the deepest chain (a hook's selector, its filter,
/// a substring step) leaves room for the program, one walking step and
/// the hook: so the sets are prepared by a call that returns first, and
/// the hook is evaluated inside the walking step, not in a call of its own.
#[inline(always)]
fn run_lists(ctx: &TracePointContext, any: HookKey, sub: Option<HookKey>, compat: u32) -> i32 {
    let (sub_id, has_sub) = sub.map_or((0, 0), |key| (key.sub_id, 1));
    let Some(state) = loop_state() else {
        return 0;
    };
    // The argument readers find the context and the ABI here (a prefix
    // gate reads an argument before any hook runs).
    state.compat = compat;
    state.ctx = ctx.as_ptr() as u64;
    // Most events have no hook: they stop in this call.
    if prepare_sets(u64::from(any.site), u64::from(sub_id), has_sub) == 0 {
        return 0;
    }
    let Some(state) = loop_state() else {
        return 0;
    };
    take_stacks(ctx, state.stacks);
    // The first enforced Override's errno.
    state.list_ret = 0;
    repeat!(
        SETS_PER_EVENT * HOOK_SET_WORDS,
        SETS_PER_EVENT * HOOK_SET_WORDS,
        walk_word()
    );
    loop_state().map_or(0, |state| state.list_ret)
}

/// Fills `LoopState::sets` and `words_left` for an event of `site` (and
/// syscall `sub_id` when `has_sub`) on the context in `LoopState::ctx`;
/// returns 0 when no set has hooks.
///
/// Each set found is recorded in map memory at once, so the verifier
/// never holds several map values (each found or not) at the same time:
/// their combinations would multiply the paths it follows.
#[no_mangle]
#[inline(never)]
pub extern "C" fn prepare_sets(site: u64, sub_id: u64, has_sub: u64) -> i64 {
    let Some(state) = loop_state() else {
        return 0;
    };
    state.sets = [SetRef::NONE; SETS_PER_EVENT];
    state.words_left = [0; SETS_PER_EVENT];
    state.stacks = 0;
    state.key_gates = [0; 2];
    let any = HookKey {
        site: site as u32,
        sub_id: SUB_ANY,
    };
    let sub = HookKey {
        site: site as u32,
        sub_id: sub_id as u32,
    };
    list_set(state, 0, any);
    if has_sub != 0 {
        list_set(state, 1, sub);
    }
    let gates = state.key_gates[0] | state.key_gates[1];
    if gates & gate::BINARY != 0 {
        let binary_id = match_process::current_binary_id();
        if binary_id != 0 {
            if state.key_gates[0] & gate::BINARY != 0 {
                let set = SetRef::new(any, binary_id);
                record(state, 1, set, set.get());
            }
            if state.key_gates[1] & gate::BINARY != 0 {
                let set = SetRef::new(sub, binary_id);
                record(state, 3, set, set.get());
            }
        }
    }
    if state.key_gates[0] & gate::PREFIX != 0 {
        prefix_gate(site, u64::from(SUB_ANY), 0);
    }
    let Some(state) = loop_state() else {
        return 0;
    };
    if state.key_gates[1] & gate::PREFIX != 0 {
        prefix_gate(site, sub_id, 1);
    }
    let Some(state) = loop_state() else {
        return 0;
    };
    let mut left = 0;
    unrolled!([0, 1, 2, 3, 4, 5], |i| left |= state.words_left[i]);
    i64::from(left != 0)
}

/// Records the `HOOK_LISTS` set of `key` as key `k`'s listed set (`sets`
/// index `2 * k`), with the gates it announces.
#[inline(always)]
fn list_set(state: &mut LoopState, k: usize, key: HookKey) {
    let Some(set) = (unsafe { HOOK_LISTS.get(&key) }) else {
        return;
    };
    state.key_gates[k] = set.gated;
    state.prefix_hooks[k] = set.prefix_hook;
    state.prefix_args[k] = set.prefix_arg;
    record(state, 2 * k, SetRef::new(key, 0), Some(set));
}

/// Records `set`, found as `at`, in `sets[i]`: its words to walk and the
/// stacks its hooks may post.
#[inline(always)]
fn record(state: &mut LoopState, i: usize, at: SetRef, set: Option<&HookSet>) {
    let Some(set) = set else {
        return;
    };
    state.sets[i] = at;
    state.words_left[i] = set.summary;
    state.stacks |= set.stacks;
}

/// Reads the argument key `k`'s prefix gates are keyed by, as their hook
/// `LoopState::prefix_hooks[k]` does, and looks the gates of (`site`,
/// `sub_id`) up by its string. The set found is copied to
/// `LoopState::prefix_sets[k]` and recorded as `sets[PREFIX_SETS_AT + k]`.
/// A path cut short (its first bytes unknown) takes the key's
/// every-prefix entry: each of those hooks then holds, as it would.
#[no_mangle]
#[inline(never)]
pub extern "C" fn prefix_gate(site: u64, sub_id: u64, k: u64) -> i64 {
    let k = (k & 1) as usize;
    let Some(state) = loop_state() else {
        return 0;
    };
    let (hook_slot, arg) = (state.prefix_hooks[k], state.prefix_args[k]);
    if read_arg_step(u64::from(arg), u64::from(hook_slot)) != 0 {
        return 0;
    }
    let (Some(buf), Some(key)) = (scratch(&EVENT_BUF), scratch(&GATE_KEY)) else {
        return 0;
    };
    let (buf, key) = unsafe { (&*buf, &mut *key) };
    let (Some(value), Some(slot)) = (
        at(&buf.event.args, arg as usize),
        at(&buf.data, arg as usize),
    ) else {
        return 0;
    };
    let value = value & !FILE_TYPE_BITS;
    let len = if value & PATH_CUT != 0 {
        key.data.site = site as u32 | PREFIX_GATE_ALL;
        0
    } else {
        key.data.site = site as u32;
        value.min(STR_MATCH_LEN as u64) as u32
    };
    key.data.sub_id = sub_id as u32;
    let src = unsafe { core::slice::from_raw_parts(slot.as_ptr(), STR_MATCH_LEN) };
    if unsafe { bpf_probe_read_kernel_buf(src.as_ptr(), &mut key.data.bytes) }.is_err() {
        return 0;
    }
    key.prefix_len = STR_TRIE_HEADER_BITS + 8 * len;
    let Some(found) = (unsafe { PREFIX_GATES.get(key) }) else {
        return 0;
    };
    let Some(state) = loop_state() else {
        return 0;
    };
    state.prefix_sets[k] = *found;
    let set = &state.prefix_sets[k];
    let (summary, stacks) = (set.summary, set.stacks);
    let i = PREFIX_SETS_AT + k;
    state.sets[i] = SetRef::in_loop(k as u32);
    state.words_left[i] = summary;
    state.stacks |= stacks;
    0
}

/// Index of the lowest set bit of `x` (not 0), without branches: the
/// bits below it, counted. A branch per bit would multiply the paths the
/// verifier follows, and LLVM lowers `trailing_zeros` through a table.
#[inline(always)]
fn lowest_bit(x: u64) -> u64 {
    let mut v = (x & x.wrapping_neg()).wrapping_sub(1);
    v -= (v >> 1) & 0x5555_5555_5555_5555;
    v = (v & 0x3333_3333_3333_3333) + ((v >> 2) & 0x3333_3333_3333_3333);
    v = (v + (v >> 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    (v.wrapping_mul(0x0101_0101_0101_0101) >> 56) & 63
}

/// Loop step: runs the hooks of the next non-zero word of the sets
/// `prepare_sets` found, in order; returns 1 when none is left.
#[no_mangle]
#[inline(never)]
pub extern "C" fn walk_word(_turn: u64) -> i64 {
    let Some(state) = loop_state() else {
        return 1;
    };
    let mut set = SETS_PER_EVENT;
    unrolled!([7, 6, 5, 4, 3, 2, 1, 0], |i| if state.words_left[i] != 0 {
        set = i;
    });
    if set >= SETS_PER_EVENT {
        return 1;
    }
    let left = state.words_left[set];
    let w = lowest_bit(left);
    state.words_left[set] = left & (left - 1);
    // Masked, not checked: both arrays are a power of two long.
    let Some(hooks) = state.sets[set % SETS_PER_EVENT].get() else {
        return 0;
    };
    let mut bits = hooks.words[w as usize % HOOK_SET_WORDS];
    let mut turn = 0;
    while turn < 64 && bits != 0 {
        let slot = w * 64 + lowest_bit(bits);
        bits &= bits - 1;
        run_list_item(slot);
        turn += 1;
    }
    0
}

/// Runs the hook in `slot` on the context in `LoopState::ctx`, keeping
/// the first enforced Override's errno. The hook is evaluated here, not in
/// a call of its own (see `run_lists`).
#[no_mangle]
#[inline(never)]
pub extern "C" fn run_list_item(slot: u64) -> i64 {
    let slot = slot as u32;
    let Some(state) = loop_state() else {
        return 1;
    };
    let ctx = state.ctx;
    if let Some(hook) = HOOKS.get(slot) {
        let ret = run_hook(ctx, slot, hook);
        if let Some(state) = loop_state() {
            if state.list_ret == 0 {
                state.list_ret = ret;
            }
        }
    }
    0
}

/// Evaluates one hook; returns the errno of an enforced Override, or 0.
/// `ctx` is the program's context (see `LoopState::ctx`).
#[inline(always)]
fn run_hook(ctx: u64, hook_slot: u32, hook: &HookConf) -> i32 {
    if !in_cgroup_scope(hook) {
        return 0;
    }
    let Some(state) = loop_state() else {
        return 0;
    };
    state.ctx = ctx;
    let exit_half = hook.return_half == return_half::EXIT;
    let entry_half = hook.return_half == return_half::ENTRY;
    if exit_half && take_armed(hook.pair_slot as u64) == 0 {
        return 0;
    }
    if let Some(state) = loop_state() {
        state.owner.tgid = 0;
    }
    repeat!(hook.n_args, MAX_ARGS, read_arg_step(hook_slot as u64));
    // `returnArgAction`, before the return filters, as in Tetragon.
    if exit_half && hook.ret_sock_action != 0 {
        track_sock(0, u64::from(hook.ret_sock_action == action::TRACK_SOCK));
    }
    let data_len = (hook.data_slots as u32).min(MAX_ARGS as u32) * STR_LEN as u32;
    if hook.n_selectors == 0 {
        if entry_half {
            arm(hook_slot as u64, 0);
        }
        note_outcome(Outcome {
            action: action::POST,
            value: 0,
            enforced: false,
        });
        post(hook_slot, hook, 0, data_len, 0, 0);
        return 0;
    }
    let Some(state) = loop_state() else {
        return 0;
    };
    // Index of the first matching selector, or -1.
    state.matched = -1;
    if exit_half {
        // Only the selector that matched at entry.
        eval_selector(u64::from(state.armed.selector), hook_slot as u64);
    } else {
        repeat!(
            hook.n_selectors,
            MAX_SELECTORS,
            eval_selector(hook_slot as u64)
        );
    }
    let s = loop_state().map_or(-1, |state| state.matched);
    if (0..MAX_SELECTORS as i32).contains(&s) {
        if entry_half {
            arm(hook_slot as u64, s as u64);
        }
        return act(
            hook_slot,
            hook,
            &hook.selectors[s as usize],
            s as u8,
            data_len,
        );
    }
    0
}

/// Called by the entry half of a return hook (`run_hook` checks): records
/// that selector `selector` matched this thread's call, for the exit half.
#[no_mangle]
#[inline(never)]
pub extern "C" fn arm(hook_slot: u64, selector: u64) -> i64 {
    let Some(hook) = HOOKS.get(hook_slot as u32) else {
        return 0;
    };
    let copy_ptr = match (hook.copy_arg as usize).checked_sub(1) {
        Some(i) => scratch(&EVENT_BUF)
            .map(|p| unsafe { &*p })
            .and_then(|buf| at(&buf.event.args, i).copied())
            .unwrap_or(0),
        None => 0,
    };
    let key = ReturnKey {
        pid_tgid: bpf_get_current_pid_tgid(),
        slot: hook_slot as u32,
        _pad: 0,
    };
    let armed = ReturnArmed {
        install_id: hook.install_id,
        selector: selector as u32,
        copy_ptr,
    };
    let _ = RETURN_ARMED.insert(&key, &armed, 0);
    0
}

/// The exit half of a return hook: 1 when its entry half (in `entry_slot`,
/// as written then) matched this thread's call, whose record it takes
/// into `LoopState::armed`; 0 otherwise.
#[no_mangle]
#[inline(never)]
pub extern "C" fn take_armed(entry_slot: u64) -> i64 {
    let key = ReturnKey {
        pid_tgid: bpf_get_current_pid_tgid(),
        slot: entry_slot as u32,
        _pad: 0,
    };
    let Some(armed) = (unsafe { RETURN_ARMED.get(&key) }).copied() else {
        return 0;
    };
    let _ = RETURN_ARMED.remove(&key);
    let current = HOOKS.get(entry_slot as u32).map(|h| h.install_id);
    let Some(state) = loop_state() else {
        return 0;
    };
    if current != Some(armed.install_id) || armed.selector >= MAX_SELECTORS as u32 {
        return 0;
    }
    state.armed = armed;
    1
}

/// Loop step: reads argument `index` of hook `hook_slot` (and its data, if any).
#[no_mangle]
#[inline(never)]
pub extern "C" fn read_arg_step(index: u64, hook_slot: u64) -> i64 {
    let i = index as usize;
    let (Some(hook), Some(buf), Some(state)) = (
        HOOKS.get(hook_slot as u32),
        scratch(&EVENT_BUF),
        loop_state(),
    ) else {
        return 1;
    };
    if index == 0 {
        // No `maxData` buffer until this hook's is read: another hook's
        // (another event's) must never be posted with its event.
        state.data_len = 0;
    }
    let buf = unsafe { &mut *buf };
    let (Some(spec), Some(data), Some(tail), Some(slot)) = (
        at(&hook.args, i),
        at_mut(&mut buf.data, i),
        at_mut(&mut buf.path_tails, i),
        at_mut(&mut buf.event.args, i),
    ) else {
        return 1;
    };
    let ctx = TracePointContext::new(state.ctx as *mut c_void);
    // A 32-bit syscall's registers are 32 bits wide: the kernel uses the
    // low half only, so an `int 0x80` from a 64-bit task cannot hide a
    // value behind high bits.
    let compat = state.compat & 1;
    let shift = compat * 32;
    let raw = read_arg(&ctx, spec, shift);
    let raw = if spec.field.present != 0 {
        follow_field(spec, hook_slot, index, raw)
    } else {
        raw
    };
    let kind = spec.kind;
    note_sock(i, kind, raw);
    let value = if kind == arg_kind::SYSCALL64 {
        raw | u64::from(compat << 31)
    } else if arg_kind::has_data(kind) {
        // A `__data_loc` field says where in the record its string is; an
        // array is in the record itself.
        let (kind, raw) = match kind {
            arg_kind::DATA_LOC => (arg_kind::STRING, state.ctx.wrapping_add(raw & 0xffff)),
            arg_kind::CONST_BUF => (
                arg_kind::CHAR_BUF,
                state.ctx.wrapping_add(u64::from(spec.offset)),
            ),
            _ => (kind, raw),
        };
        let (raw, size) = match spec.size_from {
            size_from::NONE => (raw, STR_LEN as u64 - 1),
            size_from::CONSTANT => (raw, u64::from(spec.size_offset)),
            size_from::RETURN_COPY => {
                let ret = unsafe { ctx.read_at::<i64>(spec.size_offset as usize) }.unwrap_or(0);
                let ptr = loop_state().map_or(0, |state| state.armed.copy_ptr);
                (ptr, ret.max(0) as u64)
            }
            _ => {
                let size = unsafe { ctx.read_at::<u64>(spec.size_offset as usize) }.unwrap_or(0);
                (raw, (size << shift) >> shift)
            }
        };
        if u64::from(hook.max_data_arg) == index + 1 {
            note_max_data(kind, raw, size);
        }
        read_args::read_data(kind, raw, size, data.as_mut_ptr(), tail.as_mut_ptr())
    } else {
        raw
    };
    // Kept in map memory, not on the stack: the verifier does not track
    // map contents, so values read by different kinds do not multiply the
    // states it explores.
    *slot = value;
    0
}

/// Keeps the `struct sock` address of argument `i` (a `sock`, or the
/// `sk` of a `socket`) for TrackSock, and the owner a TrackSock recorded
/// for it, if any, for the event.
#[inline(always)]
fn note_sock(i: usize, kind: u8, raw: u64) {
    let sk = match kind {
        arg_kind::SOCK => raw,
        arg_kind::SOCKET => STRUCT_OFFSETS
            .get(0)
            .filter(|o| o.valid != 0)
            .and_then(|o| unsafe {
                read_kernel::<u64>((raw as *const u8).wrapping_add(o.socket_sk as usize))
            })
            .unwrap_or(0),
        _ => 0,
    };
    let Some(state) = loop_state() else {
        return;
    };
    if let Some(slot) = at_mut(&mut state.socks, i) {
        *slot = sk;
    }
    if sk != 0 && SOCK_TRACKING.get(0).is_some_and(|t| *t != 0) {
        if let Some(owner) = unsafe { SOCK_OWNERS.get(&sk) } {
            state.owner = *owner;
        }
    }
}

/// Keeps where the buffer of the hook's `maxData` argument is, for
/// `post_data` to post it whole if the event is posted.
#[inline(always)]
fn note_max_data(kind: u8, raw: u64, size: u64) {
    let (ptr, len) = read_args::buffer_of(kind, raw, size);
    if let Some(state) = loop_state() {
        state.data_ptr = ptr;
        state.data_len = len.min(u64::from(MAX_DATA));
    }
}

/// Posts the buffer `note_max_data` kept, in `DataRecord`s with the
/// event's `tid` and `ktime_ns` and the argument's index `arg`, before the
/// event: user space puts the pieces together when the event comes. A
/// global function: verified once, not at every place an event is posted.
#[no_mangle]
#[inline(never)]
pub extern "C" fn post_data(tid: u64, ktime_ns: u64, arg: u64) -> i64 {
    let (Some(state), Some(rec)) = (loop_state(), scratch(&DATA_BUF)) else {
        return 1;
    };
    unsafe {
        (*rec).kind = record::DATA;
        (*rec).tid = tid as u32;
        (*rec).ktime_ns = ktime_ns;
        (*rec).arg = arg as u16;
    }
    let pieces = state.data_len.div_ceil(DATA_CHUNK as u64);
    repeat!(pieces, DATA_CHUNKS, post_data_step());
    0
}

/// Loop step: posts piece `piece` of the `maxData` buffer.
#[no_mangle]
#[inline(never)]
pub extern "C" fn post_data_step(piece: u64) -> i64 {
    let (Some(state), Some(rec)) = (loop_state(), scratch(&DATA_BUF)) else {
        return 1;
    };
    let offset = piece * DATA_CHUNK as u64;
    let left = state.data_len.saturating_sub(offset);
    if left == 0 {
        return 1;
    }
    // 1..=DATA_CHUNK, in a form every verifier bounds.
    let n = ((left.min(DATA_CHUNK as u64) - 1) & (DATA_CHUNK as u64 - 1)) + 1;
    let from = state.data_ptr.wrapping_add(offset) as *const c_void;
    unsafe {
        (*rec).offset = offset as u32;
        (*rec).len = n as u16;
        // The legacy helper, as for every buffer: user and kernel memory.
        if gen::bpf_probe_read((*rec).bytes.as_mut_ptr().cast(), n as u32, from) != 0 {
            return 1;
        }
        let bytes = core::slice::from_raw_parts(rec as *const u8, DATA_HEADER_LEN + n as usize);
        if EVENTS.output(bytes, 0).is_err() {
            count_loss(record::DATA);
            return 1;
        }
    }
    0
}

/// The field `spec.field` names behind pointer `base`: the pointers on its
/// path followed (one loop step each), then the field loaded, or its
/// address for arrays and embedded structs. 0 when a pointer on the way
/// is NULL or unreadable.
#[inline(always)]
fn follow_field(spec: &ArgSpec, hook_slot: u64, arg: u64, base: u64) -> u64 {
    let Some(state) = loop_state() else {
        return 0;
    };
    state.field = base;
    let field = &spec.field;
    repeat!(
        field.n_loads,
        MAX_FIELD_LOADS,
        load_field_pointer(hook_slot, arg)
    );
    let user = field.user != 0;
    let offset = if user {
        field.offset as i16 as i64 as u64
    } else {
        u64::from(field.offset)
    };
    let at = match loop_state() {
        Some(state) if state.field != 0 => state.field.wrapping_add(offset),
        _ => return 0,
    };
    let src = at as *const u8;
    let signed = spec.signed != 0;
    unsafe {
        match field.size {
            0 => Some(at),
            1 if signed => read_field::<i8>(user, src).map(|v| v as i64 as u64),
            1 => read_field::<u8>(user, src).map(u64::from),
            2 if signed => read_field::<i16>(user, src).map(|v| v as i64 as u64),
            2 => read_field::<u16>(user, src).map(u64::from),
            4 if signed => read_field::<i32>(user, src).map(|v| v as i64 as u64),
            4 => read_field::<u32>(user, src).map(u64::from),
            _ => read_field::<u64>(user, src),
        }
    }
    .unwrap_or(0)
}

/// A field's value, from user memory (`FieldPath::user`) or kernel memory.
#[inline(always)]
unsafe fn read_field<T>(user: bool, src: *const u8) -> Option<T> {
    if user {
        unsafe { aya_ebpf::helpers::bpf_probe_read_user(src.cast::<T>()) }.ok()
    } else {
        unsafe { read_kernel(src) }
    }
}

/// Loop step: follows pointer `turn` of the field path of argument `arg`
/// of hook `hook_slot` from `LoopState::field`; stops at a NULL.
#[no_mangle]
#[inline(never)]
pub extern "C" fn load_field_pointer(turn: u64, hook_slot: u64, arg: u64) -> i64 {
    let Some(offset) = HOOKS
        .get(hook_slot as u32)
        .and_then(|hook| at(&hook.args, arg as usize))
        .and_then(|spec| at(&spec.field.loads, turn as usize))
    else {
        return 1;
    };
    let Some(state) = loop_state() else {
        return 1;
    };
    let next = match state.field {
        0 => None,
        base => unsafe { read_kernel::<u64>(base.wrapping_add(u64::from(*offset)) as *const u8) },
    };
    state.field = next.unwrap_or(0);
    i64::from(state.field == 0)
}

/// Loop step: does selector `index` of hook `hook_slot` match? Stops at
/// the first that does.
#[no_mangle]
#[inline(never)]
pub extern "C" fn eval_selector(index: u64, hook_slot: u64) -> i64 {
    let s = index as usize;
    let hook_slot = hook_slot as u32;
    let Some(sel) = HOOKS.get(hook_slot).and_then(|hook| at(&hook.selectors, s)) else {
        return 1;
    };
    if !match_process::process_matches(hook_slot, s, sel) {
        return 0;
    }
    let Some(state) = loop_state() else {
        return 1;
    };
    state.all_match = 1;
    repeat!(
        sel.n_arg_filters,
        MAX_ARG_FILTERS,
        eval_filter(hook_slot as u64, s as u64)
    );
    match loop_state() {
        Some(state) if state.all_match == 1 => {
            state.matched = s as i32;
            match_process::note_changes(sel);
            return 1;
        }
        _ => {}
    }
    0
}

/// Loop step: does matchArgs filter `index` of selector `selector` hold?
/// Stops at the first that does not.
#[no_mangle]
#[inline(never)]
pub extern "C" fn eval_filter(index: u64, hook_slot: u64, selector: u64) -> i64 {
    let (f, s) = (index as usize, selector as usize);
    let hook_slot = hook_slot as u32;
    let Some(filter) = HOOKS
        .get(hook_slot)
        .and_then(|hook| at(&hook.selectors, s))
        .and_then(|sel| at(&sel.arg_filters, f))
    else {
        return 1;
    };
    let arg = filter.arg as usize;
    let ok = arg < MAX_ARGS
        && if filter.op >= op::STR_EQUAL {
            let at = FilterAt {
                hook_slot,
                selector: s as u8,
                filter: f as u8,
                arg,
            };
            data_filter_matches(&at, filter, arg_value(arg))
        } else {
            filter_matches(hook_slot, s as u8, f as u8, filter, arg_value(arg))
        };
    if ok {
        0
    } else {
        if let Some(state) = loop_state() {
            state.all_match = 0;
        }
        1
    }
}

/// The value of argument `arg` of the hook being evaluated.
#[inline(always)]
fn arg_value(arg: usize) -> u64 {
    match scratch(&EVENT_BUF) {
        Some(buf) if arg < MAX_ARGS => unsafe { (*buf).event.args[arg] },
        _ => 0,
    }
}

/// `shift` is 32 for a 32-bit syscall, whose 8-byte fields (the record's
/// registers) are cut to their low 32 bits and extended as the field's
/// signedness says; 0 otherwise.
#[inline(always)]
fn read_arg(ctx: &TracePointContext, spec: &ArgSpec, shift: u32) -> u64 {
    if spec.source == arg_source::CONSTANT {
        return spec.constant_value();
    }
    if spec.source == arg_source::CURRENT_TASK {
        return unsafe { bpf_get_current_task() };
    }
    let off = spec.offset as usize;
    if spec.source == arg_source::RELATIVE {
        let base = unsafe { ctx.read_at::<u64>(off) }.unwrap_or(0);
        return base.wrapping_add(spec.displacement());
    }
    if spec.source == arg_source::INDEXED {
        let base = unsafe { ctx.read_at::<u64>(off) }.unwrap_or(0);
        let index = unsafe { ctx.read_at::<u64>(spec.index_offset as usize) }.unwrap_or(0);
        return base.wrapping_add(index << (spec.index_shift & 3));
    }
    let signed = spec.signed != 0;
    unsafe {
        match spec.size {
            1 if signed => ctx.read_at::<i8>(off).map(|v| v as i64 as u64),
            1 => ctx.read_at::<u8>(off).map(u64::from),
            2 if signed => ctx.read_at::<i16>(off).map(|v| v as i64 as u64),
            2 => ctx.read_at::<u16>(off).map(u64::from),
            4 if signed => ctx.read_at::<i32>(off).map(|v| v as i64 as u64),
            4 => ctx.read_at::<u32>(off).map(u64::from),
            _ if signed => ctx
                .read_at::<i64>(off)
                .map(|v| ((v << shift) >> shift) as u64),
            _ => ctx.read_at::<u64>(off).map(|v| (v << shift) >> shift),
        }
        .unwrap_or(0)
    }
}

/// Integer fields were sign-extended when read, so GT/LT compare as i64.
fn filter_matches(hook_slot: u32, s: u8, f: u8, filter: &ArgFilter, value: u64) -> bool {
    match filter.op {
        op::IN_MAP | op::NOT_IN_MAP => {
            let key = ArgSetKey {
                hook_slot,
                selector: s,
                filter: f,
                _pad: [0; 2],
                value,
            };
            let present = unsafe { ARG_SETS.get(&key) }.is_some();
            present == (filter.op == op::IN_MAP)
        }
        op::NOT_EQUAL => !any_value(filter, |v| v == value),
        op::EQUAL => any_value(filter, |v| v == value),
        op::GREATER_THAN => any_value(filter, |v| (value as i64) > (v as i64)),
        op::LESS_THAN => any_value(filter, |v| (value as i64) < (v as i64)),
        op::MASK => any_value(filter, |v| value & v != 0),
        op::CAPS_GAINED => value & !arg_value(filter.values[0] as usize) != 0,
        op::IN_RANGE | op::NOT_IN_RANGE => {
            let x = value as i64;
            let n = filter.n_values;
            let v = &filter.values;
            let inside = (n >= 2 && v[0] as i64 <= x && x <= v[1] as i64)
                || (n >= 4 && v[2] as i64 <= x && x <= v[3] as i64);
            inside == (filter.op == op::IN_RANGE)
        }
        _ => false,
    }
}

/// Namespaced policies: is the current task inside one of the hook's
/// cgroup subtrees?
#[inline(always)]
fn in_cgroup_scope(hook: &HookConf) -> bool {
    let n = hook.n_cgroup_scopes as usize;
    if n == 0 {
        return true;
    }
    // User space refuses namespaced policies on such a kernel.
    if load_constant(&HAS_ANCESTOR_CGROUP_ID) == 0 {
        return false;
    }
    let mut inside = false;
    unrolled!([0, 1, 2, 3], |i| if i < n {
        let scope = &hook.cgroup_scopes[i];
        let ancestor = unsafe { bpf_get_current_ancestor_cgroup_id(scope.level as i32) };
        inside |= ancestor == scope.id;
    });
    inside
}

#[inline(always)]
fn any_value(filter: &ArgFilter, pred: impl Fn(u64) -> bool) -> bool {
    let n = filter.n_values as usize;
    let mut hit = false;
    unrolled!([0, 1, 2, 3], |i| hit |= i < n && pred(filter.values[i]));
    hit
}

/// What an enforcement action did: `action::*`, the signal or errno, and
/// whether it was carried out (not in monitor mode).
#[derive(Clone, Copy)]
struct Outcome {
    action: u8,
    value: u32,
    enforced: bool,
}

/// Performs the selector's actions, honouring the policy's mode; returns
/// the errno of an enforced Override, or 0. Not inlined: its stack is then
/// not part of the chain the selector callbacks nest in.
#[inline(never)]
fn act(hook_slot: u32, hook: &HookConf, sel: &Selector, s: u8, data_len: u32) -> i32 {
    let mut post_it = true;
    let mut signal = 0u32;
    let mut errno = 0i32;
    // The first Post with a rate limit, by index.
    let mut rate_action = MAX_ACTIONS;
    let mut stacks = 0u8;
    let mut ima_hash = 0u8;
    // The selector has a Set (the compiler allows one): a flag only, so
    // the verifier follows two cases, not one per index (`queue_write`
    // finds it).
    let mut set = false;
    // The selector has a uprobe Override (the compiler allows one).
    let mut regs = false;
    // The last TrackSock or UntrackSock, which names the event when no
    // enforcement does.
    let mut tracked = action::POST;
    let n = sel.n_actions as usize;
    unrolled!([0, 1, 2], |i| if i < n {
        let a = &sel.actions[i];
        if a.kind == action::POST {
            stacks |= a.stacks;
            ima_hash |= a.ima_hash;
        }
        match a.kind {
            action::POST if a.rate_limit_ns != 0 && rate_action == MAX_ACTIONS => rate_action = i,
            action::NO_POST => post_it = false,
            action::SIGKILL => signal = SIGKILL,
            action::SIGNAL if signal == 0 => signal = a.signal,
            action::OVERRIDE => errno = a.signal as i32,
            action::SET => set = true,
            action::REGS => regs = true,
            action::TRACK_SOCK | action::UNTRACK_SOCK => {
                track_sock(u64::from(a.arg), u64::from(a.kind == action::TRACK_SOCK));
                tracked = a.kind;
            }
            _ => {}
        }
    });
    let mut ret = 0;
    let mut outcome = Outcome {
        action: tracked,
        value: 0,
        enforced: false,
    };
    if signal != 0 || errno != 0 || set || regs {
        let monitor = POLICY_MODE
            .get(hook.policy_slot)
            .is_some_and(|m| *m == MODE_MONITOR);
        if monitor {
            count(hook.policy_slot, |c| c.monitor += 1);
        } else {
            if signal != 0 {
                unsafe { bpf_send_signal(signal) };
            }
            if set {
                queue_write(hook_slot as u64, s as u64);
            }
            if regs {
                if let Some(state) = loop_state() {
                    state.regs_queued = ((u64::from(hook_slot) << 8) | u64::from(s)) + 1;
                }
            }
            ret = errno;
            count(hook.policy_slot, |c| c.enforce += 1);
        }
        outcome = match signal {
            // The event names the action; its value is in the policy.
            0 if errno == 0 => Outcome {
                action: if regs { action::OVERRIDE } else { action::SET },
                value: 0,
                enforced: !monitor,
            },
            0 => Outcome {
                action: action::OVERRIDE,
                value: errno as u32,
                enforced: !monitor,
            },
            SIGKILL => Outcome {
                action: action::SIGKILL,
                value: signal,
                enforced: !monitor,
            },
            _ => Outcome {
                action: action::SIGNAL,
                value: signal,
                enforced: !monitor,
            },
        };
    }
    // Into the event now: the paths that differ only by it meet again
    // before `post`, which the verifier then follows once for them.
    note_outcome(outcome);
    // Only the event is limited: the enforcement above has been done
    // (or counted as elided) whatever the limit says. A Post without its
    // own rateLimit is aggregated when the daemon sets a window.
    if let Some(state) = loop_state() {
        state.repeats = 0;
    }
    let limited =
        rate_action < MAX_ACTIONS || AGGREGATE_WINDOW.get(0).is_some_and(|window| *window != 0);
    if post_it && limited && rate_limited(hook_slot as u64, s as u64, rate_action as u64) != 0 {
        count(hook.policy_slot, |c| c.rate_limited += 1);
        post_it = false;
    }
    if post_it {
        post(hook_slot, hook, s, data_len, stacks, ima_hash);
    }
    ret
}

/// TrackSock (`track` 1) or UntrackSock (0) on the socket argument at
/// `arg`: records the task running as its owner, or forgets it. A global
/// function: verified once, whatever calls it.
#[no_mangle]
#[inline(never)]
pub extern "C" fn track_sock(arg: u64, track: u64) -> i64 {
    let Some(state) = loop_state() else {
        return 1;
    };
    let sk = at(&state.socks, arg as usize).copied().unwrap_or(0);
    if sk == 0 {
        return 1;
    }
    if track == 0 {
        let _ = SOCK_OWNERS.remove(&sk);
        return 0;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    // Built in map memory, not on the stack (see `post`).
    let owner = &mut state.new_owner;
    owner.tgid = (pid_tgid >> 32) as u32;
    owner.tid = pid_tgid as u32;
    owner.uid = uid_gid as u32;
    owner.gid = (uid_gid >> 32) as u32;
    owner.comm = bpf_get_current_comm().unwrap_or([0; 16]);
    let _ = SOCK_OWNERS.insert(&sk, owner, 0);
    0
}

/// Writes the event's enforcement action (or Post) into the event buffer,
/// for `post`.
#[inline(always)]
fn note_outcome(outcome: Outcome) {
    if let Some(buf) = scratch(&EVENT_BUF) {
        // SAFETY: this CPU's event buffer, live while the program runs.
        let ev = unsafe { &mut (*buf).event };
        ev.action = outcome.action;
        ev.enforced = outcome.enforced as u8;
        ev.signal = outcome.value;
    }
}

/// Queues the write of the Set action of selector `selector` of the hook
/// in `hook_slot`, for `uprobe_dispatch_writing`: its value over the USDT
/// argument `set.arg`, in user memory at a register (read from the
/// uprobe's pt_regs) plus a displacement, as `compile/usdt.rs` lays out a
/// memory operand. A global function: verified once, whatever calls it.
#[no_mangle]
#[inline(never)]
pub extern "C" fn queue_write(hook_slot: u64, selector: u64) -> i64 {
    let Some(hook) = HOOKS.get(hook_slot as u32) else {
        return 1;
    };
    let Some(sel) = at(&hook.selectors, selector as usize) else {
        return 1;
    };
    let mut index = MAX_ACTIONS;
    unrolled!([0, 1, 2], |i| if sel.actions[i].kind == action::SET {
        index = i;
    });
    let Some(set) = at(&sel.actions, index) else {
        return 1;
    };
    let Some(spec) = at(&hook.args, set.arg as usize) else {
        return 1;
    };
    let Some(state) = loop_state() else {
        return 1;
    };
    let regs = TracePointContext::new(state.ctx as *mut c_void);
    let Ok(base) = (unsafe { regs.read_at::<u64>(spec.offset as usize) }) else {
        return 1;
    };
    let displacement = if spec.source == arg_source::RELATIVE {
        spec.displacement()
    } else {
        spec.field.offset as i16 as i64 as u64
    };
    let addr = base.wrapping_add(displacement);
    if let Some(w) = at_mut(&mut state.writes, state.n_writes as usize) {
        *w = UserWrite {
            addr,
            value: set.signal,
            _pad: 0,
        };
        state.n_writes += 1;
    }
    0
}

/// Tetragon's Post `rateLimit`: 1 when an identical event (same hook,
/// selector and Post action, same thread, process or none as the scope
/// says, same argument values) was posted less than the action's period
/// ago, so this one is not posted; 0 when it is to be posted, its time
/// then recorded. The period runs from the last event posted, as in
/// Tetragon. A global function: verified once, whatever calls it.
#[no_mangle]
#[inline(never)]
pub extern "C" fn rate_limited(hook_slot: u64, selector: u64, action_index: u64) -> i64 {
    let Some(hook) = HOOKS.get(hook_slot as u32) else {
        return 0;
    };
    let Some(sel) = at(&hook.selectors, selector as usize) else {
        return 0;
    };
    // No Post with a rateLimit (`MAX_ACTIONS`): the aggregation window,
    // per process.
    let (period, scope) = match at(&sel.actions, action_index as usize) {
        Some(a) => (a.rate_limit_ns, a.rate_limit_scope),
        None => (
            AGGREGATE_WINDOW.get(0).copied().unwrap_or(0),
            rate_scope::PROCESS,
        ),
    };
    if period == 0 {
        return 0;
    }
    let n_args = hook.n_args;
    let pid_tgid = bpf_get_current_pid_tgid();
    let scope_id = match scope {
        rate_scope::GLOBAL => 0,
        rate_scope::PROCESS => (pid_tgid >> 32) as u32,
        _ => pid_tgid as u32,
    };
    let Some(state) = loop_state() else {
        return 0;
    };
    state.rate_key = RateLimitKey {
        install_id: hook.install_id,
        selector: selector as u8,
        action: action_index as u8,
        _pad: [0; 2],
        scope_id,
        _pad2: 0,
        args_hash: HASH_SEED,
    };
    repeat!(n_args, MAX_ARGS, rate_hash_arg(hook_slot));
    let Some(state) = loop_state() else {
        return 0;
    };
    let now = unsafe { bpf_ktime_get_ns() };
    if let Some(entry) = RATE_LIMITS.get_ptr_mut(&state.rate_key) {
        // SAFETY: a value of this map, live while the program runs; other
        // CPUs change `repeats` only by atomic adds.
        let repeats = unsafe { &raw mut (*entry).repeats };
        if now.wrapping_sub(unsafe { (*entry).last_ns }) < period {
            atomic_add(repeats, 1);
            return 1;
        }
        unsafe { (*entry).last_ns = now };
        // Those counted since the last post go with this one; any counted
        // meanwhile stay for the next (an add, never a lost store).
        let folded = unsafe { core::ptr::read_volatile(repeats) };
        if folded != 0 {
            atomic_add(repeats, folded.wrapping_neg());
        }
        state.repeats = folded.min(u64::from(u32::MAX)) as u32;
        return 0;
    }
    // A full LRU forgets its oldest key: at worst an extra event.
    let fresh = RateLimitState {
        last_ns: now,
        repeats: 0,
    };
    let _ = RATE_LIMITS.insert(&state.rate_key, &fresh, 0);
    0
}

/// Adds `n` to a map value other CPUs add to as well: a BPF atomic add
/// whose old value is not asked for, which Linux 5.10 has (XADD).
#[inline(always)]
fn atomic_add(dst: *mut u64, n: u64) {
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(dst, n);
    }
}

const HASH_SEED: u64 = 0xcbf2_9ce4_8422_2325;

/// Mixes one 64-bit word into a hash (a multiply-xorshift step): the
/// hash only tells identical events apart; nothing depends on its value.
#[inline(always)]
fn mix(hash: u64, word: u64) -> u64 {
    let h = (hash ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 29)
}

/// The bytes of argument data slot that hold an argument of `kind` whose
/// value is `value` (see `read_args::read_data`): a string's or a path's
/// (at most the slot), a socket's or a credential's record, none for
/// integers.
#[inline(always)]
fn data_bytes(kind: u8, value: u64) -> u32 {
    match kind {
        arg_kind::INT | arg_kind::SYSCALL64 => 0,
        arg_kind::SOCKADDR | arg_kind::SOCK | arg_kind::SOCKET => {
            core::mem::size_of::<SockInfo>() as u32
        }
        arg_kind::CRED => core::mem::size_of::<CredInfo>() as u32,
        arg_kind::SKB => core::mem::size_of::<SkbInfo>() as u32,
        arg_kind::USER_NS => core::mem::size_of::<UserNsInfo>() as u32,
        _ if arg_kind::record(kind).is_some() => RECORD_LEN as u32,
        _ => (value & (PATH_CUT - 1)).min(STR_LEN as u64 - 1) as u32,
    }
}

// Argument data slots are read as u64 words.
const _: () = assert!(
    core::mem::size_of::<Event>() % 8 == 0
        && STR_LEN % 8 == 0
        && core::mem::size_of::<SockInfo>() < STR_LEN
        && core::mem::size_of::<CredInfo>() < STR_LEN
);
const SLOT_WORDS: usize = STR_LEN / 8;

/// Loop step: mixes argument `index` (its value, then its data) into
/// `rate_key.args_hash`.
#[no_mangle]
#[inline(never)]
pub extern "C" fn rate_hash_arg(index: u64, hook_slot: u64) -> i64 {
    let i = index as usize;
    let (Some(hook), Some(buf), Some(state)) = (
        HOOKS.get(hook_slot as u32),
        EVENT_BUF.get_ptr(0),
        loop_state(),
    ) else {
        return 1;
    };
    let (Some(spec), Some(value)) = (at(&hook.args, i), at(unsafe { &(*buf).event.args }, i))
    else {
        return 1;
    };
    let len = data_bytes(spec.kind, *value);
    state.rate_key.args_hash = mix(state.rate_key.args_hash, *value);
    state.rate_arg = i as u32;
    state.rate_len = len;
    repeat!(len.div_ceil(8), SLOT_WORDS, rate_hash_word());
    0
}

/// Loop step: mixes word `index` of the data slot `rate_arg`, without the
/// bytes past `rate_len` (leftovers of earlier events).
#[no_mangle]
#[inline(never)]
pub extern "C" fn rate_hash_word(index: u64) -> i64 {
    let (Some(buf), Some(state)) = (EVENT_BUF.get_ptr(0), loop_state()) else {
        return 1;
    };
    let Some(slot) = at(unsafe { &(*buf).data }, state.rate_arg as usize) else {
        return 1;
    };
    // SAFETY: the slot is 8-byte aligned (asserted above) and STR_LEN long.
    let words = unsafe { &*(slot as *const [u8; STR_LEN] as *const [u64; SLOT_WORDS]) };
    let Some(word) = at(words, index as usize) else {
        return 1;
    };
    let valid = (state.rate_len as u64).saturating_sub(index * 8);
    let word = if valid < 8 {
        *word & ((1u64 << (valid * 8)) - 1)
    } else {
        *word
    };
    state.rate_key.args_hash = mix(state.rate_key.args_hash, word);
    0
}

#[inline(always)]
fn count(policy_slot: u32, bump: impl FnOnce(&mut PolicyCounters)) {
    if let Some(c) = POLICY_COUNTERS.get_ptr_mut(policy_slot) {
        bump(unsafe { &mut *c });
    }
}

/// Writes an event, with `data_len` bytes of argument data and the
/// `stacks` (`stack::*`) `run_lists` took, to the ring buffer; its
/// action, as `note_outcome` wrote it. With `ima_hash`, the hook's IMA
/// companion is told to follow it with the hash (`ImaRecord`).
#[inline(always)]
fn post(hook_slot: u32, hook: &HookConf, s: u8, data_len: u32, stacks: u8, ima_hash: u8) {
    // A call counts once, when its exit half posts.
    if hook.return_half != return_half::ENTRY {
        count(hook.policy_slot, |c| c.post += 1);
    }
    let Some(buf) = scratch(&EVENT_BUF) else {
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    let ktime_ns = unsafe { bpf_ktime_get_ns() };
    // Before the event, and before its lengths are worked out: the
    // verifier keeps their bounds through no calls.
    if hook.max_data_arg != 0 {
        // Under the thread the event names (a tracked socket's owner's),
        // which user space joins the pieces by.
        let tid = match loop_state() {
            Some(state) if hook.return_half == return_half::NONE && state.owner.tgid != 0 => {
                u64::from(state.owner.tid)
            }
            _ => pid_tgid,
        };
        post_data(tid, ktime_ns, u64::from(hook.max_data_arg - 1));
    }
    let mode = POLICY_MODE.get(hook.policy_slot).copied().unwrap_or(0);
    let data_len = data_len.min((MAX_ARGS * STR_LEN) as u32);
    unsafe {
        let ev = &mut (*buf).event;
        ev.kind = record::POLICY_EVENT;
        ev.data_len = data_len;
        ev.ktime_ns = ktime_ns;
        ev.policy_slot = hook.policy_slot;
        ev.hook_slot = hook_slot;
        ev.tgid = (pid_tgid >> 32) as u32;
        ev.tid = pid_tgid as u32;
        ev.uid = uid_gid as u32;
        ev.gid = (uid_gid >> 32) as u32;
        ev.mode = mode as u8;
        ev.selector = s;
        ev.repeats = loop_state().map_or(0, |state| state.repeats);
        ev.return_half = hook.return_half;
        ev.pair_slot = hook.pair_slot;
        ev.ima_hash = ima_request(u64::from(ima_hash)) as u8;
        ev.comm = bpf_get_current_comm().unwrap_or([0; 16]);
        // A socket argument's owner, where a TrackSock recorded one, names
        // the event. Not on return hooks: their halves are paired by
        // thread. Copied from map memory: 5.10 counts every byte of stack
        // along the deepest call chain.
        if hook.return_half == return_half::NONE {
            if let Some(state) = loop_state().filter(|state| state.owner.tgid != 0) {
                let o = &state.owner;
                ev.tgid = o.tgid;
                ev.tid = o.tid;
                ev.uid = o.uid;
                ev.gid = o.gid;
                ev.comm = o.comm;
            }
        }
        let tgid = ev.tgid;
        match TASK_EXE.get_ptr(&tgid) {
            Some(exe) => {
                if bpf_probe_read_kernel_buf((*exe).bytes.as_ptr(), &mut ev.exe).is_err() {
                    ev.exe[0] = 0;
                }
            }
            None => ev.exe[0] = 0,
        }
        (ev.kernel_stack_len, ev.user_stack_len) = if stacks != 0 {
            copy_stacks(buf, data_len, stacks)
        } else {
            (0, 0)
        };
        let len = core::mem::size_of::<Event>()
            + data_len as usize
            + ev.kernel_stack_len as usize
            + ev.user_stack_len as usize;
        let bytes = core::slice::from_raw_parts(buf as *const u8, len);
        if EVENTS.output(bytes, 0).is_err() {
            count_loss(record::POLICY_EVENT);
        }
    }
}

/// Copies the stacks `wanted` (`stack::*`) that `run_lists` took to just
/// after the event's argument data, the kernel's first; returns the bytes
/// of each.
#[inline(always)]
fn copy_stacks(buf: *mut EventBuf, data_len: u32, wanted: u8) -> (u16, u16) {
    let Some(stacks) = STACKS.get_ptr(0) else {
        return (0, 0);
    };
    let (kernel, user) = unsafe { (&(*stacks).kernel, &(*stacks).user) };
    let mut at = data_len;
    let kernel_len = if wanted & stack::KERNEL != 0 {
        copy_frames(buf, at, unsafe { (*stacks).kernel_len }, kernel)
    } else {
        0
    };
    at += kernel_len;
    let user_len = if wanted & stack::USER != 0 {
        copy_frames(buf, at, unsafe { (*stacks).user_len }, user)
    } else {
        0
    };
    (kernel_len as u16, user_len as u16)
}

/// Copies `len` bytes of `frames` to `at` in the event's data; returns
/// the bytes copied.
#[inline(always)]
fn copy_frames(buf: *mut EventBuf, at: u32, len: u32, frames: &[u64; STACK_DEPTH]) -> u32 {
    // Opaque copies, bounded where they are used (the verifier follows
    // the checked values, not other forms LLVM may derive from them).
    let len = unsafe { core::ptr::read_volatile(&len) } as usize;
    let at = unsafe { core::ptr::read_volatile(&at) } as usize;
    if len == 0 || len > STACK_BYTES || at > MAX_ARGS * STR_LEN + STACK_BYTES {
        return 0;
    }
    let dst = unsafe { ((*buf).data.as_mut_ptr() as *mut u8).add(at) };
    let copied = unsafe {
        gen::bpf_probe_read_kernel(
            dst as *mut c_void,
            len as u32,
            frames.as_ptr() as *const c_void,
        )
    };
    if copied == 0 {
        len as u32
    } else {
        0
    }
}

/// This CPU's `PATH_SCRATCH`, zeroed: an executable's path is a hash key
/// (`TASK_EXE` values, `BINARY_IDS` keys), so the tail must be stable.
#[inline(always)]
fn zeroed_exe_scratch() -> Option<&'static mut ExePath> {
    let path = unsafe { &mut *scratch(&PATH_SCRATCH)? };
    for chunk in path.bytes.chunks_exact_mut(8) {
        chunk.copy_from_slice(&[0; 8]);
    }
    Some(path)
}

#[tracepoint]
pub fn task_exec(ctx: TracePointContext) -> u32 {
    let Some(_held) = Held::take() else {
        return 0;
    };
    let Some(offsets) = TASK_OFFSETS.get(0) else {
        return 0;
    };
    let Ok(loc) = (unsafe { ctx.read_at::<u32>(offsets.exec_filename as usize) }) else {
        return 0;
    };
    let Some(path) = zeroed_exe_scratch() else {
        return 0;
    };
    let src = unsafe { (ctx.as_ptr() as *const u8).add((loc & 0xffff) as usize) };
    if unsafe { bpf_probe_read_kernel_str_bytes(src, &mut path.bytes[..PATH_LEN - 1]) }.is_err() {
        return 0;
    }
    // A relative path (`./tool`) would let a binary evade matchBinaries:
    // use the executable's absolute path, from the kernel's path walk.
    if path.bytes[0] != b'/' {
        read_args::read_exe(unsafe { bpf_get_current_task() }, path.bytes.as_mut_ptr());
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let _ = TASK_EXE.insert(&tgid, path, 0);
    // Before the snapshot below replaces it: what the process could do
    // before this exec (see `ExecBinary::old_permitted`).
    let old_permitted = unsafe { EXEC_CREDS.get(&tgid) }
        .map_or(UNKNOWN_CAPS, |s| s.caps[cap_set::PERMITTED as usize]);
    match_process::record_exec_creds(u64::from(tgid));
    let Some(mut entry) = EVENTS.reserve::<ExecRecord>(0) else {
        count_loss(record::EXEC);
        return 0;
    };
    let rec = entry.as_mut_ptr();
    let uid_gid = bpf_get_current_uid_gid();
    unsafe {
        (*rec).kind = record::EXEC;
        (*rec).tgid = tgid;
        (*rec).ktime_ns = bpf_ktime_get_ns();
        (*rec).tid = pid_tgid as u32;
        (*rec).uid = uid_gid as u32;
        (*rec).gid = (uid_gid >> 32) as u32;
        if bpf_probe_read_kernel_buf(path.bytes.as_ptr(), &mut (*rec).filename).is_err() {
            (*rec).filename[0] = 0;
        }
        (*rec).args_len = read_argv(offsets, (*rec).args.as_mut_ptr());
        (*rec).ppid = read_args::parent_tgid();
        (*rec).cwd_len = read_args::read_cwd((*rec).cwd.as_mut_ptr()) as u32;
        read_exec_identity(tgid, &mut (*rec).cred, &mut (*rec).ns);
        (*rec).ns_pid = match_process::container_tgid();
        read_exec_binary(&mut (*rec).binary, old_permitted);
    }
    entry.submit(0);
    0
}

/// The executable's inode and the new credentials (see `ExecBinary`);
/// `valid` stays 0 when a read fails.
#[inline(always)]
fn read_exec_binary(out: &mut ExecBinary, old_permitted: u64) {
    *out = ExecBinary {
        old_permitted,
        ..ExecBinary::default()
    };
    let Some(o) = STRUCT_OFFSETS.get(0).filter(|o| o.valid != 0) else {
        return;
    };
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let at = |base: u64, offset: u32| (base as *const u8).wrapping_add(offset as usize);
    unsafe {
        let Some(mm) = read_kernel::<u64>(task.add(o.task_mm as usize)).filter(|p| *p != 0) else {
            return;
        };
        let Some(file) = read_kernel::<u64>(at(mm, o.mm_exe_file)).filter(|p| *p != 0) else {
            return;
        };
        let dentry = at(file, o.file_f_path + o.path_dentry);
        let Some(dentry) = read_kernel::<u64>(dentry).filter(|p| *p != 0) else {
            return;
        };
        let Some(inode) = read_kernel::<u64>(at(dentry, o.dentry_d_inode)).filter(|p| *p != 0)
        else {
            return;
        };
        let Some(cred) = read_kernel::<u64>(task.add(o.task_cred as usize)).filter(|p| *p != 0)
        else {
            return;
        };
        let (Some(ino), Some(nlink), Some(mode), Some(uid), Some(gid)) = (
            read_kernel::<u64>(at(inode, o.inode_i_ino)),
            read_kernel::<u32>(at(inode, o.inode_i_nlink)),
            read_kernel::<u16>(at(inode, o.inode_i_mode)),
            read_kernel::<u32>(at(inode, o.inode_i_uid)),
            read_kernel::<u32>(at(inode, o.inode_i_gid)),
        ) else {
            return;
        };
        let (Some(euid), Some(egid), Some(permitted), Some(ambient)) = (
            read_kernel::<u32>(at(cred, o.cred_euid)),
            read_kernel::<u32>(at(cred, o.cred_egid)),
            read_kernel::<u64>(at(cred, o.cred_cap_permitted)),
            read_kernel::<u64>(at(cred, o.cred_cap_ambient)),
        ) else {
            return;
        };
        *out = ExecBinary {
            ino,
            nlink,
            mode: u32::from(mode),
            uid,
            gid,
            euid,
            egid,
            permitted,
            ambient,
            old_permitted,
            valid: 1,
            _pad: 0,
        };
    }
}

/// The credentials and namespaces a program starts with, for its
/// process's `process_credentials` and `ns` (the namespaces as
/// `record_exec_creds` just took them).
#[inline(always)]
fn read_exec_identity(tgid: u32, cred: &mut CredInfo, ns: &mut [u32; NS_CHANGE_KINDS]) {
    *cred = CredInfo::default();
    *ns = match unsafe { EXEC_CREDS.get(&tgid) } {
        Some(snapshot) => snapshot.ns,
        None => [0; NS_CHANGE_KINDS],
    };
    if load_constant(&EXEC_CREDENTIALS) == 0 {
        return;
    }
    let Some(o) = STRUCT_OFFSETS.get(0).filter(|o| o.valid != 0) else {
        return;
    };
    let task = unsafe { bpf_get_current_task() } as *const u8;
    if let Some(task_cred) = unsafe { read_kernel::<u64>(task.add(o.task_cred as usize)) } {
        read_args::read_cred(o, task_cred, cred);
    }
}

/// Copies the new program's argv (from `mm->arg_start` to `arg_end`) to
/// `dst`, at most `ARGS_LEN - 1` bytes; returns the length, 0 on failure.
#[inline(always)]
fn read_argv(offsets: &TaskTrackingOffsets, dst: *mut u8) -> u32 {
    if offsets.from_btf == 0 {
        return 0;
    }
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let Some(mm) = (unsafe { read_kernel::<u64>(task.add(offsets.task_mm as usize)) }) else {
        return 0;
    };
    let mm = mm as *const u8;
    let start = unsafe { read_kernel::<u64>(mm.add(offsets.mm_arg_start as usize)) };
    let end = unsafe { read_kernel::<u64>(mm.add(offsets.mm_arg_end as usize)) };
    let (Some(start), Some(end)) = (start, end) else {
        return 0;
    };
    // Masked so the verifier sees the length bounded by the buffer.
    let len = (end.saturating_sub(start).min(ARGS_LEN as u64 - 1) as u32) & (ARGS_LEN as u32 - 1);
    if len == 0 {
        return 0;
    }
    let rc = unsafe { gen::bpf_probe_read_user(dst.cast(), len, start as *const c_void) };
    if rc == 0 {
        len
    } else {
        0
    }
}

#[inline(always)]
unsafe fn read_kernel<T>(src: *const u8) -> Option<T> {
    unsafe { aya_ebpf::helpers::bpf_probe_read_kernel(src.cast::<T>()) }.ok()
}

#[tracepoint]
pub fn task_fork(ctx: TracePointContext) -> u32 {
    let Some(offsets) = TASK_OFFSETS.get(0) else {
        return 0;
    };
    let Ok(child) = (unsafe { ctx.read_at::<u32>(offsets.fork_child_pid as usize) }) else {
        return 0;
    };
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    match TASK_EXE.get_ptr(&tgid) {
        // Threads get an entry too; task_free removes it by thread id.
        Some(exe) => {
            let _ = TASK_EXE.insert(&child, unsafe { &*exe }, 0);
        }
        // No entry may outlive its task under a reused pid: a miss reads
        // the child's own executable.
        None => {
            let _ = TASK_EXE.remove(&child);
        }
    }
    // The child starts from its parent's reference, as Tetragon's.
    match EXEC_CREDS.get_ptr(&tgid) {
        Some(creds) => {
            let _ = EXEC_CREDS.insert(&child, unsafe { &*creds }, 0);
        }
        None => {
            let _ = EXEC_CREDS.remove(&child);
        }
    }
    0
}

/// A task's executable and credentials are forgotten when the task is
/// freed, not at its exit: tracepoints after `sched_process_exit` still
/// run in it (the SIGCHLD to its parent, `signal_generate`; on kernels
/// before 6.16 `sched_process_exit` itself, which the exit tracking may
/// also run before), when its memory is gone and `TASK_EXE` is the only
/// place left to learn its executable from. Runs in no particular task:
/// the pid is the tracepoint's. (A freed pid may already be reused by
/// then: the new task's entries, if removed, are read again from it.)
#[tracepoint]
pub fn task_free(ctx: TracePointContext) -> u32 {
    let Some(offsets) = TASK_OFFSETS.get(0) else {
        return 0;
    };
    let Ok(tid) = (unsafe { ctx.read_at::<u32>(offsets.free_pid as usize) }) else {
        return 0;
    };
    let _ = TASK_EXE.remove(&tid);
    let _ = EXEC_CREDS.remove(&tid);
    0
}

#[tracepoint]
pub fn task_exit(_ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    // Only the leader's exit ends the process (for the process cache).
    if tid != tgid {
        return 0;
    }
    let Some(mut entry) = EVENTS.reserve::<ExitRecord>(0) else {
        count_loss(record::EXIT);
        return 0;
    };
    let exit_code = TASK_OFFSETS
        .get(0)
        .filter(|o| o.from_btf != 0)
        .and_then(|o| {
            let task = unsafe { bpf_get_current_task() } as *const u8;
            unsafe { read_kernel::<u32>(task.add(o.task_exit_code as usize)) }
        });
    let rec = entry.as_mut_ptr();
    unsafe {
        (*rec).kind = record::EXIT;
        (*rec).tgid = tgid;
        (*rec).ktime_ns = bpf_ktime_get_ns();
        (*rec).exit_code = exit_code.unwrap_or(0);
        (*rec).has_exit_code = exit_code.is_some() as u32;
    }
    entry.submit(0);
    0
}

/// Loaded once at start to learn whether this kernel has usable BPF
/// trampolines (fentry/fexit/fmod_ret), then unloaded; never attached.
#[fentry(function = "security_file_open")]
pub fn probe_fentry(_ctx: FEntryContext) -> i32 {
    0
}

/// Likewise for bpf_override_return (CONFIG_BPF_KPROBE_OVERRIDE): the
/// verifier rejects the helper where the kernel lacks it.
#[kprobe]
pub fn probe_override(ctx: ProbeContext) -> u32 {
    unsafe { gen::bpf_override_return(ctx.as_ptr().cast(), 0) };
    0
}

/// Likewise for uprobe programs that write their context: Linux 6.18
/// allows it, yet a kernel may refuse it all the same (this project's
/// locked-down test host does), so it is tried.
#[uprobe]
pub fn probe_uprobe_regs(ctx: ProbeContext) -> u32 {
    unsafe { core::ptr::write_volatile(&raw mut (*ctx.regs).rax, 0) };
    0
}

/// Likewise for BPF LSM programs.
#[lsm(hook = "file_open")]
pub fn probe_lsm(_ctx: LsmContext) -> i32 {
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
