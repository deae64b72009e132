//! Selectors to [`Selector`] entries: matchArgs (integers, strings and
//! paths, sockets), matchPIDs, matchBinaries and matchActions.

use tetragond_ebpf::{
    action, arg_kind, cap_set, op, rate_scope, set_op, stack, ActionSpec, ArgFilter, CapFilter,
    Selector, BINARY_FILTER, MAX_ARG_FILTERS, MAX_CAP_FILTERS, MAX_NS_FILTERS, MAX_NS_VALUES,
    MAX_PIDS, MAX_VALUES, PARENT_BINARIES, PARENT_BINARY_FILTER, STR_MATCH_LEN, SUBSTR_LEN,
};

use super::{
    args::{kind_of, ArgClass, Memory},
    syscall_ids, values, DaemonAction, MapEntry,
};
use crate::policy::{limits::OverLimit, NodePath};
use crate::{
    error::CompileError,
    policy::model::{
        args_reading, tracepoint_arg_position, ActionSelector, ActionType, Arg, ArgSelector,
        ArgType, ArgsReading, BinaryOperator, BinarySelector, CapabilitiesSelector, ListType,
        NamespaceChangesSelector, NamespaceSelector, Operator, PidSelector, RateLimitScope,
        Selector as PolicySelector, TracingPolicy,
    },
};

/// A hook's selectors as the kernel reads them: the [`Selector`] records
/// and the lookup-map entries they refer to.
pub struct CompiledSelectors {
    pub selectors: Vec<Selector>,
    pub sub_ids: Vec<u32>,
    pub entries: Vec<MapEntry>,
    /// By selector: what the daemon does when its event arrives.
    pub daemon_actions: Vec<Vec<DaemonAction>>,
}

/// How a hook's selectors refer to its args.
pub struct HookArgs<'a> {
    pub args: &'a [Arg],
    /// Tracepoints: matchArgs.index is a position in `args`. Other hooks:
    /// it is the `index` of one of them.
    pub positional: bool,
    /// Positions in `args` holding the syscall number (raw_syscalls `id`).
    pub syscall_id: Vec<usize>,
    /// Where pointer args point; None: every arg is an integer field.
    pub memory: Option<Memory>,
    /// Why Override cannot be honoured on this hook; None when it can.
    pub override_denied: Option<String>,
    /// The positive `argError` this hook's function takes, if any.
    pub positive: Option<super::positive::PositiveOverride>,
    /// Set (a USDT probe's): per position in `args`, whether its argument
    /// can be written, or why not. None on every other hook.
    pub writable: Option<Vec<Result<(), String>>>,
    /// Override on a uprobe: what it may do there. None on every other
    /// hook (Override is then an errno, where `override_denied` allows).
    pub regs: Option<super::regs::RegsSite>,
}

impl HookArgs<'_> {
    fn class(&self, position: usize) -> ArgClass {
        match (self.memory, self.args.get(position)) {
            // A data value is read from the current task: kernel memory.
            (_, Some(arg)) if super::data::is_data(arg) => kind_of(arg.ty, Memory::Kernel)
                .map(|(_, class)| class)
                .unwrap_or(ArgClass::Integer),
            // A tracepoint field is its integer value, but for a string
            // and an array (raw tracepoints read kernel memory, as
            // functions do).
            (Some(Memory::User), Some(arg)) if self.positional => match arg.ty {
                ArgType::String | ArgType::DataLoc => ArgClass::Text,
                ArgType::ConstBuf => ArgClass::Opaque,
                _ => ArgClass::Integer,
            },
            (Some(memory), Some(arg)) => kind_of(arg.ty, memory)
                .map(|(_, class)| class)
                .unwrap_or(ArgClass::Integer),
            _ => ArgClass::Integer,
        }
    }

    /// The position of the arg a filter's `index` names: an error when it
    /// names none, or several (args of one index read different fields,
    /// `resolve`, and a filter would silently take the first).
    fn position(&self, selector_index: u32, field: &str) -> Result<usize, String> {
        let none =
            || format!("{field} index {selector_index} does not name one of the hook's args");
        if self.positional {
            return tracepoint_arg_position(self.args, selector_index).ok_or_else(none);
        }
        match args_reading(self.args, selector_index) {
            ArgsReading::One(position) => Ok(position),
            ArgsReading::None => Err(none()),
            ArgsReading::Several => Err(format!(
                "{field} index {selector_index} names several of the hook's args (read with different `resolve` paths or types); a filter must name exactly one"
            )),
        }
    }

    /// The positions in `args` a filter applies to: the one its `index`
    /// names, or, as newer Tetragon writes it, `args: [p]`; CapabilitiesGained
    /// takes two (`args: [new, old]`), the second returned beside.
    fn filter_positions(
        &self,
        filter: &ArgSelector,
        field: &str,
    ) -> Result<(usize, Option<usize>), String> {
        let gained = filter.operator == Operator::CapabilitiesGained;
        let at = |p: u32| {
            (p as usize)
                .lt(&self.args.len())
                .then_some(p as usize)
                .ok_or_else(|| {
                    format!(
                        "{field} args position {p} is not one of the hook's {} args",
                        self.args.len()
                    )
                })
        };
        match (filter.args.as_slice(), gained) {
            ([], false) => Ok((self.position(filter.index, field)?, None)),
            ([], true) => Err("CapabilitiesGained compares two capability sets: name them with `args: [NEW, OLD]`, positions in the hook's args".into()),
            (_, _) if filter.index != 0 => Err(format!(
                "{field} gives both index {} and args: Tetragon filters the argument `args` names and ignores `index`; give one of them",
                filter.index
            )),
            ([p], false) => Ok((at(*p)?, None)),
            ([new, old], true) => Ok((at(*new)?, Some(at(*old)?))),
            (more, true) => Err(format!(
                "CapabilitiesGained takes two args positions, the new capability set and the old one ({} given)",
                more.len()
            )),
            (more, false) => Err(format!(
                "operator {} applies to one argument: args takes one position ({} given)",
                filter.operator.as_str(),
                more.len()
            )),
        }
    }
}

