//! The ABI shared by tetragond's kernel programs and user space.
//!
//! User space compiles each policy hook into a [`HookConf`] stored in the
//! `HOOKS` array map, and lists the hook slots that can fire for an event as
//! [`HookSet`]s: in `HOOK_LISTS` (keyed by [`HookKey`]) the hooks that run
//! for every event of the key, in `BINARY_GATES` (keyed by [`GateKey`]) the
//! hooks that can only match one of a few executables. One program per
//! kernel hook serves every policy on it: it looks up only the sets for the
//! event (and, for `raw_syscalls`, the syscall number) and the running
//! executable, so the cost stays flat as policies that cannot match are
//! added.
//!
//! Every type is `#[repr(C)]`, padded explicitly, and `Copy`, so both sides
//! agree on the layout byte for byte.
#![no_std]

/// Policy slots: index into `POLICY_MODE` and `POLICY_COUNTERS`.
pub const MAX_POLICIES: u32 = 1024;
/// Hook slots: index into `HOOKS`. A policy version uses one per hook.
pub const MAX_HOOKS: u32 = 4096;
/// Dispatch keys with hooks listed (`HOOK_LISTS`): a site, or a site and
/// one syscall of one ABI. Every syscall of both ABIs on both raw syscall
/// sites takes about 1,600.
pub const HOOK_LIST_ENTRIES: u32 = 2048;
/// Addresses in `KPROBE_SITES`: two per kernel function `kprobe_any`
/// serves (see there).
pub const KPROBE_SITE_ENTRIES: u32 = 2 * site::KPROBE_ANY_SLOTS;
/// (dispatch key, executable) pairs hooks are gated on (`BINARY_GATES`).
pub const BINARY_GATE_ENTRIES: u32 = 4096;
/// (dispatch key, string prefix) pairs hooks are gated on (`PREFIX_GATES`).
pub const PREFIX_GATE_ENTRIES: u32 = 16384;
/// Words of a [`HookSet`]: one bit per hook slot.
pub const HOOK_SET_WORDS: usize = MAX_HOOKS as usize / 64;
const _: () = assert!(HOOK_SET_WORDS <= 64, "HookSet::summary has a bit per word");
/// Tetragon's limits.
pub const MAX_SELECTORS: usize = 5;
pub const MAX_ARGS: usize = 5;
pub const MAX_ARG_FILTERS: usize = 5;
pub const MAX_VALUES: usize = 4;
pub const MAX_ACTIONS: usize = 3;
pub const MAX_PIDS: usize = 8;
/// Bytes kept of an executable's path.
pub const PATH_LEN: usize = 256;
pub const COMM_LEN: usize = 16;
/// Bytes of argv an exec record carries (a power of two: the kernel side masks with it).
pub const ARGS_LEN: usize = 512;
/// Cgroup subtrees one namespaced policy can be scoped to.
pub const MAX_CGROUP_SCOPES: usize = 4;
/// Bytes kept of a string or path argument (a power of two).
pub const STR_LEN: usize = 256;
/// Frames of a stack trace (Post `kernelStackTrace`, `userStackTrace`) an
/// event carries: the innermost 32 of each (Tetragon keeps up to 127).
pub const STACK_DEPTH: usize = 32;
/// Bytes of those frames.
pub const STACK_BYTES: usize = STACK_DEPTH * 8;

/// Bits of `ActionSpec::stacks` and `HookSet::stacks`: which stacks a Post
/// carries.
pub mod stack {
    pub const KERNEL: u8 = 1;
    pub const USER: u8 = 2;
}
/// Bytes of a string compared by the string operators: an LPM trie key
/// holds at most 256 bytes, 8 of which name the filter.
pub const STR_MATCH_LEN: usize = 248;
// An executable's path (`ExePath`) is filled by the same path walk as
// path arguments.
const _: () = assert!(PATH_LEN == STR_LEN);

/// Path components walked up from a dentry before the path is cut.
pub const MAX_PATH_COMPONENTS: u32 = 256;
/// Bytes of a path the kernel's walk builds (Linux's `PATH_MAX`, a power
/// of two): the string operators see its first and last `STR_LEN - 1`.
pub const PATH_WALK_LEN: usize = 4096;
/// Set in a path argument's value (its length in the low 32 bits) when
/// the walk was cut before the root (deeper than `MAX_PATH_COMPONENTS` or
/// longer than `PATH_WALK_LEN`): its beginning is unknown, so every string
/// operator on it counts as matching (fail closed) and the event says so.
pub const PATH_CUT: u64 = 1 << 32;
/// Where a path argument's value carries its file's type (`i_mode >> 12`:
/// 8 a regular file, 4 a directory, ...; 0 unknown), above its length.
pub const FILE_TYPE_SHIFT: u32 = 48;
pub const FILE_TYPE_BITS: u64 = 0xf << FILE_TYPE_SHIFT;

/// `HookKey::sub_id` of the list that fires for every event of the hook.
pub const SUB_ANY: u32 = u32::MAX;

/// Marks a syscall number as one of the 32-bit (i386, `int 0x80` and the
/// compat entries) ABI, Tetragon's `Is32Bit`: the dispatch key of a 32-bit
/// syscall and the value of its `syscall64` argument are `nr | ABI_I386`,
/// so x86_64 272 (unshare) and i386 272 (fadvise64_64) never compare equal.
pub const ABI_I386: u32 = 0x8000_0000;

/// `TS_COMPAT` in x86-64's `thread_info.status`: the task is in a 32-bit
/// syscall (the kernel's `in_ia32_syscall()`).
pub const TS_COMPAT: u32 = 0x0002;

/// Mode values in `POLICY_MODE`.
pub const MODE_ENFORCE: u32 = 0;
pub const MODE_MONITOR: u32 = 1;

/// Argument filter operators (`ArgFilter::op`).
pub mod op {
    pub const EQUAL: u8 = 1;
    pub const NOT_EQUAL: u8 = 2;
    pub const GREATER_THAN: u8 = 3;
    pub const LESS_THAN: u8 = 4;
    pub const MASK: u8 = 5;
    /// Value in the `ARG_SETS` map for (hook, selector, filter).
    pub const IN_MAP: u8 = 6;
    pub const NOT_IN_MAP: u8 = 7;
    /// `values` hold up to two (low, high) pairs, inclusive.
    pub const IN_RANGE: u8 = 8;
    pub const NOT_IN_RANGE: u8 = 9;
    /// Capability sets: the argument holds one not in argument `values[0]`
    /// (CapabilitiesGained: the new set, then the old).
    pub const CAPS_GAINED: u8 = 10;
    /// String operators: against `STR_TRIE` entries of (hook, selector, filter).
    pub const STR_EQUAL: u8 = 16;
    pub const STR_NOT_EQUAL: u8 = 17;
    pub const PREFIX: u8 = 18;
    pub const NOT_PREFIX: u8 = 19;
    /// Matched as prefixes of the reversed string.
    pub const POSTFIX: u8 = 20;
    pub const NOT_POSTFIX: u8 = 21;
    /// `values[..n_values]` name `SUBSTRINGS` entries of (hook, selector, filter, i).
    pub const SUBSTRING: u8 = 22;
    /// The same, ASCII case folded (values are stored lower case).
    pub const SUBSTRING_IGN_CASE: u8 = 23;
    /// A path argument's file type (`FILE_TYPE_SHIFT`) is one of `values`.
    pub const FILE_TYPE: u8 = 24;
    pub const NOT_FILE_TYPE: u8 = 25;
    /// Socket operators on a [`SockInfo`](crate::SockInfo) argument. Address
    /// operators look up `ADDR_TRIE`; ports take `values` as (low | high << 32) ranges.
    pub const SADDR: u8 = 32;
    pub const NOT_SADDR: u8 = 33;
    pub const DADDR: u8 = 34;
    pub const NOT_DADDR: u8 = 35;
    pub const SPORT: u8 = 36;
    pub const NOT_SPORT: u8 = 37;
    pub const DPORT: u8 = 38;
    pub const NOT_DPORT: u8 = 39;
    pub const SPORT_PRIV: u8 = 40;
    pub const NOT_SPORT_PRIV: u8 = 41;
    pub const DPORT_PRIV: u8 = 42;
    pub const NOT_DPORT_PRIV: u8 = 43;
    pub const FAMILY: u8 = 44;
    pub const PROTOCOL: u8 = 45;
    /// The socket's TCP state is one of `values`.
    pub const STATE: u8 = 46;
}

