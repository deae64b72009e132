//! The plan compiling hands to the sensors: where each hook's program goes
//! ([`Attach`]), what its events are exported as ([`HookKind`]) and the
//! entries it owns in the kernel's lookup maps ([`MapEntry`]).
//!
//! These are the only compile types the sensors layer reads. So a new
//! operator on an existing map is selector code alone (with the ABI and
//! the kernel program); one on a new map adds a [`MapEntry`] variant here
//! and its map to the one write/remove path, `sensors/entries.rs`, whose
//! matches the compiler then points at.

use tetragond_ebpf::{RegOverride, SubstrValue};

/// One entry of a hook in a kernel lookup map, keyed (with the hook's slot,
/// given when installed) by the selector and filter it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapEntry {
    /// An InMap/NotInMap value of an integer filter (`ARG_SETS`).
    ArgValue {
        selector: u8,
        filter: u8,
        value: u64,
    },
    /// An In/NotIn path of matchBinaries, or of matchParentBinaries when
    /// `selector` carries `PARENT_BINARIES` (`BINARY_SETS`, by binary id).
    Binary { selector: u32, path: String },
    /// A value of a string operator or a matchBinaries prefix/postfix:
    /// `bytes` as the trie holds them (`STR_TRIE`).
    Str {
        selector: u8,
        filter: u8,
        bytes: Vec<u8>,
    },
    /// A CIDR of SAddr/DAddr: IPv4 mapped into IPv6, `prefix` in bits
    /// (`ADDR_TRIE`).
    Addr {
        selector: u8,
        filter: u8,
        prefix: u8,
        addr: [u8; 16],
    },
    /// The `index`th value of a SubString filter (`SUBSTRINGS`).
    Substr {
        selector: u8,
        filter: u8,
        index: u8,
        value: SubstrValue,
    },
    /// The register assignments of a uprobe Override (`UPROBE_REGS`).
    Regs { selector: u8, regs: RegOverride },
}

/// Where a hook's program is attached, and so how events reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attach {
    /// The tracepoint's shared entry point; the hook is listed under the
    /// dispatch keys of its site.
    Tracepoint { subsystem: String, event: String },
    /// A program bound to a kernel function or LSM hook; listed under the
    /// keys of its site.
    Function(FunctionTarget),
    /// An attachment of its own that finds the hook by slot (the cookie):
    /// not listed.
    Uprobe(UprobeTarget),
}

impl Attach {
    /// The kernel function or LSM hook, for function attachments.
    pub fn function(&self) -> Option<&FunctionTarget> {
        match self {
            Attach::Function(target) => Some(target),
            _ => None,
        }
    }
}

/// An action the daemon performs when its event arrives (Tetragon does
/// them in user space too): nothing happens in the kernel, the event is
/// posted as for Post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonAction {
    /// GetUrl: an HTTP(S) GET of the URL, fire and forget.
    GetUrl(String),
    /// DnsLookup: an A query for the name, fire and forget.
    DnsLookup(String),
}

impl DaemonAction {
    /// The event's `action`, as Tetragon names it.
    pub fn event_action(&self) -> &'static str {
        match self {
            DaemonAction::GetUrl(_) => "KPROBE_ACTION_GETURL",
            DaemonAction::DnsLookup(_) => "KPROBE_ACTION_DNSLOOKUP",
        }
    }
}

/// What a hook's events are exported as, and the fields naming the hook.
/// Not always where it is attached: a syscall kprobe runs on the syscall
/// tracepoint and a 32-bit twin on the raw one, yet their events name the
/// policy's hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookKind {
    /// `process_tracepoint`: `subsys` and `event`.
    Tracepoint { subsystem: String, event: String },
    /// `process_kprobe`: `function_name`.
    Kprobe { function: String },
    /// `process_lsm`: `function_name` (the hook without `bpf_lsm_`).
    Lsm { function: String },
    /// `process_uprobe`: the binary's `path` and the `symbol` (or offset).
    Uprobe { path: String, symbol: String },
    /// `process_loader`: an executable mapping's `path` (the hook's first
    /// arg) and the file's `buildid` (`loader: true`).
    Loader,
    /// `process_usdt`: the binary's `path`, the probe's `provider` and
    /// `name`.
    Usdt {
        path: String,
        provider: String,
        name: String,
    },
}

/// Program families bound to one kernel function or LSM hook per program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FunctionFamily {
    Kprobe,
    Kretprobe,
    Fentry,
    Fexit,
    Lsm,
    /// A raw tracepoint (`raw: true`), read by a BTF-typed program.
    RawTracepoint,
}

impl FunctionFamily {
    /// The family's sensor name in `tetra tp list`.
    pub fn sensor(self) -> &'static str {
        match self {
            FunctionFamily::Lsm => "generic_lsm",
            FunctionFamily::RawTracepoint => "generic_tracepoint",
            _ => "generic_kprobe",
        }
    }
}

/// A kernel function or LSM hook and the family of program bound to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionTarget {
    pub family: FunctionFamily,
    /// The kernel function, or the LSM hook without `security_`.
    pub name: String,
}

/// Where in a binary a uprobe goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UprobeLocation {
    Symbol(String),
    /// Offset in the file.
    Offset(u64),
}

impl std::fmt::Display for UprobeLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UprobeLocation::Symbol(s) => f.write_str(s),
            UprobeLocation::Offset(o) => write!(f, "{o:#x}"),
        }
    }
}

/// A uprobe's attachment point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UprobeTarget {
    pub binary: String,
    pub location: UprobeLocation,
    /// A return probe (uretprobe).
    pub ret: bool,
    /// Its hook has a Set: the program that writes user memory serves it.
    pub writes: bool,
    /// Its hook has an Override: the program that writes the registers
    /// serves it.
    pub regs: bool,
    /// The file offset of a USDT probe's semaphore, which the kernel raises
    /// while the uprobe is attached (`ref_ctr_offset`); 0 for none.
    pub semaphore: u64,
}
