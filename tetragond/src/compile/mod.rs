//! Selector compilation: a validated policy becomes the map entries the
//! kernel programs read ([`HookConf`] per hook, plus the [`MapEntry`] list
//! of its lookup-map entries), where each hook attaches ([`Attach`]) and
//! the dispatch keys it must be listed under.
//!
//! Whatever the kernel side cannot serve fails here with a message naming
//! the hook and the missing piece, so such a policy never loads silently.

mod args;
mod data;
mod fields;
mod function;
mod kprobe;
mod loader;
mod lsm;
mod nop;
mod plan;
mod positive;
mod regs;
mod returns;
mod selectors;
mod tracepoint;
mod uprobe;
mod usdt;
mod values;

pub use plan::{
    Attach, DaemonAction, FunctionFamily, FunctionTarget, HookKind, MapEntry, UprobeLocation,
    UprobeTarget,
};

use tetragond_ebpf::{HookConf, SUB_ANY};

use crate::{
    error::CompileError,
    kernel_info::{
        btf::KernelBtf,
        tracefs::{self, Format},
        HookCaps,
    },
    policy::{
        model::{section, TracingPolicy},
        NodePath, Part, PolicyError, Positions,
    },
};

pub use crate::syscalls::{split_id, syscall_ids, syscall_number};
pub use values::{host_namespace, namespace_kind, TCP_STATES};

/// common_type, common_flags, common_preempt_count, common_pid.
const COMMON_FIELDS: u32 = 4;

/// One compiled hook, not yet given kernel slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledHook {
    pub attach: Attach,
    /// `policy_slot` is filled in when installed.
    pub conf: HookConf,
    /// Syscall numbers to list the hook under (32-bit ones with
    /// `ABI_I386`, on the raw syscall tracepoints); empty = every event.
    pub sub_ids: Vec<u32>,
    /// The hook's entries in the lookup maps its selectors read.
    pub entries: Vec<MapEntry>,
    pub meta: HookMeta,
}

/// What user space knows about the hook an event came from: compiled with
/// the hook, read when its events are rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookMeta {
    pub policy_name: String,
    pub namespace: String,
    pub kind: HookKind,
    /// (type, label) per hook arg, in order.
    pub args: Vec<(String, Option<String>)>,
    pub message: Option<String>,
    pub tags: Vec<String>,
    /// The policy has no enforcement action, whatever the kernel mode says.
    pub monitor_only: bool,
    /// Return probes: the arg holding the return value, exported as
    /// `return` rather than among `args`.
    pub return_position: Option<usize>,
    /// Where the hook's `data` values start among `args`: exported as
    /// the event's `data`, not among its `args`.
    pub data_from: Option<usize>,
    /// Which half of a return hook it is, if it is one (its events are
    /// merged into one, see [`ReturnHalf`]).
    pub return_half: ReturnHalf,
    /// By selector: the actions the daemon performs when an event of
    /// that selector arrives (GetUrl, DnsLookup).
    pub daemon_actions: Vec<Vec<DaemonAction>>,
}

impl HookMeta {
    /// What the daemon does for an event of selector `s`.
    pub fn daemon_actions_of(&self, s: u8) -> &[DaemonAction] {
        self.daemon_actions
            .get(usize::from(s))
            .map_or(&[], Vec::as_slice)
    }
}

/// The halves of a return hook (`return: true`) compiled as two kernel
/// hooks, as Tetragon runs them: the entry half reads the args and runs
/// matchActions at the call, the exit half reads the return value
/// (arg 0, and a `returnCopy` buffer as arg 1), filters it with the
/// matchReturnArgs of the selector that matched at entry and runs its
/// matchReturnActions. Their events make one, written at the exit. In a
/// [`CompiledPolicy`] the exit half follows its entry half.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReturnHalf {
    #[default]
    None,
    /// `copy`: the position among the args of the one the exit half's
    /// buffer replaces (`returnCopy`).
    Entry {
        copy: Option<usize>,
    },
    Exit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledPolicy {
    pub hooks: Vec<CompiledHook>,
    /// Program families used, as `tetra tp list` names them.
    pub sensors: Vec<String>,
}