/// How an argument is read (`ArgSpec::kind`). Integers are the value
/// itself; the others read kernel structures at offsets from the running
/// kernel's BTF ([`StructOffsets`]) into the argument's data slot.
pub mod arg_kind {
    pub const INT: u8 = 0;
    /// A NUL-terminated string (user or kernel memory).
    pub const STRING: u8 = 1;
    /// `struct file *`: its path.
    pub const FILE: u8 = 2;
    /// `struct path *`.
    pub const PATH: u8 = 3;
    /// `struct dentry *`: the path inside its file system.
    pub const DENTRY: u8 = 4;
    /// `struct linux_binprm *`: the executable's path.
    pub const BINPRM: u8 = 5;
    /// A file descriptor of the current task: its file's path.
    pub const FD: u8 = 6;
    /// `struct sockaddr *` (IPv4/IPv6): a [`SockInfo`](crate::SockInfo).
    pub const SOCKADDR: u8 = 7;
    /// `struct sock *`: a [`SockInfo`](crate::SockInfo).
    pub const SOCK: u8 = 8;
    /// `struct socket *`: its `sk`, as `SOCK`.
    pub const SOCKET: u8 = 9;
    /// `struct cred *`: the value is the uid; the data slot a [`CredInfo`](crate::CredInfo).
    pub const CRED: u8 = 10;
    /// `struct filename *`: its `name` string (the first member).
    pub const FILENAME: u8 = 11;
    /// A buffer (user or kernel memory) of the size another argument
    /// gives (`sizeArgIndex`), or of `STR_LEN - 1` bytes: its first bytes.
    pub const CHAR_BUF: u8 = 12;
    /// The syscall number field of a syscall tracepoint: an integer, with
    /// [`ABI_I386`](crate::ABI_I386) set when the call came through the
    /// 32-bit entry.
    pub const SYSCALL64: u8 = 13;
    /// A tracepoint's `__data_loc` field (32 bits: the string's offset in
    /// the record, and its length above): the string.
    pub const DATA_LOC: u8 = 14;
    /// `struct user_namespace *`: the value is its inode number; the data
    /// slot a [`UserNsInfo`](crate::UserNsInfo).
    pub const USER_NS: u8 = 15;
    /// `struct sk_buff *`: a [`SkbInfo`](crate::SkbInfo) (its socket
    /// part matched by the socket operators); the value is the family.
    pub const SKB: u8 = 22;
    /// `struct iovec *` (user or kernel memory) with the vector's count in
    /// the size argument (`sizeArgIndex`): the first bytes of its buffers,
    /// one after the other (at most [`IOVECS_READ`](crate::IOVECS_READ)
    /// of them), as a `CHAR_BUF`.
    pub const CHAR_IOVEC: u8 = 23;
    /// `struct iov_iter *`: the first bytes of its data (its user buffer,
    /// or its first iovec or kvec), as a `CHAR_BUF` (see
    /// [`IovIterOffsets`](crate::IovIterOffsets)).
    pub const IOV_ITER: u8 = 24;
    /// An array in a tracepoint's record (Tetragon's `const_buf`): its
    /// bytes, in place at the field's offset, as a `CHAR_BUF` of the
    /// constant size in `size_offset` (`size_from::CONSTANT`).
    pub const CONST_BUF: u8 = 25;
    /// Kernel objects read as a record of their members into the data
    /// slot, as [`StructOffsets::records`] lays them out: the record is
    /// `kind - RECORD_FIRST` (`record_kind::*`), the value 0.
    pub const RECORD_FIRST: u8 = 16;
    pub const BPF_ATTR: u8 = RECORD_FIRST + crate::record_kind::BPF_ATTR as u8;
    pub const BPF_PROG: u8 = RECORD_FIRST + crate::record_kind::BPF_PROG as u8;
    pub const BPF_MAP: u8 = RECORD_FIRST + crate::record_kind::BPF_MAP as u8;
    pub const PERF_EVENT: u8 = RECORD_FIRST + crate::record_kind::PERF_EVENT as u8;
    pub const MODULE: u8 = RECORD_FIRST + crate::record_kind::MODULE as u8;
    pub const LOAD_INFO: u8 = RECORD_FIRST + crate::record_kind::LOAD_INFO as u8;

    /// The record a kind reads, if it reads one.
    pub const fn record(kind: u8) -> Option<usize> {
        let r = kind.wrapping_sub(RECORD_FIRST) as usize;
        if kind >= RECORD_FIRST && r < crate::record_kind::KINDS {
            Some(r)
        } else {
            None
        }
    }

    /// Kinds that fill the argument's data slot.
    pub const fn has_data(kind: u8) -> bool {
        kind != INT && kind != SYSCALL64
    }
}

/// Kernel objects read as records (`arg_kind::RECORD_FIRST`), each
/// into its own `*Info` layout below.
pub mod record_kind {
    /// `union bpf_attr` of BPF_PROG_LOAD: a [`BpfProgInfo`](crate::BpfProgInfo).
    pub const BPF_ATTR: usize = 0;
    /// `struct bpf_prog`: a [`BpfProgInfo`](crate::BpfProgInfo).
    pub const BPF_PROG: usize = 1;
    /// `struct bpf_map`: a [`BpfMapInfo`](crate::BpfMapInfo).
    pub const BPF_MAP: usize = 2;
    /// `struct perf_event`: a [`PerfEventInfo`](crate::PerfEventInfo).
    pub const PERF_EVENT: usize = 3;
    /// `struct module`: a [`ModuleInfo`](crate::ModuleInfo).
    pub const MODULE: usize = 4;
    /// `struct load_info` (a module being loaded): a [`ModuleInfo`](crate::ModuleInfo).
    pub const LOAD_INFO: usize = 5;
    pub const KINDS: usize = 6;
}

/// Members copied into a record, at most.
pub const RECORD_PIECES: usize = 6;
/// Bytes of a record in the argument's data slot.
pub const RECORD_LEN: usize = 128;
/// `RecordPiece::hop` when the member is in the object itself.
pub const NO_HOP: u16 = u16::MAX;

/// One member copied into a record: from the object (or from the object a
/// pointer member at `hop` points at), `size` bytes at `offset`, to `dst`
/// in the record; with `string` set, the member is a pointer to a
/// NUL-terminated string, and that string is copied (at most `size`
/// bytes). `dst + size` is at most [`RECORD_LEN`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordPiece {
    pub hop: u16,
    pub offset: u16,
    pub size: u8,
    pub string: u8,
    pub dst: u8,
    /// 0: this kernel has no such member; the record keeps zeros there.
    pub present: u8,
}

/// A BPF program (a `bpf_attr` of BPF_PROG_LOAD, or a `bpf_prog`): its
/// type, instruction count and name (`BPF_OBJ_NAME_LEN`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BpfProgInfo {
    pub prog_type: u32,
    pub insn_cnt: u32,
    pub name: [u8; 16],
}

/// A BPF map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BpfMapInfo {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub name: [u8; 16],
}

/// A perf event: its attr's `type`, `config`, `config2` (a kprobe's
/// offset) and the string `config1` points at (a kprobe's function, in
/// the caller's memory).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PerfEventInfo {
    pub event_type: u32,
    pub _pad: u32,
    pub config: u64,
    pub probe_offset: u64,
    pub kprobe_func: [u8; RECORD_LEN - 24],
}

/// A kernel module: its taints, whether its signature checked out (a
/// `load_info`, on kernels with CONFIG_MODULE_SIG) and its name
/// (`MODULE_NAME_LEN`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModuleInfo {
    pub taints: u64,
    pub sig_ok: u8,
    pub _pad: [u8; 7],
    pub name: [u8; 56],
}

impl Default for PerfEventInfo {
    fn default() -> Self {
        Self {
            event_type: 0,
            _pad: 0,
            config: 0,
            probe_offset: 0,
            kprobe_func: [0; RECORD_LEN - 24],
        }
    }
}

impl Default for ModuleInfo {
    fn default() -> Self {
        Self {
            taints: 0,
            sig_ok: 0,
            _pad: [0; 7],
            name: [0; 56],
        }
    }
}

const _: () = assert!(
    core::mem::size_of::<BpfProgInfo>() <= RECORD_LEN
        && core::mem::size_of::<BpfMapInfo>() <= RECORD_LEN
        && core::mem::size_of::<PerfEventInfo>() == RECORD_LEN
        && core::mem::size_of::<ModuleInfo>() <= RECORD_LEN
        && RECORD_LEN <= STR_LEN
);

/// Set operators for `matchPIDs` and `matchBinaries`.
pub mod set_op {
    pub const NONE: u8 = 0;
    pub const IN: u8 = 1;
    pub const NOT_IN: u8 = 2;
    /// matchBinaries on the executable's path, against `STR_TRIE` entries
    /// of filter [`BINARY_FILTER`](crate::BINARY_FILTER).
    pub const PREFIX: u8 = 3;
    pub const NOT_PREFIX: u8 = 4;
    pub const POSTFIX: u8 = 5;
    pub const NOT_POSTFIX: u8 = 6;

