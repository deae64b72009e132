//! The typed model of Tetragon's `TracingPolicy` / `TracingPolicyNamespaced`
//! (apiVersion `cilium.io/v1alpha1`). Keys are Tetragon's camelCase names;
//! every struct rejects unknown fields so a typo is an error, not a no-op.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::de::{nullable, scalars, string_enum};

pub const API_VERSION: &str = "cilium.io/v1alpha1";

fn yes() -> bool {
    true
}

string_enum! {
    pub enum Kind ("kind") {
        TracingPolicy = "TracingPolicy",
        TracingPolicyNamespaced = "TracingPolicyNamespaced",
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TracingPolicy {
    pub api_version: String,
    pub kind: Kind,
    pub metadata: Metadata,
    pub spec: Spec,
    /// Where the filters its selectors took from macros were written
    /// (set by the parser), to place a compile error in the macro.
    #[serde(skip)]
    pub macro_origins: super::origins::Origins,
}

impl TracingPolicy {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// Empty for a global `TracingPolicy`.
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("")
    }

    pub fn is_namespaced(&self) -> bool {
        self.kind == Kind::TracingPolicyNamespaced
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    #[serde(default, deserialize_with = "nullable")]
    pub kprobes: Vec<KprobeSpec>,
    #[serde(default, deserialize_with = "nullable")]
    pub tracepoints: Vec<TracepointSpec>,
    #[serde(default, deserialize_with = "nullable")]
    pub uprobes: Vec<UprobeSpec>,
    #[serde(default, deserialize_with = "nullable")]
    pub lsmhooks: Vec<LsmHookSpec>,
    #[serde(default, deserialize_with = "nullable")]
    pub usdts: Vec<UsdtSpec>,
    /// Same fields as a kprobe.
    #[serde(default, deserialize_with = "nullable")]
    pub fentries: Vec<KprobeSpec>,
    #[serde(default, deserialize_with = "nullable")]
    pub lists: Vec<ListSpec>,
    #[serde(default, deserialize_with = "nullable")]
    pub enforcers: Vec<EnforcerSpec>,
    #[serde(default, deserialize_with = "nullable")]
    pub options: Vec<OptionSpec>,
    #[serde(default)]
    pub pod_selector: Option<LabelSelector>,
    #[serde(default)]
    pub container_selector: Option<LabelSelector>,
    /// Only `~` (none) and `{}` (all hosts) mean anything in Tetragon.
    #[serde(default)]
    pub host_selector: Option<LabelSelector>,
    /// Enable loader events.
    #[serde(default)]
    pub loader: bool,
    /// Named selectors whose filters a selector takes in with `macros`
    /// (expanded by `policy/macros.rs` right after parsing).
    #[serde(default, deserialize_with = "nullable")]
    pub selectors_macros: BTreeMap<String, Selector>,
}

/// A kprobe (`spec.kprobes`) or fentry (`spec.fentries`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KprobeSpec {
    /// Function name, `sys_*` without the arch prefix, or `list:NAME`.
    pub call: String,
    #[serde(default = "yes")]
    pub syscall: bool,
    /// `return` in YAML: also hook the return and report `returnArg`.
    #[serde(default, rename = "return")]
    pub ret: bool,
    #[serde(default)]
    pub return_arg: Option<Arg>,
    /// Post, TrackSock or UntrackSock.
    #[serde(default)]
    pub return_arg_action: Option<ActionType>,
    #[serde(default, deserialize_with = "nullable")]
    pub args: Vec<Arg>,
    #[serde(default, deserialize_with = "nullable")]
    pub data: Vec<Arg>,
    #[serde(default, deserialize_with = "nullable")]
    pub selectors: Vec<Selector>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub tags: Vec<String>,
    #[serde(default)]
    pub ignore: Option<Ignore>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Ignore {
    /// Skip the hook instead of failing when the function does not exist.
    #[serde(default)]
    pub call_not_found: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TracepointSpec {
    pub subsystem: String,
    pub event: String,
    /// Raw tracepoint arguments.
    #[serde(default)]
    pub raw: bool,
    /// `index` is the field's position in the tracepoint format (common
    /// fields count); a selector's `matchArgs.index` is a position in this list.
    #[serde(default, deserialize_with = "nullable")]
    pub args: Vec<Arg>,
    #[serde(default, deserialize_with = "nullable")]
    pub selectors: Vec<Selector>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UprobeSpec {
    pub path: String,
    #[serde(default, deserialize_with = "nullable")]
    pub symbols: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub offsets: Vec<u64>,
    #[serde(default, deserialize_with = "nullable")]
    pub addrs: Vec<u64>,
    #[serde(default, deserialize_with = "nullable")]
    pub ref_ctr_offsets: Vec<u64>,
    #[serde(default)]
    pub btf_path: Option<String>,
    #[serde(default, rename = "return")]
    pub ret: bool,
    #[serde(default)]
    pub return_arg: Option<Arg>,
    #[serde(default, deserialize_with = "nullable")]
    pub args: Vec<Arg>,
    #[serde(default, deserialize_with = "nullable")]
    pub data: Vec<Arg>,
    #[serde(default, deserialize_with = "nullable")]
    pub selectors: Vec<Selector>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LsmHookSpec {
    /// LSM hook name without `security_`, e.g. `file_open`, `bprm_check_security`.
    pub hook: String,
    #[serde(default, deserialize_with = "nullable")]
    pub args: Vec<Arg>,
    #[serde(default, deserialize_with = "nullable")]
    pub selectors: Vec<Selector>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UsdtSpec {
    pub path: String,
    pub provider: String,
    pub name: String,
    #[serde(default)]
    pub btf_path: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub args: Vec<Arg>,
    #[serde(default, deserialize_with = "nullable")]
    pub selectors: Vec<Selector>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Arg {
    /// 0 when absent, as in Tetragon (its examples leave it out of
    /// `returnArg`, where it means nothing).
    #[serde(default)]
    pub index: u32,
    /// `auto` when absent, as in Tetragon.
    #[serde(rename = "type", default = "ArgType::auto")]
    pub ty: ArgType,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub max_data: bool,
    #[serde(default)]
    pub return_copy: bool,
    /// Tetragon's convention: the size argument's index + 1; 0 for none.
    #[serde(default)]
    pub size_arg_index: u32,
    /// Path to an attribute to resolve, e.g. `mm.owner.real_parent.comm`.
    #[serde(default)]
    pub resolve: Option<String>,
    /// Where the data comes from (for `data`); function arguments when absent.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub btf_type: Option<String>,
}

#[cfg(test)]
impl Arg {
    /// An argument with its index and type and nothing else set.
    pub fn of(index: u32, ty: ArgType) -> Arg {
        Arg {
            index,
            ty,
            label: None,
            max_data: false,
            return_copy: false,
            size_arg_index: 0,
            resolve: None,
            source: None,
            btf_type: None,
        }
    }
}

impl ArgType {
    /// Tetragon's default argument type.
    fn auto() -> ArgType {
        ArgType::Auto
    }
}

string_enum! {
    /// An argument type (`args[].type`).
    pub enum ArgType ("argument type") {
        Auto = "auto",
        Int = "int",
        Sint8 = "sint8",
        Int8 = "int8",
        Uint8 = "uint8",
        Sint16 = "sint16",
        Int16 = "int16",
        Uint16 = "uint16",
        Uint32 = "uint32",
        Sint32 = "sint32",
        Int32 = "int32",
        Ulong = "ulong",
        Uint64 = "uint64",
        SizeT = "size_t",
        Long = "long",
        Sint64 = "sint64",
        Int64 = "int64",
        CharBuf = "char_buf",
        CharIovec = "char_iovec",
        Skb = "skb",
        Sock = "sock",
        Sockaddr = "sockaddr",
        SockaddrUn = "sockaddr_un",
        Socket = "socket",
        String = "string",
        Fd = "fd",
        File = "file",
        Filename = "filename",
        Path = "path",
        Nop = "nop",
        BpfAttr = "bpf_attr",
        PerfEvent = "perf_event",
        BpfMap = "bpf_map",
        UserNamespace = "user_namespace",
        Capability = "capability",
        Kiocb = "kiocb",
        IovIter = "iov_iter",
        Cred = "cred",
        ConstBuf = "const_buf",
        LoadInfo = "load_info",
        Module = "module",
        Syscall64 = "syscall64",
        KernelCapT = "kernel_cap_t",
        CapInheritable = "cap_inheritable",
        CapPermitted = "cap_permitted",
        CapEffective = "cap_effective",
        LinuxBinprm = "linux_binprm",
        DataLoc = "data_loc",
        NetDevice = "net_device",
        BpfCmd = "bpf_cmd",
        Dentry = "dentry",
        BpfProg = "bpf_prog",
    }
}

impl ArgType {
    /// A `kernel_cap_t` (a set of capabilities, read through its pointer).
    pub fn is_capability_set(self) -> bool {
        use ArgType::*;
        matches!(
            self,
            KernelCapT | CapInheritable | CapPermitted | CapEffective
        )
    }

    /// Integer types, matched by value (Equal, GT, Mask, ...).
    pub fn is_numeric(self) -> bool {
        use ArgType::*;
        matches!(
            self,
            Int | Sint8
                | Int8
                | Uint8
                | Sint16
                | Int16
                | Uint16
                | Uint32
                | Sint32
                | Int32
                | Ulong
                | Uint64
                | SizeT
                | Long
                | Sint64
                | Int64
                | Syscall64
                | KernelCapT
                | CapInheritable
                | CapPermitted
                | CapEffective
                | BpfCmd
        )
    }
}

/// One selector: every filter must match; the first matching selector wins.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Selector {
    /// Entries of `spec.selectorsMacros` whose filters this selector takes.
    #[serde(default, deserialize_with = "nullable")]
    pub macros: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub match_args: Vec<ArgSelector>,
    #[serde(default, deserialize_with = "nullable")]
    pub match_data: Vec<ArgSelector>,
    #[serde(default, deserialize_with = "nullable")]
    pub match_return_args: Vec<ArgSelector>,
    #[serde(default, rename = "matchPIDs", deserialize_with = "nullable")]
    pub match_pids: Vec<PidSelector>,
    #[serde(default, deserialize_with = "nullable")]
    pub match_binaries: Vec<BinarySelector>,
    #[serde(default, deserialize_with = "nullable")]
    pub match_parent_binaries: Vec<BinarySelector>,
    #[serde(default, deserialize_with = "nullable")]
    pub match_namespaces: Vec<NamespaceSelector>,
    #[serde(default, deserialize_with = "nullable")]
    pub match_namespace_changes: Vec<NamespaceChangesSelector>,
    #[serde(default, deserialize_with = "nullable")]
    pub match_capabilities: Vec<CapabilitiesSelector>,
    #[serde(default, deserialize_with = "nullable")]
    pub match_capability_changes: Vec<CapabilitiesSelector>,
    #[serde(default, deserialize_with = "nullable")]
    pub match_actions: Vec<ActionSelector>,
    #[serde(default, deserialize_with = "nullable")]
    pub match_return_actions: Vec<ActionSelector>,
}

impl Selector {
    /// `matchActions` then `matchReturnActions`.
    pub fn all_actions(&self) -> impl Iterator<Item = &ActionSelector> {
        self.match_actions
            .iter()
            .chain(self.match_return_actions.iter())
    }
}

/// An item of `matchArgs`, `matchData` or `matchReturnArgs`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArgSelector {
    /// kprobes, uprobes, LSM hooks: the `index` of an entry of `args`;
    /// tracepoints: a position in `args`, or past them a field index
    /// ([`tracepoint_arg_position`]). Unused by `matchReturnArgs`.
    #[serde(default)]
    pub index: u32,
    pub operator: Operator,
    #[serde(default, deserialize_with = "scalars")]
    pub values: Vec<String>,
    /// Positions in `args` the operator applies to (newer Tetragon).
    #[serde(default, deserialize_with = "nullable")]
    pub args: Vec<u32>,
}

string_enum! {
    /// Operators of `matchArgs`, `matchData` and `matchReturnArgs`.
    pub enum Operator ("operator") {
        Equal = "Equal" | "eq",
        NotEqual = "NotEqual" | "neq",
        Prefix = "Prefix",
        NotPrefix = "NotPrefix",
        Postfix = "Postfix",
        NotPostfix = "NotPostfix",
        GreaterThan = "GreaterThan" | "GT",
        LessThan = "LessThan" | "LT",
        Mask = "Mask",
        InMap = "InMap",
        NotInMap = "NotInMap",
        InRange = "InRange",
        NotInRange = "NotInRange",
        SubString = "SubString",
        SubStringIgnCase = "SubStringIgnCase",
        SAddr = "SAddr",
        DAddr = "DAddr",
        SPort = "SPort",
        DPort = "DPort",
        NotSAddr = "NotSAddr",
        NotDAddr = "NotDAddr",
        NotSPort = "NotSPort",
        NotDPort = "NotDPort",
        SPortPriv = "SPortPriv",
        DPortPriv = "DPortPriv",
        /// Tetragon's CRD spells it `NotSportPriv`; case is ignored anyway.
        NotSPortPriv = "NotSPortPriv",
        NotDPortPriv = "NotDPortPriv",
        Protocol = "Protocol",
        Family = "Family",
        State = "State",
        FileType = "FileType",
        NotFileType = "NotFileType",
        CapabilitiesGained = "CapabilitiesGained",
    }
}

impl Operator {
    /// Comparisons that take their values inline (at most 4 for numbers).
    pub fn is_inline_numeric(self) -> bool {
        use Operator::*;
        matches!(self, Equal | NotEqual | GreaterThan | LessThan | Mask)
    }

    pub fn is_map(self) -> bool {
        matches!(self, Operator::InMap | Operator::NotInMap)
    }
}

/// An item of `matchBinaries` or `matchParentBinaries`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BinarySelector {
    pub operator: BinaryOperator,
    #[serde(deserialize_with = "scalars")]
    pub values: Vec<String>,
    #[serde(default)]
    pub follow_children: bool,
}

string_enum! {
    pub enum BinaryOperator ("operator") {
        In = "In",
        NotIn = "NotIn",
        Prefix = "Prefix",
        NotPrefix = "NotPrefix",
        Postfix = "Postfix",
        NotPostfix = "NotPostfix",
    }
}

string_enum! {
    /// `In` / `NotIn`, for PIDs, namespaces and capabilities.
    pub enum SetOperator ("operator") {
        In = "In",
        NotIn = "NotIn",
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PidSelector {
    pub operator: SetOperator,
    pub values: Vec<u32>,
    #[serde(default, rename = "isNamespacePID")]
    pub is_namespace_pid: bool,
    #[serde(default)]
    pub follow_forks: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamespaceSelector {
    pub namespace: NamespaceType,
    pub operator: SetOperator,
    /// Namespace inode numbers, or `host_ns`.
    #[serde(deserialize_with = "scalars")]
    pub values: Vec<String>,
}

string_enum! {
    pub enum NamespaceType ("namespace") {
        Uts = "Uts",
        Ipc = "Ipc",
        Mnt = "Mnt",
        Pid = "Pid",
        PidForChildren = "PidForChildren",
        Net = "Net",
        Time = "Time",
        TimeForChildren = "TimeForChildren",
        Cgroup = "Cgroup",
        User = "User",
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamespaceChangesSelector {
    pub operator: SetOperator,
    pub values: Vec<NamespaceType>,
}

/// An item of `matchCapabilities` or `matchCapabilityChanges`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CapabilitiesSelector {
    #[serde(default, rename = "type")]
    pub ty: CapabilityType,
    pub operator: SetOperator,
    #[serde(default)]
    pub is_namespace_capability: bool,
    /// `CAP_SYS_ADMIN`, ...
    #[serde(deserialize_with = "scalars")]
    pub values: Vec<String>,
}

string_enum! {
    #[derive(Default)]
    pub enum CapabilityType ("capability type") {
        #[default]
        Effective = "Effective",
        Inheritable = "Inheritable",
        Permitted = "Permitted",
    }
}

/// An item of `matchActions` or `matchReturnActions`. Flat like Tetragon's:
/// which `arg*` field matters depends on `action`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ActionSelector {
    pub action: ActionType,
    /// Override, NotifyEnforcer: the error to return (e.g. -1).
    #[serde(default)]
    pub arg_error: Option<i32>,
    /// Signal, NotifyEnforcer: the signal number.
    #[serde(default)]
    pub arg_sig: Option<u32>,
    /// GetUrl.
    #[serde(default)]
    pub arg_url: Option<String>,
    /// DnsLookup.
    #[serde(default)]
    pub arg_fqdn: Option<String>,
    /// TrackSock, UntrackSock: index of the socket argument.
    #[serde(default)]
    pub arg_sock: Option<u32>,
    /// Set: index of the argument to set.
    #[serde(default)]
    pub arg_index: Option<u32>,
    /// Set: the value to write.
    #[serde(default)]
    pub arg_value: Option<i32>,
    #[serde(default, deserialize_with = "scalars")]
    pub arg_regs: Vec<String>,
    /// Post: `30`, `30s`, `5m`, `1h`.
    #[serde(default)]
    pub rate_limit: Option<String>,
    #[serde(default)]
    pub rate_limit_scope: Option<RateLimitScope>,
    #[serde(default)]
    pub kernel_stack_trace: bool,
    #[serde(default)]
    pub user_stack_trace: bool,
    #[serde(default)]
    pub ima_hash: bool,
}

impl ActionSelector {
    /// `rateLimit` in seconds; None when absent or malformed.
    pub fn rate_limit_secs(&self) -> Option<u64> {
        self.rate_limit.as_deref().and_then(parse_rate_limit)
    }

    /// `rateLimit` as the period the kernel counts (nanoseconds of
    /// `bpf_ktime_get_ns`); None when absent.
    pub fn rate_limit_ns(&self) -> Result<Option<u64>, InvalidRateLimit> {
        let Some(text) = self.rate_limit.as_deref() else {
            return Ok(None);
        };
        let secs =
            parse_rate_limit(text).ok_or_else(|| InvalidRateLimit::Syntax(text.to_string()))?;
        if secs == 0 {
            return Err(InvalidRateLimit::Zero(text.to_string()));
        }
        secs.checked_mul(1_000_000_000)
            .map(Some)
            .ok_or_else(|| InvalidRateLimit::TooLong(text.to_string()))
    }
}

/// Why a `rateLimit` cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRateLimit {
    #[error("invalid rateLimit {0:?}: use a number of seconds, or N followed by s, m or h")]
    Syntax(String),
    #[error("invalid rateLimit {0:?}: a period of 0 limits nothing; give at least 1 second")]
    Zero(String),
    #[error("invalid rateLimit {0:?}: longer than the kernel's clock counts (584 years)")]
    TooLong(String),
}

/// `N`, `Ns`, `Nm` or `Nh` as seconds.
pub fn parse_rate_limit(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last()? {
        (i, 's') => (&text[..i], 1),
        (i, 'm') => (&text[..i], 60),
        (i, 'h') => (&text[..i], 3600),
        _ => (text, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

string_enum! {
    pub enum ActionType ("action") {
        Post = "Post",
        NoPost = "NoPost",
        Sigkill = "Sigkill",
        Signal = "Signal",
        Override = "Override",
        NotifyEnforcer = "NotifyEnforcer",
        CleanupEnforcerNotification = "CleanupEnforcerNotification",
        Set = "Set",
        GetUrl = "GetUrl",
        DnsLookup = "DnsLookup",
        TrackSock = "TrackSock",
        UntrackSock = "UntrackSock",
    }
}

impl ActionType {
    /// Actions that change what the process experiences; elided in monitor mode.
    pub fn is_enforcement(self) -> bool {
        use ActionType::*;
        matches!(self, Sigkill | Signal | Override | NotifyEnforcer | Set)
    }
}

string_enum! {
    pub enum RateLimitScope ("rate limit scope") {
        Thread = "thread",
        Process = "process",
        Global = "global",
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListSpec {
    pub name: String,
    #[serde(default, rename = "type")]
    pub ty: Option<ListType>,
    #[serde(default, deserialize_with = "scalars")]
    pub values: Vec<String>,
    /// For `generated_*` lists.
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub validated: bool,
}

string_enum! {
    pub enum ListType ("list type") {
        Syscalls = "syscalls",
        GeneratedSyscalls = "generated_syscalls",
        GeneratedFtrace = "generated_ftrace",
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnforcerSpec {
    /// Syscalls (or `list:NAME`) where the enforcer acts.
    #[serde(deserialize_with = "scalars")]
    pub calls: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OptionSpec {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

/// A Kubernetes label selector (`podSelector`, `containerSelector`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, deserialize_with = "nullable")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

impl LabelSelector {
    /// `{}`: selects everything.
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: LabelOperator,
    #[serde(default, deserialize_with = "scalars")]
    pub values: Vec<String>,
}

string_enum! {
    pub enum LabelOperator ("operator") {
        In = "In",
        NotIn = "NotIn",
        Exists = "Exists",
        DoesNotExist = "DoesNotExist",
    }
}

/// A hook of any section, to walk them all alike.
#[derive(Debug, Clone, Copy)]
pub enum Hook<'a> {
    Kprobe(&'a KprobeSpec),
    Fentry(&'a KprobeSpec),
    Tracepoint(&'a TracepointSpec),
    Uprobe(&'a UprobeSpec),
    LsmHook(&'a LsmHookSpec),
    Usdt(&'a UsdtSpec),
}

/// The `spec` keys of the hook sections.
pub mod section {
    pub const KPROBES: &str = "kprobes";
    pub const FENTRIES: &str = "fentries";
    pub const TRACEPOINTS: &str = "tracepoints";
    pub const UPROBES: &str = "uprobes";
    pub const LSMHOOKS: &str = "lsmhooks";
    pub const USDTS: &str = "usdts";
}

impl<'a> Hook<'a> {
    /// The `spec` key of the section.
    pub fn section(self) -> &'static str {
        match self {
            Hook::Kprobe(_) => section::KPROBES,
            Hook::Fentry(_) => section::FENTRIES,
            Hook::Tracepoint(_) => section::TRACEPOINTS,
            Hook::Uprobe(_) => section::UPROBES,
            Hook::LsmHook(_) => section::LSMHOOKS,
            Hook::Usdt(_) => section::USDTS,
        }
    }

    pub fn args(self) -> &'a [Arg] {
        match self {
            Hook::Kprobe(k) | Hook::Fentry(k) => &k.args,
            Hook::Tracepoint(t) => &t.args,
            Hook::Uprobe(u) => &u.args,
            Hook::LsmHook(l) => &l.args,
            Hook::Usdt(u) => &u.args,
        }
    }

    pub fn data(self) -> &'a [Arg] {
        match self {
            Hook::Kprobe(k) | Hook::Fentry(k) => &k.data,
            Hook::Uprobe(u) => &u.data,
            _ => &[],
        }
    }

    pub fn selectors(self) -> &'a [Selector] {
        match self {
            Hook::Kprobe(k) | Hook::Fentry(k) => &k.selectors,
            Hook::Tracepoint(t) => &t.selectors,
            Hook::Uprobe(u) => &u.selectors,
            Hook::LsmHook(l) => &l.selectors,
            Hook::Usdt(u) => &u.selectors,
        }
    }

    pub fn tags(self) -> &'a [String] {
        match self {
            Hook::Kprobe(k) | Hook::Fentry(k) => &k.tags,
            Hook::Tracepoint(t) => &t.tags,
            Hook::Uprobe(u) => &u.tags,
            Hook::LsmHook(l) => &l.tags,
            Hook::Usdt(u) => &u.tags,
        }
    }

    /// The argument a `matchArgs.index` designates (see [`ArgSelector::index`]).
    pub fn arg_for_selector_index(self, index: u32) -> Option<&'a Arg> {
        match self {
            Hook::Tracepoint(t) => tracepoint_arg_position(&t.args, index).map(|p| &t.args[p]),
            _ => self.args().iter().find(|a| a.index == index),
        }
    }
}

/// The position in a tracepoint's `args` a `matchArgs.index` designates:
/// the position itself; past the last one, the one arg reading field
/// `index`, as newer Tetragon also reads it (`index: 4` for the syscall
/// number of `raw_syscalls/sys_enter` whatever its position). A position
/// comes first, so what an index means never depends on Tetragon's version.
pub fn tracepoint_arg_position(args: &[Arg], index: u32) -> Option<usize> {
    if (index as usize) < args.len() {
        return Some(index as usize);
    }
    match args_reading(args, index) {
        ArgsReading::One(position) => Some(position),
        ArgsReading::None | ArgsReading::Several => None,
    }
}

/// Which of `args` read the argument or field `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgsReading {
    None,
    /// Its position in `args`.
    One(usize),
    /// Several (different `resolve` paths or types): a filter cannot
    /// name one of them by index.
    Several,
}

/// The args whose `index` is `index`.
pub fn args_reading(args: &[Arg], index: u32) -> ArgsReading {
    let mut reading = args
        .iter()
        .enumerate()
        .filter(|(_, a)| a.index == index)
        .map(|(position, _)| position);
    match (reading.next(), reading.next()) {
        (None, _) => ArgsReading::None,
        (Some(position), None) => ArgsReading::One(position),
        (Some(_), Some(_)) => ArgsReading::Several,
    }
}

impl Spec {
    /// Every hook with its position in its section, section by section.
    pub fn hooks(&self) -> impl Iterator<Item = (usize, Hook<'_>)> {
        let kprobes = self.kprobes.iter().map(Hook::Kprobe).enumerate();
        let fentries = self.fentries.iter().map(Hook::Fentry).enumerate();
        let tracepoints = self.tracepoints.iter().map(Hook::Tracepoint).enumerate();
        let uprobes = self.uprobes.iter().map(Hook::Uprobe).enumerate();
        let lsmhooks = self.lsmhooks.iter().map(Hook::LsmHook).enumerate();
        let usdts = self.usdts.iter().map(Hook::Usdt).enumerate();
        kprobes
            .chain(fentries)
            .chain(tracepoints)
            .chain(uprobes)
            .chain(lsmhooks)
            .chain(usdts)
    }

    /// Every hook's selectors, to rewrite them, with the hook's section
    /// key and position in it, in the order of [`Spec::hooks`].
    pub fn selectors_mut(
        &mut self,
    ) -> impl Iterator<Item = (&'static str, usize, &mut Vec<Selector>)> {
        fn of<'a, H>(
            section: &'static str,
            hooks: &'a mut [H],
            selectors: fn(&mut H) -> &mut Vec<Selector>,
        ) -> impl Iterator<Item = (&'static str, usize, &'a mut Vec<Selector>)> {
            hooks
                .iter_mut()
                .map(selectors)
                .enumerate()
                .map(move |(h, s)| (section, h, s))
        }
        of(section::KPROBES, &mut self.kprobes, |h| &mut h.selectors)
            .chain(of(section::FENTRIES, &mut self.fentries, |h| {
                &mut h.selectors
            }))
            .chain(of(section::TRACEPOINTS, &mut self.tracepoints, |h| {
                &mut h.selectors
            }))
            .chain(of(section::UPROBES, &mut self.uprobes, |h| {
                &mut h.selectors
            }))
            .chain(of(section::LSMHOOKS, &mut self.lsmhooks, |h| {
                &mut h.selectors
            }))
            .chain(of(section::USDTS, &mut self.usdts, |h| &mut h.selectors))
    }

    pub fn list(&self, name: &str) -> Option<&ListSpec> {
        self.lists.iter().find(|l| l.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_accept_tetragon_spellings() {
        assert_eq!("GT".parse::<Operator>(), Ok(Operator::GreaterThan));
        assert_eq!("gt".parse::<Operator>(), Ok(Operator::GreaterThan));
        assert_eq!("LessThan".parse::<Operator>(), Ok(Operator::LessThan));
        assert_eq!(
            "NotSportPriv".parse::<Operator>(),
            Ok(Operator::NotSPortPriv)
        );
        assert_eq!("sigkill".parse::<ActionType>(), Ok(ActionType::Sigkill));
        assert_eq!("syscall64".parse::<ArgType>(), Ok(ArgType::Syscall64));
        assert_eq!(Operator::NotSPortPriv.to_string(), "NotSPortPriv");
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        let err = "Bogus".parse::<SetOperator>().unwrap_err();
        assert_eq!(err, "unknown operator `Bogus`, expected one of In, NotIn");
    }

    #[test]
    fn an_operator_tetragon_never_merged_names_what_it_reads_instead() {
        let err = "CapabilityMask".parse::<Operator>().unwrap_err();
        assert!(err.starts_with("unknown operator `CapabilityMask`: a name from a Tetragon proposal that was not merged"), "{err}");
        assert!(err.contains("`operator: Mask`"), "{err}");
    }

    #[test]
    fn enforcement_actions() {
        let enforcing: Vec<_> = ActionType::ALL
            .iter()
            .filter(|a| a.is_enforcement())
            .map(|a| a.as_str())
            .collect();
        assert_eq!(
            enforcing,
            ["Sigkill", "Signal", "Override", "NotifyEnforcer", "Set"]
        );
    }

    #[test]
    fn rate_limits() {
        assert_eq!(parse_rate_limit("30"), Some(30));
        assert_eq!(parse_rate_limit("30s"), Some(30));
        assert_eq!(parse_rate_limit("5m"), Some(300));
        assert_eq!(parse_rate_limit("2h"), Some(7200));
        assert_eq!(parse_rate_limit("m"), None);
        assert_eq!(parse_rate_limit("1d"), None);
        assert_eq!(parse_rate_limit("-1"), None);
    }

    #[test]
    fn tracepoint_selector_index_is_a_position() {
        let arg = |index| Arg::of(index, ArgType::Syscall64);
        let tp = TracepointSpec {
            subsystem: "raw_syscalls".into(),
            event: "sys_enter".into(),
            raw: false,
            args: vec![arg(4)],
            selectors: vec![],
            message: None,
            tags: vec![],
        };
        let hook = Hook::Tracepoint(&tp);
        assert_eq!(hook.arg_for_selector_index(0).map(|a| a.index), Some(4));
        assert_eq!(
            hook.arg_for_selector_index(4).map(|a| a.index),
            Some(4),
            "past the last position: the arg reading that field"
        );
        assert!(hook.arg_for_selector_index(1).is_none());
        let two = [arg(5), arg(0)];
        assert_eq!(
            tracepoint_arg_position(&two, 0),
            Some(0),
            "a position first"
        );
        assert_eq!(
            tracepoint_arg_position(&two, 5),
            Some(0),
            "field 5 is read at 0"
        );
        let twice = [arg(5), arg(5)];
        assert_eq!(tracepoint_arg_position(&twice, 5), None, "two read field 5");
    }
}