/// What compiling needs to know of the running kernel: tracepoint formats
/// and the hook mechanisms it offers.
pub trait FormatSource {
    fn format(&self, subsystem: &str, event: &str) -> Result<Format, CompileError>;

    fn caps(&self) -> HookCaps {
        HookCaps::default()
    }

    /// How many parameters a kernel function takes (from BTF), when known.
    fn function_params(&self, _name: &str) -> Option<u32> {
        None
    }

    /// The kernel's BTF, for arguments read through `resolve`.
    fn btf(&self) -> Option<&KernelBtf> {
        None
    }

    /// How many arguments a raw tracepoint passes (from BTF); None when
    /// the kernel has no such tracepoint, or no BTF.
    fn raw_tracepoint_args(&self, _event: &str) -> Option<u32> {
        None
    }

    /// Whether the kernel has a function `name` (true when it cannot be
    /// told, or for a kernel described rather than running).
    fn has_function(&self, _name: &str) -> bool {
        true
    }
}

/// The running kernel: its tracefs, its probed features and its BTF.
pub struct Tracefs {
    pub caps: HookCaps,
    /// The daemon's parse (`Kernel::btf`); None when unreadable.
    pub btf: Option<std::sync::Arc<KernelBtf>>,
    /// Its functions, where the compile is for the running kernel (None:
    /// `tetra tp validate --kernel`, for another machine).
    pub functions: Option<crate::kernel_info::kallsyms::FunctionNames>,
}

impl FormatSource for Tracefs {
    fn format(&self, subsystem: &str, event: &str) -> Result<Format, CompileError> {
        tracefs::read_format(subsystem, event).map_err(|e| CompileError::Unsupported(e.to_string()))
    }

    fn caps(&self) -> HookCaps {
        self.caps
    }

    fn function_params(&self, name: &str) -> Option<u32> {
        self.btf.as_ref()?.function_params(name).ok()
    }

    fn btf(&self) -> Option<&KernelBtf> {
        self.btf.as_deref()
    }

    fn raw_tracepoint_args(&self, event: &str) -> Option<u32> {
        self.btf.as_ref()?.raw_tracepoint_args(event).ok()
    }

    fn has_function(&self, name: &str) -> bool {
        self.functions.as_ref().is_none_or(|f| f.has(name))
    }
}

pub fn compile(
    policy: &TracingPolicy,
    formats: &dyn FormatSource,
) -> Result<CompiledPolicy, CompileError> {
    let policy = &*nop::strip(policy)?;
    let spec = &policy.spec;
    let mut hooks = Vec::new();
    let mut sensors = Vec::new();
    // Errors are placed at their hook (and selector) of the policy.
    let at = |key: &str, i: usize| {
        let path = NodePath::root().key("spec").key(key).index(i);
        move |e: CompileError| e.within(path)
    };
    for (i, tp) in spec.tracepoints.iter().enumerate() {
        hooks.extend(
            tracepoint::compile(policy, i, tp, formats).map_err(at(section::TRACEPOINTS, i))?,
        );
        push_once(&mut sensors, "generic_tracepoint");
    }
    for (i, up) in spec.uprobes.iter().enumerate() {
        hooks.extend(
            uprobe::compile(policy, i, up, formats.caps()).map_err(at(section::UPROBES, i))?,
        );
        push_once(&mut sensors, "generic_uprobe");
    }
    let kernel_functions = [
        (kprobe::Section::Kprobes, &spec.kprobes),
        (kprobe::Section::Fentries, &spec.fentries),
    ];
    for (section, specs) in kernel_functions {
        for (i, kp) in specs.iter().enumerate() {
            let compiled = kprobe::compile(policy, section, i, kp, formats);
            for hook in compiled.map_err(at(section.key(), i))? {
                let sensor = hook
                    .attach
                    .function()
                    .map_or("generic_kprobe", |f| f.family.sensor());
                push_once(&mut sensors, sensor);
                hooks.push(hook);
            }
        }
    }
    if spec.loader {
        let at = NodePath::root().key("spec").key("loader");
        hooks.extend(loader::compile(policy, formats).map_err(|e| e.within(at))?);
        push_once(&mut sensors, "loader");
    }
    for (i, hook) in spec.lsmhooks.iter().enumerate() {
        hooks.push(lsm::compile(policy, i, hook, formats).map_err(at(section::LSMHOOKS, i))?);
        push_once(&mut sensors, "generic_lsm");
    }
    for (i, probe) in spec.usdts.iter().enumerate() {
        hooks.extend(
            usdt::compile(policy, i, probe, formats.caps()).map_err(at(section::USDTS, i))?,
        );
        push_once(&mut sensors, "generic_usdt");
    }
    for hook in &mut hooks {
        hook.conf.data_slots = data_slots(&hook.conf);
    }
    Ok(CompiledPolicy { hooks, sensors })
}