    /// The operator without its negation matched.
    pub const fn is_positive(op: u8) -> bool {
        matches!(op, IN | PREFIX | POSTFIX)
    }
}

/// `StrTrieData::filter` of matchBinaries path entries (matchArgs
/// filters are numbered from 0).
pub const BINARY_FILTER: u8 = 0xf0;
/// `StrTrieData::filter` of matchParentBinaries path entries.
pub const PARENT_BINARY_FILTER: u8 = 0xf1;

/// Action kinds (`ActionSpec::kind`, `Event::action`).
pub mod action {
    pub const POST: u8 = 1;
    pub const NO_POST: u8 = 2;
    pub const SIGKILL: u8 = 3;
    pub const SIGNAL: u8 = 4;
    /// Return `ActionSpec::signal` (a negative errno) from an LSM hook.
    pub const OVERRIDE: u8 = 5;
    /// Performed by the daemon when the event arrives (GetUrl, DnsLookup):
    /// the kernel posts the event as for POST.
    pub const DAEMON: u8 = 6;
    /// Tetragon's Set: write `ActionSpec::signal` (4 bytes) over the USDT
    /// argument `ActionSpec::arg`, which is in user memory (a register
    /// plus a displacement). Queued by the hook, written by the uprobe
    /// program that may write (`uprobe_dispatch_writing`) once the hooks
    /// ran: no other program holds `bpf_probe_write_user`.
    pub const SET: u8 = 7;
    /// Tetragon's TrackSock and UntrackSock: record (or forget) the task
    /// running the hook as the owner of the `struct sock` at argument
    /// `ActionSpec::arg` in `SOCK_OWNERS`; an event with that socket as an
    /// argument then names its owner. Not enforcement: done in either mode.
    pub const TRACK_SOCK: u8 = 8;
    pub const UNTRACK_SOCK: u8 = 9;
    /// Tetragon's Override on a uprobe: change the registers the process
    /// goes on with (`RegOverride`, in `UPROBE_REGS` under the hook and
    /// selector), by default returning from the function at once with
    /// `argError`. Queued by the hook, made by `uprobe_dispatch_regs`, the
    /// only program that writes its context (Linux 6.18 lets uprobe
    /// programs do so).
    pub const REGS: u8 = 10;
}

/// Register assignments of one uprobe Override, at most (Tetragon's
/// `argRegs`).
pub const MAX_REG_ASSIGNMENTS: usize = 8;

/// `RegAssign::kind`: where an assigned value comes from (Tetragon's
/// assignment forms).
pub mod reg_source {
    /// `rax=5`: the constant `off`.
    pub const CONST: u8 = 1;
    /// `rax=%rbx`: a register.
    pub const REG: u8 = 2;
    /// `rsp=8%rsp`: a register plus `off`.
    pub const REG_OFF: u8 = 3;
    /// `rip=(%rsp)`, `rax=8(%rbp)`: 8 bytes of user memory at a register
    /// plus `off`.
    pub const REG_DEREF: u8 = 4;
}

/// One register assignment: `dst_size` bytes at `pt_regs` offset `dst`
/// take the low bytes of the value `kind` says.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegAssign {
    pub kind: u8,
    pub dst_size: u8,
    pub src_size: u8,
    pub _pad: u8,
    /// Byte offsets in `pt_regs`.
    pub dst: u16,
    pub src: u16,
    pub off: u64,
}

/// The assignments of a uprobe Override, made in order (each reads the
/// registers as the ones before it left them).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegOverride {
    pub n: u32,
    pub _pad: u32,
    pub assign: [RegAssign; MAX_REG_ASSIGNMENTS],
}

/// Key of `UPROBE_REGS`: the Override of a hook's selector.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RegsKey {
    pub hook_slot: u32,
    pub selector: u32,
}

/// `struct pt_regs` of x86-64 in 8-byte words (r15 ... ss).
pub const PT_REGS_WORDS: usize = 21;

/// Sockets whose owner a TrackSock recorded, at most (`SOCK_OWNERS`, an
/// LRU: past it the socket tracked longest ago is forgotten).
pub const SOCK_OWNER_ENTRIES: u32 = 4096;

/// The task a TrackSock found running when it recorded a socket: an event
/// of a hook with that socket as an argument names it instead of the task
/// running then (Tetragon's socket tracking).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockOwner {
    /// 0: no owner.
    pub tgid: u32,
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: [u8; COMM_LEN],
}

/// Set writes queued by one uprobe passage, at most: one per hook (one Set
/// per selector, the first selector that matches), so this many policies
/// with Set on one USDT probe; the store refuses more (`OverLimit`).
pub const MAX_WRITES: usize = 8;

/// Where a hook argument lives in the program's context: a tracepoint
/// record, a `pt_regs` (kprobes, uprobes), or the argument array of a BPF
/// trampoline (fentry, fexit, LSM).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArgSpec {
    /// Byte offset in the context.
    pub offset: u16,
    /// 1, 2, 4 or 8.
    pub size: u8,
    /// 1 when the field is signed: sign-extend and compare as i64.
    pub signed: u8,
    /// `arg_kind::*`.
    pub kind: u8,
    /// `CHAR_BUF`: where its size comes from (`size_from::*`).
    pub size_from: u8,
    /// `CHAR_BUF`: where the size (an argument, or the return value) is
    /// in the context.
    pub size_offset: u16,
    /// A field behind the argument (a policy's `resolve`): the value read
    /// from the context is a pointer to a struct, and the field is
    /// [`FieldPath`]'s; its value, not the argument's, is what `kind`
    /// reads.
    pub field: FieldPath,
    /// `arg_source::*`: where the value comes from.
    pub source: u8,
    /// `arg_source::INDEXED`: the index register's value is shifted left
    /// this much (its scale's log2).
    pub index_shift: u8,
    /// `arg_source::INDEXED`: the index register's byte offset in the
    /// context (`offset` is the base register's).
    pub index_offset: u16,
}

/// Where an argument's value comes from (`ArgSpec::source`).
pub mod arg_source {
    /// The context, at `offset` (and `field` behind it).
    pub const CONTEXT: u8 = 0;
    /// A constant, the same at every passage (a USDT operand `$5`): see
    /// [`ArgSpec::constant`](super::ArgSpec::constant).
    pub const CONSTANT: u8 = 1;
    /// The current task (a `struct task_struct *`), and `field` behind it:
    /// a hook's `data` with `source: current_task`.
    pub const CURRENT_TASK: u8 = 2;
    /// The register at `offset` plus the one at `index_offset` shifted
    /// left by `index_shift`, and `field` behind that: a USDT operand
    /// `-96(%rbp,%rax,8)`.
    pub const INDEXED: u8 = 3;
    /// The register at `offset` plus a 32-bit displacement (see
    /// [`ArgSpec::relative`](super::ArgSpec::relative)), and `field`
    /// behind that: a USDT operand naming a symbol (`counter(%rip)`,
    /// `$counter`), or memory farther from its register than `field`'s
    /// 16-bit offset reaches.
    pub const RELATIVE: u8 = 4;
}

impl ArgSpec {
    /// An argument whose value is `value` wherever the hook fires: its 32
    /// bits kept in `offset` (low half) and `size_offset` (high half),
    /// sign-extended when read.
    pub const fn constant(value: i32, kind: u8) -> ArgSpec {
        let bits = value as u32;
        ArgSpec {
            offset: bits as u16,
            size: 8,
            signed: 1,
            kind,
            size_from: 0,
            size_offset: (bits >> 16) as u16,
            field: FieldPath {
                present: 0,
                n_loads: 0,
                size: 0,
                user: 0,
                offset: 0,
                loads: [0; MAX_FIELD_LOADS],
            },
            source: arg_source::CONSTANT,
            index_shift: 0,
            index_offset: 0,
        }
    }

    /// The register at `offset` plus `displacement`, its 32 bits kept in
    /// `size_offset` (low half) and `index_offset` (high half); `field`
    /// as the caller sets it.
    pub const fn relative(offset: u16, displacement: i32, kind: u8) -> ArgSpec {
        let bits = displacement as u32;
        ArgSpec {
            offset,
            size_offset: bits as u16,
            index_offset: (bits >> 16) as u16,
            source: arg_source::RELATIVE,
            ..ArgSpec::constant(0, kind)
        }
    }

    /// The displacement of a [`relative`](Self::relative) argument.
    #[inline(always)]
    pub fn displacement(&self) -> u64 {
        let bits = (u32::from(self.index_offset) << 16) | u32::from(self.size_offset);
        bits as i32 as i64 as u64
    }