pub fn compile_selectors(
    what: &str,
    policy: &TracingPolicy,
    selectors: &[PolicySelector],
    args: &HookArgs<'_>,
    indexable: bool,
) -> Result<CompiledSelectors, CompileError> {
    OverLimit::Selectors
        .check(selectors.len())
        .map_err(|e| CompileError::Invalid(e.to_string()))?;
    let mut out = CompiledSelectors {
        selectors: vec![],
        sub_ids: vec![],
        entries: vec![],
        daemon_actions: vec![],
    };
    // Per selector: the syscall numbers it is limited to, if it is.
    let mut syscall_sets: Vec<Option<Vec<u32>>> = vec![];
    for (s, sel) in selectors.iter().enumerate() {
        let ctx = SelectorCtx {
            what,
            policy,
            args,
            s,
            field: MATCH_ARGS,
        };
        let (compiled, syscalls) = ctx
            .compile(sel, &mut out)
            .map_err(|e| e.within(NodePath::root().key("selectors").index(s)))?;
        out.selectors.push(compiled);
        out.daemon_actions.push(daemon_actions(&sel.match_actions));
        syscall_sets.push(syscalls);
    }
    if indexable && !syscall_sets.is_empty() && syscall_sets.iter().all(Option::is_some) {
        let mut ids: Vec<u32> = syscall_sets.into_iter().flatten().flatten().collect();
        ids.sort_unstable();
        ids.dedup();
        out.sub_ids = ids;
    }
    Ok(out)
}

/// The selector fields whose filters compile into the shared arg filters.
const MATCH_ARGS: &str = "matchArgs";
const MATCH_DATA: &str = "matchData";

struct SelectorCtx<'a> {
    what: &'a str,
    policy: &'a TracingPolicy,
    args: &'a HookArgs<'a>,
    s: usize,
    /// The field of the arg filter being compiled (matchArgs or
    /// matchData), named in its errors.
    field: &'static str,
}