/// A compile error of `policy`, read from `file` (whose text is `yaml`),
/// as the policy's errors read: `FILE:LINE:COL: MESSAGE` at its hook,
/// selector or filter (in the macro the filter came from, named), the
/// message alone when it has no place.
pub fn located(
    error: &CompileError,
    policy: &TracingPolicy,
    file: &std::path::Path,
    yaml: &str,
) -> PolicyError {
    match error.node() {
        Some(path) => {
            let (path, message) = policy.macro_origins.place(path, error);
            let at = Positions::index(yaml).find(&path, Part::Key);
            PolicyError::located(file, at.line, at.column, message)
        }
        None => PolicyError::Invalid {
            message: error.to_string(),
        },
    }
}

/// How many leading args' data slots an event of the hook carries.
fn data_slots(conf: &HookConf) -> u8 {
    let n = (conf.n_args as usize).min(conf.args.len());
    conf.args[..n]
        .iter()
        .rposition(|a| tetragond_ebpf::arg_kind::has_data(a.kind))
        .map_or(0, |i| i as u8 + 1)
}

fn push_once(sensors: &mut Vec<String>, name: &str) {
    if !sensors.iter().any(|s| s == name) {
        sensors.push(name.to_string());
    }
}

/// The common part of a hook's event metadata.
fn meta(policy: &TracingPolicy, kind: HookKind, args: Vec<(String, Option<String>)>) -> HookMeta {
    HookMeta {
        policy_name: policy.metadata.name.clone(),
        namespace: policy.metadata.namespace.clone().unwrap_or_default(),
        kind,
        args,
        message: None,
        tags: vec![],
        monitor_only: !crate::policy::has_enforcement_action(policy),
        return_position: None,
        data_from: None,
        return_half: ReturnHalf::None,
        daemon_actions: vec![],
    }
}

impl CompiledPolicy {
    /// Limits every hook to tasks inside `scopes` (a namespaced policy).
    pub fn scope_to(&mut self, scopes: &[tetragond_ebpf::CgroupScope]) {
        let n = scopes.len().min(tetragond_ebpf::MAX_CGROUP_SCOPES);
        for hook in &mut self.hooks {
            hook.conf.n_cgroup_scopes = n as u32;
            hook.conf.cgroup_scopes[..n].copy_from_slice(&scopes[..n]);
        }
    }
}

/// How a prefix gate's argument is read: hooks whose gates read it alike
/// can share a dispatch key's gates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixReader {
    /// Index into the hook's args.
    pub arg: u8,
    pub spec: tetragond_ebpf::ArgSpec,
}

/// A hook's prefix gate: see [`CompiledHook::prefix_gate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixGate {
    pub reader: PrefixReader,
    pub prefixes: Vec<Vec<u8>>,
}