    /// The value of a [`constant`](Self::constant) argument.
    #[inline(always)]
    pub fn constant_value(&self) -> u64 {
        let bits = (u32::from(self.size_offset) << 16) | u32::from(self.offset);
        bits as i32 as i64 as u64
    }
}

/// The buffers of a `char_iovec` read, at most: the event holds
/// `STR_LEN - 1` bytes anyway.
pub const IOVECS_READ: usize = 8;

/// Where a `CHAR_BUF` argument's size comes from (`ArgSpec::size_from`).
pub mod size_from {
    /// `STR_LEN - 1` bytes.
    pub const NONE: u8 = 0;
    /// The argument at `size_offset` (`sizeArgIndex`).
    pub const ARG: u8 = 1;
    /// `returnCopy`, at the exit half of a return hook: the buffer is the
    /// one the entry half saw ([`ReturnArmed::copy_ptr`]), its size the
    /// return value at `size_offset` (nothing when negative).
    pub const RETURN_COPY: u8 = 2;
    /// `size_offset` is the size itself (a `CONST_BUF` array's bytes).
    pub const CONSTANT: u8 = 3;
}

/// Pointers followed in a field path behind an argument, at most
/// (`mm.exe_file.f_path.dentry.d_name.name` follows three).
pub const MAX_FIELD_LOADS: usize = 8;

/// A field path behind a pointer argument, as offsets from the running
/// kernel's BTF: `loads` pointers are followed in turn (each loaded at its
/// offset in the struct the previous one points at), then the field at
/// `offset` is loaded (`size` bytes) or taken by address (`size` 0: an
/// array or an embedded struct, read by `kind`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FieldPath {
    /// 1 when the argument has a field path.
    pub present: u8,
    pub n_loads: u8,
    /// 0, 1, 2, 4 or 8.
    pub size: u8,
    /// 1: the field is in user memory, at `offset` read as an i16 from
    /// the argument's value (a USDT argument in memory, `-16(%rbp)`);
    /// `n_loads` is 0.
    pub user: u8,
    pub offset: u16,
    pub loads: [u16; MAX_FIELD_LOADS],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArgFilter {
    /// Index into `HookConf::args`.
    pub arg: u8,
    pub op: u8,
    pub n_values: u8,
    pub _pad: [u8; 5],
    pub values: [u64; MAX_VALUES],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActionSpec {
    pub kind: u8,
    /// `POST` with a rate limit: whose identical events share it
    /// (`rate_scope::*`).
    pub rate_limit_scope: u8,
    /// `POST`: the stacks the event carries (`stack::*`:
    /// `kernelStackTrace`, `userStackTrace`).
    pub stacks: u8,
    /// `SET`: the index in `HookConf::args` of the argument written.
    pub arg: u8,
    /// Signal number for `SIGNAL` (and 9 for `SIGKILL`); for `OVERRIDE`
    /// the negative errno, as two's complement; for `SET` the value.
    pub signal: u32,
    /// `POST`: an identical event (same hook, selector, scope and argument
    /// values) is posted at most once per this many nanoseconds; 0 posts
    /// every event. Tetragon's `rateLimit`.
    pub rate_limit_ns: u64,
    /// `POST`: 1 when the event carries the IMA hash of the LSM hook's
    /// file (Tetragon's `imaHash`): a sleepable companion program takes it
    /// after the hook's dispatch (`ImaRecord`).
    pub ima_hash: u8,
    pub _pad: [u8; 7],
}

/// `ActionSpec::rate_limit_scope`: Tetragon's `rateLimitScope`.
pub mod rate_scope {
    /// Each thread has its own limit (Tetragon's default).
    pub const THREAD: u8 = 0;
    /// The threads of a process share one.
    pub const PROCESS: u8 = 1;
    /// Every task shares one.
    pub const GLOBAL: u8 = 2;
}

/// Tasks whose executable `TASK_EXE` caches (an LRU; from Linux 6.1 a hash
/// map allocated as written, emptied as tasks exit). A process it has
/// forgotten or could not hold (more are alive) has its executable read
/// from its own `mm->exe_file` when a selector needs it: slower, never
/// wrong.
pub const TASK_EXE_ENTRIES: u32 = 8192;

/// Processes whose credentials at exec `EXEC_CREDS` keeps (an LRU; from
/// Linux 6.1 a hash map allocated as written, emptied as tasks exit), for
/// matchCapabilityChanges and matchNamespaceChanges. A process it does not
/// hold matches neither, as in Tetragon.
pub const EXEC_CREDS_ENTRIES: u32 = 16384;

/// Namespace kinds `ExecCreds` keeps: `ns_kind::KINDS` and `ns_kind::PID`.
pub const NS_CHANGE_KINDS: usize = ns_kind::KINDS + 1;

/// A process's capabilities and namespaces at exec (value of
/// `EXEC_CREDS`), refreshed when a change selector has matched them, so a
/// change is reported once.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecCreds {
    /// By `cap_set::*`.
    pub caps: [u64; 3],
    /// Inode numbers, by `ns_kind::*`; 0 when unreadable (not compared).
    pub ns: [u32; NS_CHANGE_KINDS],
}

/// Entries of `RATE_LIMITS`, the last post time of each (hook, selector,
/// scope, arguments) a rate-limited Post has seen. An LRU: when more keys
/// are live within their periods, the oldest is forgotten and its next
/// event posted again (more events, never fewer).
pub const RATE_LIMIT_ENTRIES: u32 = 16384;

/// Value of `RATE_LIMITS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimitState {
    /// When the last identical event was posted.
    pub last_ns: u64,
    /// Identical events kept back since (added to atomically).
    pub repeats: u64,
}

/// Key of `RATE_LIMITS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RateLimitKey {
    /// `HookConf::install_id` of the hook: a slot reused by another hook
    /// never inherits the previous one's limits.
    pub install_id: u32,
    pub selector: u8,
    /// Index of the Post action in the selector; `MAX_ACTIONS` for the
    /// daemon's aggregation window (a selector without a Post `rateLimit`).
    pub action: u8,
    pub _pad: [u8; 2],
    /// Thread id, process id (tgid), or 0 for the global scope.
    pub scope_id: u32,
    pub _pad2: u32,
    /// A hash of the event's argument values and of the bytes (up to
    /// `STR_LEN - 1`) each data argument read.
    pub args_hash: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    pub n_arg_filters: u8,
    pub pid_op: u8,
    pub n_pids: u8,
    /// Set operator of matchBinaries, against `BINARY_SETS`.
    pub binary_op: u8,
    pub n_actions: u8,
    /// matchPIDs isNamespacePID: pids as seen in the task's pid namespace.
    pub pid_in_ns: u8,
    pub _pad: [u8; 2],
    pub arg_filters: [ArgFilter; MAX_ARG_FILTERS],
    pub pids: [u32; MAX_PIDS],
    pub actions: [ActionSpec; MAX_ACTIONS],
    /// matchPIDs followForks: an ancestor's pid matches too.
    pub pid_follow: u8,
    /// matchBinaries followChildren: an ancestor's binary matches too.
    pub binary_follow: u8,
    /// Set operator of matchParentBinaries, against `BINARY_SETS` entries
    /// whose selector has [`PARENT_BINARIES`] set.
    pub parent_binary_op: u8,
    /// matchParentBinaries followChildren: any ancestor's binary matches,
    /// not only the parent's.
    pub parent_binary_follow: u8,
    pub _pad2: [u8; 4],
    /// matchCapabilities entries, all of which must hold (unused: `op` NONE).
    pub caps: [CapFilter; MAX_CAP_FILTERS],
    /// matchNamespaces entries, all of which must hold (unused: `op` NONE).
    pub namespaces: [NsFilter; MAX_NS_FILTERS],
    /// matchCapabilityChanges (unused: `op` NONE): against the process's
    /// capabilities at exec (`EXEC_CREDS`), as Tetragon compares them.
    pub cap_change: CapFilter,
    /// matchNamespaceChanges: bits (`1 << ns_kind::*`, `PID` included) of
    /// the namespaces whose change since exec makes it hold (In), or of
    /// those it ignores (NotIn); `ns_change_op` NONE for none.
    pub ns_change_mask: u32,
    pub ns_change_op: u8,
    pub _pad3: [u8; 3],
}

/// One matchCapabilities entry: In holds when the set has any of `mask`'s
/// capabilities, NotIn when it has none.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapFilter {
    /// Capability bits (1 << CAP_*).
    pub mask: u64,
    pub op: u8,
    /// Which set (`cap_set::*`).
    pub set: u8,
    pub _pad: [u8; 2],
    /// isNamespaceCapability: the host's user namespace (its inode
    /// number); the entry holds only for a task outside it, as in
    /// Tetragon. 0 for any task.
    pub host_user_ns: u32,
}