impl SelectorCtx<'_> {
    fn unsupported(&self, msg: impl std::fmt::Display) -> CompileError {
        CompileError::Unsupported(format!("{} selectors[{}]: {msg}", self.what, self.s))
    }

    fn invalid(&self, msg: impl std::fmt::Display) -> CompileError {
        CompileError::Invalid(format!("{} selectors[{}]: {msg}", self.what, self.s))
    }

    fn compile(
        &self,
        sel: &PolicySelector,
        out: &mut super::selectors::CompiledSelectors,
    ) -> Result<(Selector, Option<Vec<u32>>), CompileError> {
        self.reject_unsupported(sel)?;
        // Placed at the filter field, which may have come from a macro.
        let at = |field: &str| {
            let path = NodePath::root().key(field);
            move |e: CompileError| e.within(path)
        };
        let mut compiled = Selector::default();
        let syscalls = self.compile_args(sel, &mut compiled, out)?;
        self.compile_pids(&sel.match_pids, &mut compiled)
            .map_err(at("matchPIDs"))?;
        self.compile_binaries(&sel.match_binaries, &mut compiled, out)
            .map_err(at("matchBinaries"))?;
        self.compile_parent_binaries(&sel.match_parent_binaries, &mut compiled, out)
            .map_err(at("matchParentBinaries"))?;
        self.compile_capabilities(&sel.match_capabilities, &mut compiled)
            .map_err(at("matchCapabilities"))?;
        self.compile_namespaces(&sel.match_namespaces, &mut compiled)
            .map_err(at("matchNamespaces"))?;
        self.compile_namespace_changes(&sel.match_namespace_changes, &mut compiled)
            .map_err(at("matchNamespaceChanges"))?;
        self.compile_capability_changes(&sel.match_capability_changes, &mut compiled)
            .map_err(at("matchCapabilityChanges"))?;
        self.compile_actions(&sel.match_actions, &mut compiled, out)
            .map_err(at("matchActions"))?;
        Ok((compiled, syscalls))
    }

    fn reject_unsupported(&self, sel: &PolicySelector) -> Result<(), CompileError> {
        // The kinds refused on every hook are refused with their place by
        // `policy::unsupported`; these are served on return hooks only,
        // which take them out before.
        let unsupported = [
            ("matchReturnArgs", sel.match_return_args.is_empty()),
            ("matchReturnActions", sel.match_return_actions.is_empty()),
        ];
        match unsupported.iter().find(|(_, empty)| !empty) {
            Some((name, _)) => Err(self.unsupported(format!("{name} is not supported yet"))),
            None => Ok(()),
        }
    }

    /// Returns the syscall numbers the selector is limited to, when one of
    /// its filters pins the `id` field of a raw_syscalls event.
    /// matchArgs and matchData (on the data values, `compile::data`) share
    /// the selector's arg filters; an error is placed at its filter.
    fn compile_args(
        &self,
        sel: &PolicySelector,
        compiled: &mut Selector,
        out: &mut CompiledSelectors,
    ) -> Result<Option<Vec<u32>>, CompileError> {
        let placed = |field: &'static str| move |(i, filter)| (field, i, filter);
        let filters: Vec<(&'static str, usize, &ArgSelector)> = (sel.match_args.iter().enumerate())
            .map(placed(MATCH_ARGS))
            .chain(sel.match_data.iter().enumerate().map(placed(MATCH_DATA)))
            .collect();
        if filters.len() > MAX_ARG_FILTERS {
            return Err(self.invalid(format!(
                "at most {MAX_ARG_FILTERS} {MATCH_ARGS} and {MATCH_DATA} filters together"
            )));
        }
        let mut syscalls = None;
        for (f, &(field, i, filter)) in filters.iter().enumerate() {
            let ctx = SelectorCtx { field, ..*self };
            let ids = ctx
                .compile_arg(filter, f, compiled, out)
                .map_err(|e| e.within(NodePath::root().key(field).index(i)))?;
            syscalls = ids.or(syscalls);
        }
        compiled.n_arg_filters = filters.len() as u8;
        Ok(syscalls)
    }

    /// Filter `f` of the selector; the syscall numbers it limits the
    /// selector to, when it pins a raw_syscalls event's `id`.
    fn compile_arg(
        &self,
        filter: &ArgSelector,
        f: usize,
        compiled: &mut Selector,
        out: &mut CompiledSelectors,
    ) -> Result<Option<Vec<u32>>, CompileError> {
        let (position, old) = self
            .args
            .filter_positions(filter, self.field)
            .map_err(|why| self.invalid(why))?;
        let at = (self.s as u8, f as u8);
        let mut syscalls = None;
        let af = match (self.args.class(position), old) {
            (_, Some(old)) => self.caps_gained_filter(filter, position, old)?,
            (ArgClass::Integer, None) => {
                let is_syscall_id = self.args.syscall_id.contains(&position);
                let af = self.integer_filter(filter, position, at, is_syscall_id, out)?;
                if is_syscall_id && (af.op == op::EQUAL || af.op == op::IN_MAP) {
                    let ids = match af.op {
                        op::EQUAL => af.values[..af.n_values as usize].to_vec(),
                        _ => self.values(filter, ValueKind::SyscallId)?,
                    };
                    syscalls = Some(ids.iter().map(|v| *v as u32).collect());
                }
                af
            }
            (ArgClass::Text, None) => self.text_filter(filter, position, at, out)?,
            (ArgClass::Socket, None) => self.socket_filter(filter, position, at, out)?,
            (ArgClass::Opaque, None) => {
                let arg = &self.args.args[position];
                return Err(self.unsupported(format!(
                    "{} on arg {} of type {}: its fields cannot be matched yet",
                    self.field, arg.index, arg.ty
                )));
            }
        };
        compiled.arg_filters[f] = af;
        Ok(syscalls)
    }

    /// CapabilitiesGained: the set at `new` holds a capability the set at
    /// `old` does not (both capability-typed, as Tetragon requires).
    fn caps_gained_filter(
        &self,
        filter: &ArgSelector,
        new: usize,
        old: usize,
    ) -> Result<ArgFilter, CompileError> {
        for position in [new, old] {
            let ty = self.args.args[position].ty;
            if !ty.is_capability_set() {
                return Err(self.invalid(format!(
                    "CapabilitiesGained compares capability sets; args position {position} is of type {ty} (kernel_cap_t, cap_effective, cap_permitted or cap_inheritable)"
                )));
            }
        }
        if !filter.values.is_empty() {
            return Err(self.invalid(
                "CapabilitiesGained takes no values: it compares the two sets args names",
            ));
        }
        let mut af = ArgFilter {
            arg: new as u8,
            op: op::CAPS_GAINED,
            ..Default::default()
        };
        af.values[0] = old as u64;
        Ok(af)
    }

    fn integer_filter(
        &self,
        filter: &ArgSelector,
        position: usize,
        (s, f): (u8, u8),
        is_syscall_id: bool,
        out: &mut CompiledSelectors,
    ) -> Result<ArgFilter, CompileError> {
        let name = filter.operator.as_str();
        let mut af = ArgFilter {
            arg: position as u8,
            ..Default::default()
        };
        if matches!(name, "InRange" | "NotInRange") {
            af.op = if name == "InRange" {
                op::IN_RANGE
            } else {
                op::NOT_IN_RANGE
            };
            let ranges = filter
                .values
                .iter()
                .map(|v| {
                    values::range(v)
                        .ok_or_else(|| self.invalid(format!("`{v}` is not a range `low:high`")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if ranges.len() > MAX_VALUES / 2 {
                return Err(self.invalid(format!("at most {} ranges for {name}", MAX_VALUES / 2)));
            }
            for (i, (lo, hi)) in ranges.iter().enumerate() {
                af.values[2 * i] = *lo;
                af.values[2 * i + 1] = *hi;
            }
            af.n_values = 2 * ranges.len() as u8;
            return Ok(af);
        }
        af.op = operator_code(name).ok_or_else(|| {
            self.unsupported(format!(
                "{} operator {name} does not apply to integer args",
                self.field
            ))
        })?;
        let kind = if is_syscall_id {
            ValueKind::SyscallId
        } else if self
            .args
            .args
            .get(position)
            .is_some_and(|a| a.ty.is_capability_set())
        {
            ValueKind::CapabilitySet
        } else {
            ValueKind::Integer
        };
        let values = self.values(filter, kind)?;
        // A syscall name stands for its number in each ABI: a set of
        // names within Tetragon's 4 values can grow past what fits in the
        // selector, and is then a set in `ARG_SETS` (the same test).
        if is_syscall_id && values.len() > MAX_VALUES && filter.values.len() <= MAX_VALUES {
            af.op = match af.op {
                op::EQUAL => op::IN_MAP,
                op::NOT_EQUAL => op::NOT_IN_MAP,
                other => other,
            };
        }
        if af.op == op::IN_MAP || af.op == op::NOT_IN_MAP {
            out.entries
                .extend(values.iter().map(|&value| MapEntry::ArgValue {
                    selector: s,
                    filter: f,
                    value,
                }));
        } else {
            if values.len() > MAX_VALUES {
                return Err(self.invalid(format!(
                    "at most {MAX_VALUES} values for operator {name}; use InMap for more"
                )));
            }
            af.n_values = values.len() as u8;
            af.values[..values.len()].copy_from_slice(&values);
        }
        Ok(af)
    }

    /// Strings and paths: each value is an entry of the hook's string trie.
    fn text_filter(
        &self,
        filter: &ArgSelector,
        position: usize,
        (s, f): (u8, u8),
        out: &mut CompiledSelectors,
    ) -> Result<ArgFilter, CompileError> {
        let name = filter.operator.as_str();
        if matches!(name, "SubString" | "SubStringIgnCase") {
            return self.substring_filter(filter, position, (s, f), out);
        }
        if matches!(name, "FileType" | "NotFileType") {
            return self.file_type_filter(filter, position);
        }
        let (code, shape) = match name {
            // A set of whole strings is what Equal's trie entries are.
            "Equal" | "InMap" => (op::STR_EQUAL, values::StrShape::Whole),
            "NotEqual" | "NotInMap" => (op::STR_NOT_EQUAL, values::StrShape::Whole),
            "Prefix" => (op::PREFIX, values::StrShape::Prefix),
            "NotPrefix" => (op::NOT_PREFIX, values::StrShape::Prefix),
            "Postfix" => (op::POSTFIX, values::StrShape::Postfix),
            "NotPostfix" => (op::NOT_POSTFIX, values::StrShape::Postfix),
            _ => {
                return Err(self.unsupported(format!(
                    "{} operator {name} on string and path args is not supported yet (Equal, NotEqual, InMap, NotInMap, Prefix, NotPrefix, Postfix, NotPostfix, SubString, SubStringIgnCase are)",
                    self.field
                )))
            }
        };
        if filter.values.is_empty() {
            return Err(self.invalid(format!("{} {name} needs at least one value", self.field)));
        }
        for v in &filter.values {
            let bytes = values::str_key(v, shape).ok_or_else(|| {
                self.invalid(format!(
                    "value `{v}` is longer than the {} bytes the kernel compares",
                    STR_MATCH_LEN - 1
                ))
            })?;
            out.entries.push(MapEntry::Str {
                selector: s,
                filter: f,
                bytes,
            });
        }
        Ok(ArgFilter {
            arg: position as u8,
            op: code,
            ..Default::default()
        })
    }

    /// FileType and NotFileType, on an arg the kernel reads a path of:
    /// up to four of Tetragon's file type names, as `i_mode >> 12`.
    fn file_type_filter(
        &self,
        filter: &ArgSelector,
        position: usize,
    ) -> Result<ArgFilter, CompileError> {
        use crate::policy::model::ArgType::*;
        let name = filter.operator.as_str();
        let ty = self.args.args[position].ty;
        if !matches!(ty, File | Path | Fd | Kiocb | Dentry | LinuxBinprm) {
            return Err(self.invalid(format!(
                "{} {name} matches the file of a file, path, fd, kiocb, dentry or linux_binprm arg, not a {ty}",
                self.field
            )));
        }
        if filter.values.is_empty() || filter.values.len() > MAX_VALUES {
            return Err(self.invalid(format!("{name} takes 1 to {MAX_VALUES} values")));
        }
        let mut af = ArgFilter {
            arg: position as u8,
            op: if name == "FileType" {
                op::FILE_TYPE
            } else {
                op::NOT_FILE_TYPE
            },
            n_values: filter.values.len() as u8,
            ..Default::default()
        };
        for (slot, v) in af.values.iter_mut().zip(&filter.values) {
            *slot = values::file_type(v).ok_or_else(|| {
                self.invalid(format!(
                    "unknown file type `{v}` (reg, dir, lnk, chr, blk, fifo, sock, or regular, link, char, block, pipe, socket)"
                ))
            })?;
        }
        Ok(af)
    }

    /// SubString: up to four values of up to 64 bytes, searched in the
    /// kernel window by window.
    fn substring_filter(
        &self,
        filter: &ArgSelector,
        position: usize,
        (s, f): (u8, u8),
        out: &mut CompiledSelectors,
    ) -> Result<ArgFilter, CompileError> {
        let ign_case = filter.operator.as_str() == "SubStringIgnCase";
        if filter.values.is_empty() || filter.values.len() > MAX_VALUES {
            return Err(self.invalid(format!("SubString takes 1 to {MAX_VALUES} values")));
        }
        for (i, v) in filter.values.iter().enumerate() {
            let value = values::substring(v, ign_case).ok_or_else(|| {
                self.invalid(format!(
                    "SubString value `{v}` must be 1 to {SUBSTR_LEN} bytes"
                ))
            })?;
            out.entries.push(MapEntry::Substr {
                selector: s,
                filter: f,
                index: i as u8,
                value,
            });
        }
        Ok(ArgFilter {
            arg: position as u8,
            op: if ign_case {
                op::SUBSTRING_IGN_CASE
            } else {
                op::SUBSTRING
            },
            n_values: filter.values.len() as u8,
            ..Default::default()
        })
    }

    fn socket_filter(
        &self,
        filter: &ArgSelector,
        position: usize,
        (s, f): (u8, u8),
        out: &mut CompiledSelectors,
    ) -> Result<ArgFilter, CompileError> {
        let name = filter.operator.as_str();
        let mut af = ArgFilter {
            arg: position as u8,
            ..Default::default()
        };
        let inline = |af: &mut ArgFilter, vals: Vec<u64>| -> Result<(), CompileError> {
            if vals.len() > MAX_VALUES {
                return Err(self.invalid(format!("at most {MAX_VALUES} values for {name}")));
            }
            af.n_values = vals.len() as u8;
            af.values[..vals.len()].copy_from_slice(&vals);
            Ok(())
        };
        let parse_all = |parse: fn(&str) -> Option<u64>, what: &str| {
            filter
                .values
                .iter()
                .map(|v| parse(v).ok_or_else(|| self.invalid(format!("`{v}` is not {what}"))))
                .collect::<Result<Vec<_>, _>>()
        };
        af.op = match name {
            "SAddr" | "NotSAddr" | "DAddr" | "NotDAddr" => {
                for v in &filter.values {
                    let (addr, prefix) = values::cidr(v)
                        .ok_or_else(|| self.invalid(format!("`{v}` is not an IP address or CIDR")))?;
                    out.entries.push(MapEntry::Addr { selector: s, filter: f, prefix, addr });
                }
                match name {
                    "SAddr" => op::SADDR,
                    "NotSAddr" => op::NOT_SADDR,
                    "DAddr" => op::DADDR,
                    _ => op::NOT_DADDR,
                }
            }
            "SPort" | "NotSPort" | "DPort" | "NotDPort" => {
                inline(&mut af, parse_all(values::port_range, "a port or a port range `low:high`")?)?;
                match name {
                    "SPort" => op::SPORT,
                    "NotSPort" => op::NOT_SPORT,
                    "DPort" => op::DPORT,
                    _ => op::NOT_DPORT,
                }
            }
            "SPortPriv" => op::SPORT_PRIV,
            "NotSPortPriv" => op::NOT_SPORT_PRIV,
            "DPortPriv" => op::DPORT_PRIV,
            "NotDPortPriv" => op::NOT_DPORT_PRIV,
            "Family" => {
                inline(&mut af, parse_all(values::family, "an address family (AF_INET, AF_INET6 or a number)")?)?;
                op::FAMILY
            }
            "Protocol" => {
                inline(&mut af, parse_all(values::protocol, "a protocol (IPPROTO_TCP, IPPROTO_UDP or a number)")?)?;
                op::PROTOCOL
            }
            "State" => {
                use crate::policy::model::ArgType;
                let ty = self.args.args[position].ty;
                if !matches!(ty, ArgType::Sock | ArgType::Socket) {
                    return Err(self.invalid(format!(
                        "{} State matches a sock or socket arg's TCP state, not a {ty}'s",
                        self.field
                    )));
                }
                inline(&mut af, parse_all(values::tcp_state, "a TCP state (TCP_ESTABLISHED, TCP_SYN_SENT, ... or a number)")?)?;
                op::STATE
            }
            _ => {
                return Err(self.unsupported(format!(
                    "{} operator {name} does not apply to socket args (SAddr, DAddr, SPort, DPort, their Not forms, *PortPriv, Family, Protocol, State do)",
                    self.field
                )))
            }
        };
        Ok(af)
    }

    /// Integer values, `list:NAME` references (syscall names), and, as
    /// `kind` says, syscall names for ids or capability names for sets.
    fn values(&self, filter: &ArgSelector, kind: ValueKind) -> Result<Vec<u64>, CompileError> {
        let mut out = Vec::new();
        for raw in &filter.values {
            if let Some(list) = raw.strip_prefix("list:") {
                for v in self.list_values(list)? {
                    out.extend(self.value(&v, ValueKind::SyscallId)?);
                }
            } else {
                out.extend(self.value(raw, kind)?);
            }
        }
        // Names overlap (`setuid` covers `setuid32`): one map entry each.
        let mut seen = std::collections::HashSet::new();
        out.retain(|v| seen.insert(*v));
        Ok(out)
    }

    fn list_values(&self, name: &str) -> Result<Vec<String>, CompileError> {
        let list = self
            .policy
            .spec
            .lists
            .iter()
            .find(|l| l.name == name)
            .ok_or_else(|| self.invalid(format!("list {name} is not defined in spec.lists")))?;
        match list.ty {
            None | Some(ListType::Syscalls) => Ok(list.values.clone()),
            // Every syscall, by the names that cover each number once.
            Some(ListType::GeneratedSyscalls) => Ok(crate::syscalls::every_syscall()
                .into_iter()
                .map(|(name, _)| name)
                .collect()),
            Some(other) => Err(self.unsupported(format!(
                "list {name} of type {other} holds kernel functions, not syscall numbers"
            ))),
        }
    }

    /// A number as written (a syscall number without bit 31 is a 64-bit
    /// one); a syscall name as its numbers in the ABIs it covers; a
    /// capability set as `CAP_A,CAP_B` (Tetragon's mask syntax).
    fn value(&self, raw: &str, kind: ValueKind) -> Result<Vec<u64>, CompileError> {
        let raw = raw.trim();
        if let Some(v) = values::parse_int(raw) {
            return Ok(vec![v]);
        }
        match kind {
            ValueKind::SyscallId => syscall_ids(raw)
                .map(|ids| ids.into_iter().map(u64::from).collect())
                .ok_or_else(|| self.invalid(format!(
                    "unknown syscall `{raw}` (x86_64 or i386; `x64/NAME` or `i386/NAME` names one ABI)"
                ))),
            ValueKind::CapabilitySet => values::capability_mask(raw).map(|m| vec![m]).ok_or_else(|| {
                self.invalid(format!(
                    "`{raw}` is neither a mask nor capability names separated by commas (CAP_CHOWN,CAP_SYS_ADMIN)"
                ))
            }),
            ValueKind::Integer => Err(self.invalid(format!("`{raw}` is not an integer"))),
        }
    }

    /// Several entries are ANDed, as in Tetragon: they fold into one set
    /// (the In sets intersected, less every NotIn value; NotIn alone: the
    /// union), so the kernel checks one list.
    fn compile_pids(
        &self,
        pids: &[PidSelector],
        compiled: &mut Selector,
    ) -> Result<(), CompileError> {
        let Some(first) = pids.first() else {
            return Ok(());
        };
        if pids.iter().any(|p| {
            p.follow_forks != first.follow_forks || p.is_namespace_pid != first.is_namespace_pid
        }) {
            return Err(self.unsupported(
                "matchPIDs entries that differ in followForks or isNamespacePID cannot be combined in one selector",
            ));
        }
        let mut entries = Vec::new();
        for entry in pids {
            let op = set_operator(entry.operator.as_str()).ok_or_else(|| {
                self.invalid(format!(
                    "matchPIDs operator {} (expected In or NotIn)",
                    entry.operator.as_str()
                ))
            })?;
            entries.push((op == set_op::IN, entry.values.as_slice()));
        }
        let (within, values) = fold_in_not_in(entries);
        let operator = if within { set_op::IN } else { set_op::NOT_IN };
        if values.len() > MAX_PIDS {
            return Err(self.invalid(format!("at most {MAX_PIDS} matchPIDs values")));
        }
        compiled.pid_follow = u8::from(first.follow_forks);
        compiled.pid_in_ns = u8::from(first.is_namespace_pid);
        compiled.pid_op = operator;
        for (i, v) in values.iter().enumerate() {
            compiled.pids[i] = *v;
        }
        compiled.n_pids = values.len() as u8;
        Ok(())
    }

    fn compile_binaries(
        &self,
        bins: &[BinarySelector],
        compiled: &mut Selector,
        out: &mut CompiledSelectors,
    ) -> Result<(), CompileError> {
        let Some(first) = bins.first() else {
            return Ok(());
        };
        compiled.binary_follow = u8::from(first.follow_children);
        compiled.binary_op = self.binary_entries(Whose::Own, bins, out)?;
        Ok(())
    }

    /// The operator code of a non-empty matchBinaries or
    /// matchParentBinaries field: one entry as it is, several folded.
    fn binary_entries(
        &self,
        whose: Whose,
        bins: &[BinarySelector],
        out: &mut CompiledSelectors,
    ) -> Result<u8, CompileError> {
        match bins {
            [only] => self.binary_entry(whose, only, out),
            _ => {
                let folded = self.fold_binaries(whose, bins)?;
                self.binary_entry(whose, &folded, out)
            }
        }
    }

    /// Several matchBinaries (or matchParentBinaries) entries are ANDed, as
    /// in Tetragon. In and NotIn entries (exact paths) fold into one list,
    /// as matchPIDs do: the In lists intersected, less every NotIn path;
    /// NotIn alone, their union. Prefix and Postfix entries do not fold
    /// into one set.
    fn fold_binaries(
        &self,
        whose: Whose,
        bins: &[BinarySelector],
    ) -> Result<BinarySelector, CompileError> {
        let field = whose.field();
        let first = &bins[0];
        if bins
            .iter()
            .any(|b| b.follow_children != first.follow_children)
        {
            return Err(self.unsupported(format!(
                "{field} entries that differ in followChildren cannot be combined in one selector"
            )));
        }
        let mut entries = Vec::new();
        for entry in bins {
            let op = set_operator(entry.operator.as_str()).ok_or_else(|| {
                self.unsupported(format!(
                    "several {field} entries combine only with In and NotIn, not {}",
                    entry.operator.as_str()
                ))
            })?;
            entries.push((op == set_op::IN, entry.values.as_slice()));
        }
        let (within, values) = fold_in_not_in(entries);
        let operator = if within {
            BinaryOperator::In
        } else {
            BinaryOperator::NotIn
        };
        Ok(BinarySelector {
            operator,
            values,
            follow_children: first.follow_children,
        })
    }

    fn compile_parent_binaries(
        &self,
        bins: &[BinarySelector],
        compiled: &mut Selector,
        out: &mut CompiledSelectors,
    ) -> Result<(), CompileError> {
        let Some(first) = bins.first() else {
            return Ok(());
        };
        compiled.parent_binary_op = self.binary_entries(Whose::Parent, bins, out)?;
        // The entries agree on it (`fold_binaries`).
        compiled.parent_binary_follow = u8::from(first.follow_children);
        Ok(())
    }

    /// One matchBinaries or matchParentBinaries entry: its map entries, and
    /// the operator's code. In/NotIn list exact paths (each given a binary
    /// id); Prefix/Postfix and their Not forms go to the string trie.
    fn binary_entry(
        &self,
        whose: Whose,
        entry: &BinarySelector,
        out: &mut CompiledSelectors,
    ) -> Result<u8, CompileError> {
        let field = whose.field();
        let (code, shape) = match entry.operator.as_str() {
            "Prefix" => (set_op::PREFIX, values::StrShape::Prefix),
            "NotPrefix" => (set_op::NOT_PREFIX, values::StrShape::Prefix),
            "Postfix" => (set_op::POSTFIX, values::StrShape::Postfix),
            "NotPostfix" => (set_op::NOT_POSTFIX, values::StrShape::Postfix),
            other => {
                let code = set_operator(other).ok_or_else(|| {
                    self.unsupported(format!("{field} operator {other} is not supported"))
                })?;
                for path in &entry.values {
                    if !path.starts_with('/') {
                        return Err(self
                            .invalid(format!("{field} value `{path}` must be an absolute path")));
                    }
                    out.entries.push(MapEntry::Binary {
                        selector: whose.set_selector(self.s as u32),
                        path: path.clone(),
                    });
                }
                return Ok(code);
            }
        };
        for v in &entry.values {
            let bytes = values::str_key(v, shape).ok_or_else(|| {
                self.invalid(format!(
                    "{field} value `{v}` is longer than the {} bytes the kernel compares",
                    STR_MATCH_LEN - 1
                ))
            })?;
            out.entries.push(MapEntry::Str {
                selector: self.s as u8,
                filter: whose.trie_filter(),
                bytes,
            });
        }
        Ok(code)
    }

    /// Each entry is one kernel filter; all must hold (ANDed, as Tetragon).
    fn compile_capabilities(
        &self,
        caps: &[CapabilitiesSelector],
        compiled: &mut Selector,
    ) -> Result<(), CompileError> {
        if caps.len() > MAX_CAP_FILTERS {
            return Err(self.invalid(format!(
                "at most {MAX_CAP_FILTERS} matchCapabilities entries per selector"
            )));
        }
        for (entry, filter) in caps.iter().zip(compiled.caps.iter_mut()) {
            *filter = self.cap_filter("matchCapabilities", entry)?;
        }
        Ok(())
    }

    /// One matchCapabilities or matchCapabilityChanges entry.
    fn cap_filter(
        &self,
        field: &str,
        entry: &CapabilitiesSelector,
    ) -> Result<CapFilter, CompileError> {
        let mut filter = CapFilter::default();
        if entry.is_namespace_capability {
            filter.host_user_ns = values::host_namespace("User").map_err(|e| {
                self.unsupported(format!(
                    "isNamespaceCapability needs the host's user namespace: {e}"
                ))
            })?;
        }
        filter.op = set_operator(entry.operator.as_str()).ok_or_else(|| {
            self.invalid(format!(
                "{field} operator {} (expected In or NotIn)",
                entry.operator.as_str()
            ))
        })?;
        filter.set = match entry.ty.as_str() {
            "Inheritable" => cap_set::INHERITABLE,
            "Permitted" => cap_set::PERMITTED,
            _ => cap_set::EFFECTIVE,
        };
        for name in &entry.values {
            let bit = values::capability(name).ok_or_else(|| {
                self.invalid(format!("`{name}` is not a capability (CAP_SYS_ADMIN, ...)"))
            })?;
            filter.mask |= 1u64 << bit;
        }
        Ok(filter)
    }

    /// matchNamespaceChanges and matchCapabilityChanges: one entry each,
    /// the one Tetragon's kernel side reads (a second would be ignored
    /// there, so it is refused here).
    fn compile_namespace_changes(
        &self,
        changes: &[NamespaceChangesSelector],
        compiled: &mut Selector,
    ) -> Result<(), CompileError> {
        let Some(entry) = self.only_entry("matchNamespaceChanges", changes)? else {
            return Ok(());
        };
        compiled.ns_change_op = set_operator(entry.operator.as_str()).ok_or_else(|| {
            self.invalid(format!(
                "matchNamespaceChanges operator {} (expected In or NotIn)",
                entry.operator.as_str()
            ))
        })?;
        for ns in &entry.values {
            compiled.ns_change_mask |= 1 << values::namespace_kind(ns.as_str());
        }
        Ok(())
    }

    fn compile_capability_changes(
        &self,
        changes: &[CapabilitiesSelector],
        compiled: &mut Selector,
    ) -> Result<(), CompileError> {
        if let Some(entry) = self.only_entry("matchCapabilityChanges", changes)? {
            compiled.cap_change = self.cap_filter("matchCapabilityChanges", entry)?;
        }
        Ok(())
    }

    /// The one entry of a filter kind Tetragon reads only the first of.
    fn only_entry<'e, T>(
        &self,
        field: &str,
        entries: &'e [T],
    ) -> Result<Option<&'e T>, CompileError> {
        match entries {
            [] => Ok(None),
            [entry] => Ok(Some(entry)),
            _ => Err(self.unsupported(format!(
                "one {field} entry per selector (Tetragon reads only the first)"
            ))),
        }
    }

    /// Each entry is one kernel filter; all must hold (ANDed, as Tetragon).
    fn compile_namespaces(
        &self,
        namespaces: &[NamespaceSelector],
        compiled: &mut Selector,
    ) -> Result<(), CompileError> {
        if namespaces.len() > MAX_NS_FILTERS {
            return Err(self.invalid(format!(
                "at most {MAX_NS_FILTERS} matchNamespaces entries per selector"
            )));
        }
        for (entry, filter) in namespaces.iter().zip(compiled.namespaces.iter_mut()) {
            filter.op = set_operator(entry.operator.as_str()).ok_or_else(|| {
                self.invalid(format!(
                    "matchNamespaces operator {} (expected In or NotIn)",
                    entry.operator.as_str()
                ))
            })?;
            let kind = entry.namespace.as_str();
            filter.kind = values::namespace_kind(kind);
            if entry.values.len() > MAX_NS_VALUES {
                return Err(self.invalid(format!("at most {MAX_NS_VALUES} matchNamespaces values")));
            }
            for (i, v) in entry.values.iter().enumerate() {
                filter.values[i] = match v.trim() {
                    "host_ns" => values::host_namespace(kind)
                        .map_err(|e| self.unsupported(format!("host_ns of {kind}: {e}")))?,
                    n => n.parse::<u32>().map_err(|_| {
                        self.invalid(format!("`{n}` is not a namespace inode number or host_ns"))
                    })?,
                };
            }
            filter.n = entry.values.len() as u8;
        }
        Ok(())
    }

    fn compile_actions(
        &self,
        actions: &[ActionSelector],
        compiled: &mut Selector,
        out: &mut CompiledSelectors,
    ) -> Result<(), CompileError> {
        OverLimit::Actions
            .check(actions.len())
            .map_err(|e| self.invalid(e.to_string()))?;
        for (i, a) in actions.iter().enumerate() {
            compiled.actions[i] = match a.action {
                ActionType::Post => ActionSpec {
                    kind: action::POST,
                    rate_limit_ns: a.rate_limit_ns().map_err(|e| self.invalid(e))?.unwrap_or(0),
                    rate_limit_scope: match a.rate_limit_scope {
                        None | Some(RateLimitScope::Thread) => rate_scope::THREAD,
                        Some(RateLimitScope::Process) => rate_scope::PROCESS,
                        Some(RateLimitScope::Global) => rate_scope::GLOBAL,
                    },
                    stacks: if a.kernel_stack_trace {
                        stack::KERNEL
                    } else {
                        0
                    } | if a.user_stack_trace { stack::USER } else { 0 },
                    ima_hash: u8::from(a.ima_hash),
                    ..Default::default()
                },
                ActionType::NoPost => ActionSpec {
                    kind: action::NO_POST,
                    ..Default::default()
                },
                ActionType::Sigkill => ActionSpec {
                    kind: action::SIGKILL,
                    signal: 9,
                    ..Default::default()
                },
                ActionType::Signal => {
                    let sig = a
                        .arg_sig
                        .ok_or_else(|| self.invalid("Signal needs argSig"))?;
                    if !(1..=64).contains(&sig) {
                        return Err(self.invalid(format!("argSig {sig} is not a signal number")));
                    }
                    ActionSpec {
                        kind: action::SIGNAL,
                        signal: sig,
                        ..Default::default()
                    }
                }
                ActionType::Override if let Some(site) = self.args.regs => {
                    self.regs_action(site, a, &actions[..i], out)?
                }
                ActionType::Override => {
                    if let Some(why) = &self.args.override_denied {
                        return Err(self.unsupported(why));
                    }
                    if !a.arg_regs.is_empty() {
                        return Err(self.unsupported(
                            "argRegs set a user process's registers: served on uprobes only, as in Tetragon",
                        ));
                    }
                    let arg_error = a
                        .arg_error
                        .ok_or_else(|| self.invalid("Override needs argError"))?;
                    let errno = self.returned(arg_error)?;
                    ActionSpec {
                        kind: action::OVERRIDE,
                        signal: errno as u32,
                        ..Default::default()
                    }
                }
                // Done by the daemon (see `daemon_actions`).
                ActionType::GetUrl | ActionType::DnsLookup => ActionSpec {
                    kind: action::DAEMON,
                    ..Default::default()
                },
                ActionType::Set => self.set_action(a, &actions[..i])?,
                ActionType::TrackSock | ActionType::UntrackSock => self.sock_action(a)?,
                ActionType::NotifyEnforcer | ActionType::CleanupEnforcerNotification => {
                    return Err(self
                        .unsupported(format!("action {} is not supported yet", a.action.as_str())))
                }
            };
        }
        compiled.n_actions = actions.len() as u8;
        Ok(())
    }
}

impl SelectorCtx<'_> {
    /// What an Override with `arg_error` returns from the function: a
    /// negative errno as it is, a positive value only where the function's
    /// caller takes one (see `positive.rs`), as this kernel's caller does.
    fn returned(&self, arg_error: i32) -> Result<i32, CompileError> {
        match self.args.positive {
            _ if (-4095..0).contains(&arg_error) => Ok(arg_error),
            Some(p) if arg_error == p.given => Ok(p.returned),
            Some(p) if arg_error > 0 => Err(self.invalid(format!(
                "argError {arg_error} means nothing to {}'s caller: {} {} (or give a negative errno)",
                p.function, p.given, p.meaning
            ))),
            None if arg_error > 0 => Err(self.unsupported(format!(
                "a positive argError is no errno: Tetragon returns it as it is, which only a few \
                 security_* functions' callers take, each with its own meaning; tetragond serves {}",
                super::positive::SERVED
            ))),
            _ => Err(self.invalid(format!("argError {arg_error} is not a negative errno"))),
        }
    }
}

impl SelectorCtx<'_> {
    /// Tetragon's Set on a USDT probe: `argValue` written over the
    /// argument at position `argIndex` of `args`, which must be 4 bytes of
    /// user memory (Tetragon's conditions). `before`: the selector's
    /// earlier actions (one Set per selector: the kernel queues one).
    fn set_action(
        &self,
        a: &ActionSelector,
        before: &[ActionSelector],
    ) -> Result<ActionSpec, CompileError> {
        let Some(writable) = &self.args.writable else {
            return Err(self.unsupported(
                "Set writes an argument of a USDT probe: it is served on usdts only, as in Tetragon",
            ));
        };
        if before.iter().any(|b| b.action == ActionType::Set) {
            return Err(self.invalid("one Set per selector"));
        }
        let index = a
            .arg_index
            .ok_or_else(|| self.invalid("Set needs argIndex"))?;
        let value = a
            .arg_value
            .ok_or_else(|| self.invalid("Set needs argValue"))?;
        match writable.get(index as usize) {
            None => Err(self.invalid(format!(
                "Set argIndex {index} names no argument: the probe's args list has {}",
                writable.len()
            ))),
            Some(Err(why)) => Err(self.unsupported(format!("Set argIndex {index}: {why}"))),
            Some(Ok(())) => Ok(ActionSpec {
                kind: action::SET,
                arg: index as u8,
                signal: value as u32,
                ..Default::default()
            }),
        }
    }
}