/// Kinds whose data the string operators read as a string.
fn is_string_kind(kind: u8) -> bool {
    use tetragond_ebpf::arg_kind::*;
    matches!(
        kind,
        STRING
            | FILE
            | PATH
            | DENTRY
            | BINPRM
            | FD
            | FILENAME
            | CHAR_BUF
            | CHAR_IOVEC
            | IOV_ITER
            | DATA_LOC
    )
}

impl CompiledHook {
    /// The executables this hook can only match: when every selector has
    /// a matchBinaries `In` (without followChildren), it matches only if
    /// the current executable is in the union of their lists, so the
    /// kernel dispatches it by the executable instead of running it for
    /// every event (see `HookSet`). The hook still checks its selectors.
    pub fn binary_gate(&self) -> Option<Vec<String>> {
        let selectors = self.conf.selectors.get(..self.conf.n_selectors as usize)?;
        let gated = !selectors.is_empty()
            && selectors
                .iter()
                .all(|s| s.binary_op == tetragond_ebpf::set_op::IN && s.binary_follow == 0);
        if !gated {
            return None;
        }
        let paths: std::collections::BTreeSet<&String> = self
            .entries
            .iter()
            .filter_map(|entry| match entry {
                MapEntry::Binary { selector, path }
                    if selector & tetragond_ebpf::PARENT_BINARIES == 0 =>
                {
                    Some(path)
                }
                _ => None,
            })
            .collect();
        Some(paths.into_iter().cloned().collect())
    }

    /// The strings this hook can only match, when it is not gated on
    /// binaries and every selector has a string `Prefix` or `Equal` on one
    /// argument: it matches only if that argument starts with one of them
    /// (an `Equal` value gates as a prefix of itself), so the kernel
    /// dispatches it by the argument's string (see `PrefixGateData`). The
    /// hook still checks its selectors.
    pub fn prefix_gate(&self) -> Option<PrefixGate> {
        use tetragond_ebpf::op;
        let conf = &self.conf;
        let selectors = conf.selectors.get(..conf.n_selectors as usize)?;
        if selectors.is_empty() || self.binary_gate().is_some() {
            return None;
        }
        let gating = |sel: &tetragond_ebpf::Selector, arg: usize| {
            let filters = sel.arg_filters.get(..sel.n_arg_filters as usize)?;
            filters.iter().position(|f| {
                usize::from(f.arg) == arg && matches!(f.op, op::PREFIX | op::STR_EQUAL)
            })
        };
        let args = conf.args.get(..conf.n_args as usize)?;
        let arg = (0..args.len()).find(|&arg| {
            is_string_kind(args[arg].kind) && selectors.iter().all(|s| gating(s, arg).is_some())
        })?;
        let filters: Vec<(u8, u8)> = selectors
            .iter()
            .enumerate()
            .filter_map(|(s, sel)| Some((s as u8, gating(sel, arg)? as u8)))
            .collect();
        let prefixes = self
            .entries
            .iter()
            .filter_map(|entry| match entry {
                MapEntry::Str {
                    selector,
                    filter,
                    bytes,
                } if filters.contains(&(*selector, *filter)) => {
                    // Equal's entries end with the NUL.
                    Some(bytes.strip_suffix(&[0]).unwrap_or(bytes).to_vec())
                }
                _ => None,
            })
            .collect::<std::collections::BTreeSet<_>>();
        Some(PrefixGate {
            reader: PrefixReader {
                arg: arg as u8,
                spec: args[arg],
            },
            prefixes: prefixes.into_iter().collect(),
        })
    }

    /// The dispatch keys this hook is listed under, once attached at `site`.
    pub fn keys(&self, site: u32) -> Vec<tetragond_ebpf::HookKey> {
        let subs = if self.sub_ids.is_empty() {
            vec![SUB_ANY]
        } else {
            self.sub_ids.clone()
        };
        subs.into_iter()
            .map(|sub_id| tetragond_ebpf::HookKey { site, sub_id })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests;