/// One matchNamespaces entry: the namespace of `kind` is (In) or is not
/// (NotIn) one of `values`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NsFilter {
    pub op: u8,
    /// `ns_kind::*`.
    pub kind: u8,
    /// Values used.
    pub n: u8,
    pub _pad: u8,
    /// Namespace inode numbers.
    pub values: [u32; MAX_NS_VALUES],
}

/// matchCapabilities entries one selector can hold (one per set, and more).
pub const MAX_CAP_FILTERS: usize = 3;
/// matchNamespaces entries one selector can hold.
pub const MAX_NS_FILTERS: usize = 4;
/// Namespace inode numbers one matchNamespaces entry can list.
pub const MAX_NS_VALUES: usize = 4;
/// Bit of `BinarySetKey::selector` marking a matchParentBinaries set.
pub const PARENT_BINARIES: u32 = 0x100;
/// Ancestors walked for followForks / followChildren.
pub const MAX_ANCESTORS: u32 = 16;

/// Which capability set matchCapabilities reads.
pub mod cap_set {
    pub const EFFECTIVE: u8 = 0;
    pub const INHERITABLE: u8 = 1;
    pub const PERMITTED: u8 = 2;
}

/// Namespace kinds of matchNamespaces: indexes of `StructOffsets::ns`.
pub mod ns_kind {
    pub const UTS: u8 = 0;
    pub const IPC: u8 = 1;
    pub const MNT: u8 = 2;
    pub const PID_FOR_CHILDREN: u8 = 3;
    pub const NET: u8 = 4;
    pub const TIME: u8 = 5;
    pub const TIME_FOR_CHILDREN: u8 = 6;
    pub const CGROUP: u8 = 7;
    /// Read from the task's credentials, not its nsproxy.
    pub const USER: u8 = 8;
    /// Entries of `StructOffsets::ns`.
    pub const KINDS: usize = 9;
    /// The task's own pid namespace (Tetragon's `Pid`), read from its
    /// `thread_pid`, not from nsproxy.
    pub const PID: u8 = 9;
}

/// Where a namespace's inode number is: `task->nsproxy->{member}->ns.inum`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NsOffsets {
    /// Offset of the namespace pointer in `struct nsproxy` (in `struct
    /// cred` for the user namespace).
    pub member: u32,
    /// Offset of `ns.inum` in the namespace's struct.
    pub inum: u32,
}

/// One hook of one policy version.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HookConf {
    /// Slot of the owning policy in `POLICY_MODE` / `POLICY_COUNTERS`.
    pub policy_slot: u32,
    pub n_args: u8,
    /// Zero selectors: every event posts.
    pub n_selectors: u8,
    /// Args up to and including the last one with data (its data slots
    /// are copied into the event).
    pub data_slots: u8,
    /// Which half of a return hook this is (`return_half::*`).
    pub return_half: u8,
    pub args: [ArgSpec; MAX_ARGS],
    pub selectors: [Selector; MAX_SELECTORS],
    /// A TracingPolicyNamespaced applies only inside these cgroup v2
    /// subtrees; 0 scopes means everywhere.
    pub n_cgroup_scopes: u32,
    /// Unique for every hook user space installs while its maps live:
    /// keys `RATE_LIMITS` (slots are reused; this is not).
    pub install_id: u32,
    /// `return_half::EXIT`: the slot of its entry half.
    pub pair_slot: u32,
    /// `return_half::ENTRY`: 1 + the index of the arg whose pointer the
    /// exit half reads (`returnCopy`); 0 for none.
    pub copy_arg: u8,
    /// 1 + the index of the arg (a `CHAR_BUF` or `IOV_ITER`) whose buffer
    /// is posted whole, up to `MAX_DATA` bytes, in `DataRecord`s
    /// (`maxData`); 0 for none.
    pub max_data_arg: u8,
    /// `return_half::EXIT`: `action::TRACK_SOCK` or `UNTRACK_SOCK` on the
    /// returned `struct sock` (arg 0; `returnArgAction`), else 0.
    pub ret_sock_action: u8,
    pub _pad2: u8,
    pub cgroup_scopes: [CgroupScope; MAX_CGROUP_SCOPES],
}

/// The halves of a return hook (`return: true`), as Tetragon runs it: the
/// entry half reads the args, filters and acts at the call; when a
/// selector matched, it records so in `RETURN_ARMED` and its event waits
/// in user space for the exit half's, which reads the return value,
/// filters it with that selector's matchReturnArgs, runs its
/// matchReturnActions, and completes the event.
pub mod return_half {
    pub const NONE: u8 = 0;
    pub const ENTRY: u8 = 1;
    pub const EXIT: u8 = 2;
}

/// Calls in flight on a return hook, at most (`RETURN_ARMED`, an LRU: the
/// oldest call forgotten gets no return half).
pub const RETURN_ARMED_ENTRIES: u32 = 8192;

/// Key of `RETURN_ARMED`: a thread inside a call an entry half matched.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReturnKey {
    pub pid_tgid: u64,
    /// The entry half's slot.
    pub slot: u32,
    pub _pad: u32,
}

/// What the exit half needs of its entry half's match.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReturnArmed {
    /// The entry half's `install_id`: a slot written again since does not
    /// complete this call.
    pub install_id: u32,
    /// The selector that matched at entry: the exit half evaluates its
    /// return filters only.
    pub selector: u32,
    /// The `returnCopy` argument's pointer, read at entry.
    pub copy_ptr: u64,
}

/// A cgroup v2 subtree: a task is inside when its ancestor at `level` is `id`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupScope {
    /// The cgroup's id (its directory's inode number in cgroupfs).
    pub id: u64,
    /// Depth below the cgroup2 root (the root is 0).
    pub level: u32,
    pub _pad: u32,
}

/// Attachment sites: which entry point fired (`HookKey::site`).
pub mod site {
    pub const RAW_SYS_ENTER: u32 = 1;
    pub const RAW_SYS_EXIT: u32 = 2;
    /// Every `syscalls/sys_enter_*` tracepoint; the syscall number tells them apart.
    pub const SYSCALLS_ENTER: u32 = 3;
    pub const SYSCALLS_EXIT: u32 = 4;
    /// `GENERIC_ANY_BASE + k`: the k-th other tracepoint in use, served
    /// by `tp_generic_any` with `k` as its link's BPF cookie (Linux 5.15
    /// on), or before, by a stub program of its own that tail-calls
    /// `tp_generic_from_stub` with the site.
    pub const GENERIC_ANY_BASE: u32 = 0x3_0000;
    pub const GENERIC_ANY_SLOTS: u32 = 4096;
    /// Kernel functions served by `kprobe_any`, one site each, found by
    /// the probed address (`KPROBE_SITES`).
    pub const KPROBE_ANY_BASE: u32 = 0x1_0000;
    pub const KPROBE_ANY_SLOTS: u32 = 4096;
    /// Programs bound to one kernel function (or LSM hook) each, by slot,
    /// where trampoline links carry no cookie (before 5.19):
    /// `<FAMILY>_BASE + k` is served by program `<family>_k`.
    pub const FENTRY_BASE: u32 = 64;
    pub const FENTRY_SLOTS: u32 = 8;
    pub const FEXIT_BASE: u32 = 80;
    pub const FEXIT_SLOTS: u32 = 4;
    pub const LSM_BASE: u32 = 96;
    pub const LSM_SLOTS: u32 = 8;
    /// LSM hooks, fentry and fexit targets served by `lsm_any`,
    /// `fentry_any` and `fexit_any` (Linux 5.19 on), raw tracepoints by
    /// `tp_btf_any` (Linux 6.10 on): the program is loaded once per target
    /// and its link carries the site as the BPF cookie. Kretprobes (and
    /// kprobes on a name several functions share) by `kprobe_by_cookie`
    /// (5.15 on: loaded once, its links carry the site) or by stubs
    /// entering `kprobe_from_stub` with the site (before); raw tracepoints
    /// before 6.10 by stubs entering `raw_tp_from_stub`.
    pub const COOKIE_BASE: u32 = 0x2_0000;
    pub const COOKIE_SLOTS: u32 = 4096;
}

/// Key of `HOOK_LISTS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HookKey {
    /// The entry point that fired (`site::*`).
    pub site: u32,
    /// Syscall number for syscall sites (with [`ABI_I386`] for a 32-bit
    /// syscall), or [`SUB_ANY`].
    pub sub_id: u32,
}