impl SelectorCtx<'_> {
    /// Tetragon's Override on a uprobe: the registers the process goes on
    /// with (see `regs.rs`), written to `UPROBE_REGS` for the selector.
    fn regs_action(
        &self,
        site: super::regs::RegsSite,
        a: &ActionSelector,
        before: &[ActionSelector],
        out: &mut CompiledSelectors,
    ) -> Result<ActionSpec, CompileError> {
        if before.iter().any(|b| b.action == ActionType::Override) {
            return Err(self.invalid("one Override per selector"));
        }
        let regs = super::regs::override_of(&a.arg_regs, a.arg_error, site)
            .map_err(|why| self.invalid(why))?;
        if let Some(why) = site.kernel_denied {
            return Err(self.unsupported(why));
        }
        out.entries.push(MapEntry::Regs {
            selector: self.s as u8,
            regs,
        });
        Ok(ActionSpec {
            kind: action::REGS,
            signal: a.arg_error.unwrap_or(0) as u32,
            ..Default::default()
        })
    }
}

impl SelectorCtx<'_> {
    /// Tetragon's TrackSock and UntrackSock: on the socket at position
    /// `argSock` of `args`, a `sock` or a `socket` (its `sk`).
    fn sock_action(&self, a: &ActionSelector) -> Result<ActionSpec, CompileError> {
        let name = a.action.as_str();
        // 0 when absent, as in Tetragon (its examples leave it out).
        let position = a.arg_sock.unwrap_or(0);
        let Some(arg) = self.args.args.get(position as usize) else {
            return Err(self.invalid(format!(
                "{name} argSock {position} names no argument: args has {}",
                self.args.args.len()
            )));
        };
        let kind = self
            .args
            .memory
            .filter(|_| !super::data::is_data(arg))
            .and_then(|memory| kind_of(arg.ty, memory).ok())
            .map(|(kind, _)| kind);
        if !matches!(kind, Some(arg_kind::SOCK | arg_kind::SOCKET)) {
            return Err(self.invalid(format!(
                "{name} argSock {position}: the argument there is of type {}, not a kernel sock or socket",
                arg.ty
            )));
        }
        Ok(ActionSpec {
            kind: if a.action == ActionType::TrackSock {
                action::TRACK_SOCK
            } else {
                action::UNTRACK_SOCK
            },
            arg: position as u8,
            ..Default::default()
        })
    }
}