/// A set of hook slots, as a bitmap: the value of `HOOK_LISTS`,
/// `BINARY_GATES` and `PREFIX_GATES`. An event runs the union of the sets
/// for its keys, so its cost follows the hooks that can match it, never
/// the hooks on the same key that cannot.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HookSet {
    /// Bit `w` set when `words[w]` is not zero: a sparse set is walked in
    /// a few steps.
    pub summary: u64,
    /// In `HOOK_LISTS` only: the gates (`gate::*`) this key has, so the
    /// executable is looked up, or the argument read, only where a gate
    /// can use it.
    pub gated: u32,
    /// The stacks (`stack::*`) a hook of the set may post: the entry point
    /// takes them before the hooks run (only it holds the context the
    /// stack walk needs).
    pub stacks: u32,
    /// In `HOOK_LISTS`, with `gate::PREFIX`: a hook of the key's prefix
    /// gates and the argument of it they are keyed by. Every hook in
    /// those gates reads that argument alike (user space keeps them so),
    /// so the entry point reads it as this hook does.
    pub prefix_hook: u32,
    pub prefix_arg: u32,
    pub words: [u64; HOOK_SET_WORDS],
}

impl Default for HookSet {
    fn default() -> Self {
        Self {
            summary: 0,
            gated: 0,
            stacks: 0,
            prefix_hook: 0,
            prefix_arg: 0,
            words: [0; HOOK_SET_WORDS],
        }
    }
}

/// Bits of `HookSet::gated`.
pub mod gate {
    /// `BINARY_GATES` holds sets for the key.
    pub const BINARY: u32 = 1;
    /// `PREFIX_GATES` holds sets for the key.
    pub const PREFIX: u32 = 2;
}

/// Key of `BINARY_GATES`: the hooks of a dispatch key whose every selector
/// has a matchBinaries `In` listing `binary_id` (a `BINARY_IDS` value).
/// They are looked up by the running executable instead of being run one
/// by one, so a thousand policies for a thousand binaries on one syscall
/// cost one lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GateKey {
    pub site: u32,
    pub sub_id: u32,
    pub binary_id: u32,
}

/// Data of a `PREFIX_GATES` key (an LPM trie; the prefix length counts
/// bits from `site`): the hooks of a dispatch key whose every selector
/// has a string `Prefix` (or `Equal`) on one argument, by those strings.
/// An entry holds the hooks of its own prefix and of every shorter one
/// that is a prefix of it, so the longest match is all the hooks the
/// argument can match.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixGateData {
    /// The dispatch key's site; with [`PREFIX_GATE_ALL`] the entry (of no
    /// string) holding every prefix-gated hook of the key, run for a path
    /// the kernel could not read whole.
    pub site: u32,
    pub sub_id: u32,
    pub bytes: [u8; STR_MATCH_LEN],
}

impl Default for PrefixGateData {
    fn default() -> Self {
        Self {
            site: 0,
            sub_id: 0,
            bytes: [0; STR_MATCH_LEN],
        }
    }
}

/// `PrefixGateData::site` bit of a key's every-prefix entry.
pub const PREFIX_GATE_ALL: u32 = 1 << 31;

/// Per-site facts the program needs, keyed by site in `EVENT_INFO`.
/// On the raw syscall sites the dispatch key's `sub_id` is the syscall
/// number with [`ABI_I386`] set for a 32-bit syscall.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventInfo {
    /// Offset of the syscall number (`raw_syscalls`), 0 when there is none.
    pub syscall_offset: u16,
    pub _pad: [u8; 6],
}

/// Key of `ARG_SETS`: a value present for InMap/NotInMap of one filter.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ArgSetKey {
    pub hook_slot: u32,
    pub selector: u8,
    pub filter: u8,
    pub _pad: [u8; 2],
    pub value: u64,
}

/// Key of `BINARY_SETS`: a binary id present in a selector's matchBinaries.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BinarySetKey {
    pub hook_slot: u32,
    pub selector: u32,
    pub binary_id: u32,
}

/// An executable's path, zero padded: the key of `BINARY_IDS` and the value
/// of `TASK_EXE`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExePath {
    pub bytes: [u8; PATH_LEN],
}

impl Default for ExePath {
    fn default() -> Self {
        Self {
            bytes: [0; PATH_LEN],
        }
    }
}

/// Data of a `STR_TRIE` key (an LPM trie; the key's prefix length counts
/// bits from `hook_slot`).
/// An entry for Equal includes the terminating NUL, so only the whole
/// string matches it; Prefix entries stop before it; Postfix entries hold
/// the value reversed and are looked up with the reversed argument.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StrTrieData {
    pub hook_slot: u32,
    pub selector: u8,
    pub filter: u8,
    pub _pad: [u8; 2],
    pub bytes: [u8; STR_MATCH_LEN],
}

impl Default for StrTrieData {
    fn default() -> Self {
        Self {
            hook_slot: 0,
            selector: 0,
            filter: 0,
            _pad: [0; 2],
            bytes: [0; STR_MATCH_LEN],
        }
    }
}

/// Bits of `StrTrieData` (and `AddrTrieData`) before the string (address).
pub const STR_TRIE_HEADER_BITS: u32 = 64;

/// The key of an Override an fentry program decided for the fmod_ret
/// program that runs next on the same function (`OVERRIDE_DECISION`, an
/// LRU hash whose value is the errno): the thread and the function's site.
/// Keyed by thread, not kept per CPU: the thread may be preempted between
/// the two programs, and another thread's decision on that CPU must not
/// take its place. The fmod_ret program (hand-written instructions,
/// `sensors/fmod_ret.rs`) builds this key on its stack, looks it up,
/// deletes it and returns the errno.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OverrideKey {
    pub pid_tgid: u64,
    pub site: u32,
    pub _pad: u32,
}

/// Entries of `OVERRIDE_DECISION`: decisions live from an fentry program
/// to the fmod_ret program after it, so a few per CPU at most are held at
/// once; the LRU forgets one whose fmod_ret program never ran.
pub const OVERRIDE_DECISION_ENTRIES: u32 = 1024;

/// Bytes of a SubString value.
pub const SUBSTR_LEN: usize = 64;

/// Key of `SUBSTRINGS`: value `index` of a SubString filter.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SubstrKey {
    pub hook_slot: u32,
    pub selector: u8,
    pub filter: u8,
    pub index: u8,
    pub _pad: u8,
}

/// A SubString value as little-endian words, and which bytes count: a
/// window of the argument matches when `window & masks == words`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubstrValue {
    pub len: u32,
    pub _pad: u32,
    pub words: [u64; SUBSTR_LEN / 8],
    pub masks: [u64; SUBSTR_LEN / 8],
}

/// Data of an `ADDR_TRIE` key (an LPM trie, prefix from `hook_slot`): IPv4 addresses are stored IPv4-mapped
/// (`::ffff:a.b.c.d`), so one trie serves both families.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddrTrieData {
    pub hook_slot: u32,
    pub selector: u8,
    pub filter: u8,
    pub _pad: [u8; 2],
    pub addr: [u8; 16],
}

/// A socket argument as the kernel side fills an argument's data slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockInfo {
    pub family: u16,
    pub protocol: u16,
    /// Host byte order.
    pub sport: u16,
    pub dport: u16,
    /// IPv6, or IPv4-mapped IPv6 (`::ffff:a.b.c.d`).
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    /// A socket's TCP state (`TCP_ESTABLISHED` 1, ...) and type
    /// (`SOCK_STREAM` 1, ...); 0 for addresses and packets.
    pub state: u8,
    pub _pad: u8,
    pub sock_type: u16,
}

/// An `sk_buff` argument: the addresses, ports and IP protocol of its
/// packet (from its network and transport headers) as a [`SockInfo`],
/// then the buffer's own fields.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkbInfo {
    pub sock: SockInfo,
    pub hash: u32,
    pub len: u32,
    pub priority: u32,
    pub mark: u32,
}

/// A `cred` argument as the kernel side fills an argument's data slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CredInfo {
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    pub cap_effective: u64,
    pub cap_permitted: u64,
    pub cap_inheritable: u64,
    pub suid: u32,
    pub sgid: u32,
    pub fsuid: u32,
    pub fsgid: u32,
    /// `SECBIT_*` bits.
    pub securebits: u32,
    /// The user namespace the credentials belong to.
    pub user_ns: UserNsInfo,
    pub _pad: u32,
}

/// A `user_namespace` argument as the kernel side fills its data slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserNsInfo {
    /// Nesting depth: 0 for the initial user namespace.
    pub level: i32,
    /// The namespace's owner and group (`owner`, `group`).
    pub uid: u32,
    pub gid: u32,
    pub inum: u32,
}

/// Kernel struct member offsets, from the running kernel's BTF at load
/// time (`STRUCT_OFFSETS[0]`). `valid` is 0 when BTF was unreadable: then
/// only integer arguments are read.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StructOffsets {
    pub valid: u32,
    pub file_f_path: u32,
    pub path_mnt: u32,
    pub path_dentry: u32,
    pub dentry_d_parent: u32,
    /// `dentry.d_name.name` and `dentry.d_name.len`.
    pub dentry_name: u32,
    pub dentry_name_len: u32,
    /// `dentry.d_inode` and `inode.i_mode`: a path's file type.
    pub dentry_d_inode: u32,
    pub inode_i_mode: u32,
    /// `inode.i_ino`, `.__i_nlink`, `.i_uid`, `.i_gid`: an executable's
    /// `binary_properties`.
    pub inode_i_ino: u32,
    pub inode_i_nlink: u32,
    pub inode_i_uid: u32,
    pub inode_i_gid: u32,
    /// `mount.mnt` (the embedded `vfsmount`), `mount.mnt_parent`, `mount.mnt_mountpoint`.
    pub mount_mnt: u32,
    pub mount_parent: u32,
    pub mount_mountpoint: u32,
    pub vfsmount_root: u32,
    pub binprm_file: u32,
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdtable_fd: u32,
    pub fdtable_max_fds: u32,
    /// `sock.__sk_common.*` and `sock.sk_protocol`.
    pub sk_family: u32,
    pub sk_protocol: u32,
    /// `sock.__sk_common.skc_state` and `sock.sk_type`.
    pub sk_state: u32,
    pub sk_type: u32,
    pub sk_num: u32,
    pub sk_dport: u32,
    pub sk_rcv_saddr: u32,
    pub sk_daddr: u32,
    pub sk_v6_rcv_saddr: u32,
    pub sk_v6_daddr: u32,
    pub socket_sk: u32,
    pub cred_uid: u32,
    pub cred_gid: u32,
    pub cred_euid: u32,
    pub cred_egid: u32,
    pub cred_suid: u32,
    pub cred_sgid: u32,
    pub cred_fsuid: u32,
    pub cred_fsgid: u32,
    pub cred_securebits: u32,
    pub cred_cap_inheritable: u32,
    pub cred_cap_permitted: u32,
    pub cred_cap_effective: u32,
    pub cred_cap_ambient: u32,
    pub cred_user_ns: u32,
    /// `user_namespace.level`, `.owner` and `.group` (its inode number is
    /// `ns[ns_kind::USER].inum`).
    pub user_ns_level: u32,
    pub user_ns_owner: u32,
    pub user_ns_group: u32,
    pub task_real_parent: u32,
    pub task_tgid: u32,
    pub task_cred: u32,
    pub task_nsproxy: u32,
    /// `task_struct.mm` and `mm_struct.exe_file`: the executable.
    pub task_mm: u32,
    pub mm_exe_file: u32,
    /// `task_struct.fs` and `fs_struct.pwd`: the working directory.
    pub task_fs: u32,
    pub fs_pwd: u32,
    pub task_group_leader: u32,
    /// `task_struct.thread_pid`, `pid.level`, `pid.numbers`, the size of
    /// `struct upid` and `upid.nr`: a pid as its own namespace sees it.
    pub task_thread_pid: u32,
    pub pid_level: u32,
    pub pid_numbers: u32,
    pub upid_size: u32,
    pub upid_nr: u32,
    pub upid_ns: u32,
    pub ns: [NsOffsets; ns_kind::KINDS],
    /// `task_struct.thread_info.status` (x86-64: [`TS_COMPAT`] marks a
    /// 32-bit syscall). Read only when `valid`.
    pub task_ti_status: u32,
    /// `sk_buff.hash`, `.len`, `.priority`, `.mark`, `.head` and the
    /// `u16` header offsets from `head`.
    pub skb_hash: u32,
    pub skb_len: u32,
    pub skb_priority: u32,
    pub skb_mark: u32,
    pub skb_head: u32,
    pub skb_network_header: u32,
    pub skb_transport_header: u32,
    /// Per `record_kind`: how its record is read (all pieces absent when
    /// this kernel's BTF lacks the object).
    pub records: [[RecordPiece; RECORD_PIECES]; record_kind::KINDS],
    pub iov_iter: IovIterOffsets,
}

/// How this kernel lays out a `struct iov_iter` (from BTF; the kinds'
/// numbers from its `enum iter_type`, which changed in 5.14 and 6.5).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IovIterOffsets {
    /// 0 when its layout is not the one read here: iov_iter args refused.
    pub valid: u32,
    /// `iter_type` (a byte, from 5.14) or `type` (4 bytes, before).
    pub type_offset: u32,
    pub type_size: u32,
    /// The bits of that field naming the kind (5.10's bit 0 is the
    /// direction).
    pub type_mask: u32,
    pub count: u32,
    /// The union holding the user buffer (`ubuf`) and the vectors
    /// (`__iov`/`iov`, `kvec`).
    pub data: u32,
    /// The kinds read; [`NO_ITER`] where the kernel lacks one.
    pub ubuf: u32,
    pub iovec: u32,
    pub kvec: u32,
}

/// `IovIterOffsets` kind of a kernel without it (ITER_UBUF before 6.0).
pub const NO_ITER: u32 = u32::MAX;

/// Per-CPU counters of a policy slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyCounters {
    pub post: u64,
    pub enforce: u64,
    pub monitor: u64,
    /// Events a Post `rateLimit` kept from being posted.
    pub rate_limited: u64,
}

/// Offsets the kernel side reads from tracepoint formats, set at load time.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskTrackingOffsets {
    /// `sched_process_exec`: the `__data_loc` of `filename`.
    pub exec_filename: u16,
    /// `sched_process_fork`: `child_pid`.
    pub fork_child_pid: u16,
    /// 1 when the struct offsets below came from the kernel's BTF; 0 turns
    /// argument and exit-code capture off.
    pub from_btf: u32,
    /// `task_struct.mm`
    pub task_mm: u32,
    /// `mm_struct.arg_start`, `mm_struct.arg_end`
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    /// `task_struct.exit_code`
    pub task_exit_code: u32,
    /// `sched_process_free`: `pid`.
    pub free_pid: u32,
}

/// Kinds of ring buffer records: the first u32 of each.
pub mod record {
    pub const POLICY_EVENT: u32 = 1;
    pub const EXEC: u32 = 2;
    pub const EXIT: u32 = 3;
    /// A piece of a `maxData` buffer ([`DataRecord`](crate::DataRecord)).
    pub const DATA: u32 = 4;
    /// The IMA hash an event asked for ([`ImaRecord`](crate::ImaRecord)).
    pub const IMA_HASH: u32 = 5;
    /// Not a record: a program run that found every scratch slot of its
    /// CPU held (`SCRATCH_SLOTS`) and did not run, counted with the losses.
    pub const SCRATCH_BUSY: u32 = 6;
}

/// Entries of the `LOSSES` map, indexed by `record::*`.
pub const RECORD_KINDS: u32 = 7;

/// Entries per CPU of each scratch map of the programs: one for each run
/// that may be under way on a CPU at once (a run in a task, preempted or
/// interrupted, and the runs in an interrupt, a soft interrupt and an NMI
/// over it). Each costs a copy of the scratch buffers per CPU.
pub const SCRATCH_SLOTS: u32 = 4;

/// Sites a CPU's stubs may have pushed and their target not yet taken
/// (`StubSites`): a stub's run, and the runs of stubs in the interrupts
/// that can come over it (soft, hard, NMI), as for `SCRATCH_SLOTS`.
pub const STUB_DEPTH: u32 = 4;

/// Per CPU, the sites stubs pushed for the program they tail-call, which
/// takes the top one. A stack, not one value: a raw tracepoint program
/// runs with interrupts on, and a stub in an interrupt between a stub's
/// push and its target's pop pushes and pops over it. User space writes
/// the stubs' instructions against this layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct StubSites {
    pub depth: u32,
    pub sites: [u32; STUB_DEPTH as usize],
}

/// Bytes of the largest digest IMA makes (SHA-512), as Tetragon reads it.
pub const IMA_HASH_MAX: usize = 64;

/// Threads between an LSM hook's dispatch that posted an event with
/// `imaHash` and its companion program, at once: an entry lives for one
/// hook call. Not an LRU: an entry evicted while its call runs would lose
/// the verdict it carries. Preallocated (some 80 bytes an entry), so
/// sized for the calls in flight, not for the threads of a host: past it
/// an event goes without its hash and the call's verdict is returned at
/// once.
pub const IMA_PENDING_ENTRIES: u32 = 1024;