/// The selector's actions the daemon performs, in order.
fn daemon_actions(actions: &[ActionSelector]) -> Vec<DaemonAction> {
    actions
        .iter()
        .filter_map(|a| match a.action {
            ActionType::GetUrl => a.arg_url.clone().map(DaemonAction::GetUrl),
            ActionType::DnsLookup => a.arg_fqdn.clone().map(DaemonAction::DnsLookup),
            _ => None,
        })
        .collect()
}

/// What an integer filter's values may name besides numbers.
#[derive(Clone, Copy)]
enum ValueKind {
    Integer,
    /// Syscall names (the `id` of raw_syscalls, syscall64 args, lists).
    SyscallId,
    /// Capability names, for `kernel_cap_t` and the `cap_*` sets.
    CapabilitySet,
}

fn operator_code(name: &str) -> Option<u8> {
    Some(match name {
        "Equal" => op::EQUAL,
        "NotEqual" => op::NOT_EQUAL,
        "GreaterThan" | "GT" => op::GREATER_THAN,
        "LessThan" | "LT" => op::LESS_THAN,
        "Mask" => op::MASK,
        "InMap" => op::IN_MAP,
        "NotInMap" => op::NOT_IN_MAP,
        _ => return None,
    })
}

/// ANDed In and NotIn entries (`(is_in, values)`) as one set: the In
/// lists intersected, less every NotIn value (`(true, ..)`, In); with no
/// In entry, the union of the NotIn lists (`(false, ..)`, NotIn). In the
/// order first seen, each value once.
fn fold_in_not_in<T: Clone + Eq + std::hash::Hash>(entries: Vec<(bool, &[T])>) -> (bool, Vec<T>) {
    let mut within: Option<Vec<T>> = None;
    let mut excluded: Vec<T> = Vec::new();
    for (is_in, values) in entries {
        if is_in {
            within = Some(match within {
                None => values.to_vec(),
                Some(v) => v.into_iter().filter(|x| values.contains(x)).collect(),
            });
        } else {
            excluded.extend_from_slice(values);
        }
    }
    let (is_in, mut all): (bool, Vec<T>) = match within {
        Some(v) => (
            true,
            v.into_iter().filter(|x| !excluded.contains(x)).collect(),
        ),
        None => (false, excluded),
    };
    let mut seen = std::collections::HashSet::new();
    all.retain(|x| seen.insert(x.clone()));
    (is_in, all)
}

/// Whose executable a binary entry is matched against.
#[derive(Clone, Copy)]
enum Whose {
    /// The task's (matchBinaries).
    Own,
    /// Its parent's (matchParentBinaries).
    Parent,
}

impl Whose {
    fn field(self) -> &'static str {
        match self {
            Whose::Own => "matchBinaries",
            Whose::Parent => "matchParentBinaries",
        }
    }

    /// `BinarySetKey::selector` of its exact paths.
    fn set_selector(self, selector: u32) -> u32 {
        match self {
            Whose::Own => selector,
            Whose::Parent => selector | PARENT_BINARIES,
        }
    }

    /// `StrTrieData::filter` of its prefixes and postfixes.
    fn trie_filter(self) -> u8 {
        match self {
            Whose::Own => BINARY_FILTER,
            Whose::Parent => PARENT_BINARY_FILTER,
        }
    }
}

fn set_operator(name: &str) -> Option<u8> {
    match name {
        "In" => Some(set_op::IN),
        "NotIn" => Some(set_op::NOT_IN),
        _ => None,
    }
}