/// What `lsm_any` leaves its hook's IMA companion (`ima_file`,
/// `ima_bprm`, attached to run right after it), by thread: that an event
/// of this call waits for the hash, and the verdict, which the companion
/// returns once the hash is taken, as Tetragon's output program returns
/// it after its IMA program.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImaPending {
    /// 0 or the negative errno the hook returns.
    pub errno: i32,
    pub _pad: u32,
}

/// The IMA hash of the file of an LSM hook whose event asked for it,
/// posted by the companion program after the events of its call (same
/// `tid`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImaRecord {
    /// `record::IMA_HASH`.
    pub kind: u32,
    pub tid: u32,
    /// `bpf_ima_file_hash`'s return: the kernel's `enum hash_algo`, or a
    /// negative errno (no hash).
    pub algo: i32,
    pub _pad: u32,
    pub hash: [u8; IMA_HASH_MAX],
}

/// `maxData`: the most bytes of one buffer argument an event carries
/// (Tetragon's limit: ten pieces of 32,736 bytes).
pub const MAX_DATA: u32 = 327_360;
/// Buffer bytes per [`DataRecord`]: small pieces keep the per-CPU buffer
/// that builds them (one record) small.
pub const DATA_CHUNK: usize = 4096;
/// Pieces of a `MAX_DATA` buffer, at most.
pub const DATA_CHUNKS: u32 = MAX_DATA.div_ceil(DATA_CHUNK as u32);
/// Bytes of a [`DataRecord`] before its `bytes`.
pub const DATA_HEADER_LEN: usize = 24;

/// A piece of the buffer of a hook's `maxData` argument
/// (`HookConf::max_data_arg`), posted just before the event it belongs to,
/// which has the same `tid` and `ktime_ns`. Only `DATA_HEADER_LEN + len`
/// bytes are posted.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DataRecord {
    /// `record::DATA`.
    pub kind: u32,
    pub tid: u32,
    pub ktime_ns: u64,
    /// Where `bytes` start in the buffer.
    pub offset: u32,
    /// Bytes of `bytes` used.
    pub len: u16,
    /// The index of the argument among the hook's.
    pub arg: u16,
    pub bytes: [u8; DATA_CHUNK],
}

const _: () = assert!(core::mem::offset_of!(DataRecord, bytes) == DATA_HEADER_LEN);

/// A process executed a program (`sched_process_exec`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecRecord {
    pub kind: u32,
    pub tgid: u32,
    pub ktime_ns: u64,
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    /// Bytes of `args` used.
    pub args_len: u32,
    /// The parent's process id (`real_parent->tgid`), 0 when unknown.
    pub ppid: u32,
    /// Bytes of `cwd` used; 0 when the kernel could not read it.
    pub cwd_len: u32,
    /// The path given to execve, NUL padded.
    pub filename: [u8; PATH_LEN],
    /// The new program's argv, NUL separated, cut at `ARGS_LEN - 1` bytes.
    pub args: [u8; ARGS_LEN],
    /// The working directory (`fs->pwd`), built by the kernel's path walk.
    pub cwd: [u8; STR_LEN],
    /// The new program's credentials (`task->cred`), zero when unreadable.
    pub cred: CredInfo,
    /// Its namespaces' inode numbers, by `ns_kind::*` (0: unknown).
    pub ns: [u32; NS_CHANGE_KINDS],
    /// Its process id in its own pid namespace; 0 in the initial one.
    pub ns_pid: u32,
    /// What Tetragon's `binary_properties` are made of.
    pub binary: ExecBinary,
}

/// The executable an exec ran and the credentials it gave, read at
/// `sched_process_exec` (Tetragon reads them a moment before, from the
/// `linux_binprm`): user space tells from them a set-user-ID, set-group-ID
/// or file-capabilities execution, and a binary without a name on disk.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecBinary {
    /// The executable's inode (`mm->exe_file`): number, links, mode,
    /// owner and group.
    pub ino: u64,
    pub nlink: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// The new credentials' effective ids and capability sets.
    pub euid: u32,
    pub egid: u32,
    pub permitted: u64,
    pub ambient: u64,
    /// The permitted set of the process's last credential snapshot (its
    /// previous exec, or its parent's at fork), [`UNKNOWN_CAPS`] when
    /// there is none.
    pub old_permitted: u64,
    /// 1 when all of the above were read.
    pub valid: u32,
    pub _pad: u32,
}

/// `ExecBinary::old_permitted` of a process started before the daemon.
pub const UNKNOWN_CAPS: u64 = u64::MAX;

/// A process (its thread group leader) exited.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitRecord {
    pub kind: u32,
    pub tgid: u32,
    pub ktime_ns: u64,
    /// The wait status (`task_struct.exit_code`), when `has_exit_code`.
    pub exit_code: u32,
    pub has_exit_code: u32,
}

/// A posted event, written to the `EVENTS` ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// `record::POLICY_EVENT`.
    pub kind: u32,
    /// Bytes of argument data following the event: `STR_LEN` per argument
    /// up to the last one with data (argument `i` at `i * STR_LEN`).
    pub data_len: u32,
    pub ktime_ns: u64,
    pub policy_slot: u32,
    pub hook_slot: u32,
    pub tgid: u32,
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    /// The strongest action of the matching selector (`action::*`).
    pub action: u8,
    /// 1 when an enforcement action was performed, 0 when elided or none.
    pub enforced: u8,
    /// `MODE_ENFORCE` or `MODE_MONITOR` at the time of the event.
    pub mode: u8,
    pub selector: u8,
    pub signal: u32,
    /// Identical events (same hook, selector, scope and argument values)
    /// a Post `rateLimit` or the daemon's aggregation window kept in the
    /// kernel since the last one posted: folded into this one.
    pub repeats: u32,
    /// Bytes of kernel stack frames (u64 addresses, innermost first)
    /// following the argument data, then of user stack frames.
    pub kernel_stack_len: u16,
    pub user_stack_len: u16,
    /// `return_half::EXIT`: the slot of the entry half whose event this
    /// one completes.
    pub pair_slot: u32,
    /// `HookConf::return_half` of the hook.
    pub return_half: u8,
    /// 1 when an [`ImaRecord`] from the same thread follows: the hash
    /// of the hook's file, which user space puts in this event.
    pub ima_hash: u8,
    pub _pad: [u8; 2],
    pub args: [u64; MAX_ARGS],
    pub comm: [u8; COMM_LEN],
    pub exe: [u8; PATH_LEN],
}

/// A policy event as built in per-CPU memory before it is copied to the
/// ring buffer (only `data_len` bytes of `data` are copied).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EventBuf {
    pub event: Event,
    pub data: [[u8; STR_LEN]; MAX_ARGS],
    /// Room for a SubString window read past the last slot's string, and
    /// (with `path_tails`, used up by then) for the stack frames copied
    /// after the argument data when the event is posted.
    pub _tail: [u8; SUBSTR_LEN],
    /// The last `STR_LEN - 1` bytes (NUL terminated) of each path argument
    /// longer than its slot, which keeps the first: Postfix reads them.
    /// Not sent to user space.
    pub path_tails: [[u8; STR_LEN]; MAX_ARGS],
}

const _: () = assert!(
    SUBSTR_LEN + MAX_ARGS * STR_LEN >= 2 * STACK_BYTES,
    "both stacks fit after a full event's argument data"
);

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all are repr(C), Copy, with explicit padding and no pointers.
    unsafe impl aya::Pod for HookConf {}
    unsafe impl aya::Pod for HookKey {}
    unsafe impl aya::Pod for SockOwner {}
    unsafe impl aya::Pod for HookSet {}
    unsafe impl aya::Pod for GateKey {}
    unsafe impl aya::Pod for EventInfo {}
    unsafe impl aya::Pod for ArgSetKey {}
    unsafe impl aya::Pod for BinarySetKey {}
    unsafe impl aya::Pod for ExePath {}
    unsafe impl aya::Pod for PolicyCounters {}
    unsafe impl aya::Pod for TaskTrackingOffsets {}
    unsafe impl aya::Pod for StrTrieData {}
    unsafe impl aya::Pod for PrefixGateData {}
    unsafe impl aya::Pod for ExecCreds {}
    unsafe impl aya::Pod for AddrTrieData {}
    unsafe impl aya::Pod for StructOffsets {}
    unsafe impl aya::Pod for SubstrKey {}
    unsafe impl aya::Pod for RegsKey {}
    unsafe impl aya::Pod for RegOverride {}
    unsafe impl aya::Pod for OverrideKey {}
    unsafe impl aya::Pod for SubstrValue {}
    unsafe impl aya::Pod for RateLimitKey {}
    unsafe impl aya::Pod for RateLimitState {}
    unsafe impl aya::Pod for ImaPending {}
}
