//! Hooks on a kernel function or LSM hook: one program per target, reading
//! arguments from registers (kprobes) or the trampoline's argument array
//! (fentry, fexit, LSM).

use tetragond_ebpf::{ArgSpec, HookConf};

use super::{
    args::{link_sizes, unsupported_arg, word_arg, Memory},
    data,
    fields::{
        check_declared, check_iov_iter, check_record, concrete_type, read_member, resolve_field,
        DeclaredError,
    },
    meta,
    selectors::{compile_selectors, HookArgs},
    Attach, CompiledHook, FunctionFamily, FunctionTarget, HookKind, HookMeta,
};
use crate::policy::limits::OverLimit;
use crate::{
    error::CompileError,
    kernel_info::btf::{ArgOrigin, KernelBtf},
    policy::{
        model::{Arg, ArgType, Selector, TracingPolicy},
        NodePath,
    },
};

/// Offsets in x86-64 `struct pt_regs` of rdi, rsi, rdx, rcx, r8, r9: the
/// registers of the first six arguments.
pub const ARG_REGISTERS: [u16; 6] = [112, 104, 96, 88, 72, 64];
/// Offset of rax in `struct pt_regs`: a function's return value.
pub const RETURN_REGISTER: u16 = 80;
/// The `index` given to the return value when it is read with the entry
/// args (fexit), so matchReturnArgs find it and matchArgs do not.
pub const RETURN_INDEX: u32 = u32::MAX;

/// Everything a function hook is made of.
pub struct FunctionHook<'a> {
    pub what: &'a str,
    pub target: FunctionTarget,
    pub args: &'a [Arg],
    pub selectors: &'a [Selector],
    pub message: Option<String>,
    pub tags: Vec<String>,
    pub override_denied: Option<String>,
    /// The positive `argError` the function takes, if any.
    pub positive: Option<super::positive::PositiveOverride>,
    /// fexit: where the return value is (after the function's parameters).
    pub return_offset: Option<u16>,
    /// What its events are exported as, when not named by the target
    /// (`process_kprobe`, `process_lsm`): a raw tracepoint's subsystem.
    pub exported_as: Option<HookKind>,
    /// matchArgs.index is a position in `args` (tracepoints), not the
    /// `index` of one of them.
    pub positional: bool,
    /// The running kernel's BTF, for args with `resolve`.
    pub btf: Option<&'a KernelBtf>,
    /// Where `args` go on with the hook's `data` values, if it has any
    /// (see [`super::data`]).
    pub data_from: Option<usize>,
}

/// Where the type of argument `index` of `target` is declared in BTF;
/// None for a return value.
fn arg_origin(target: &FunctionTarget, index: u32) -> Option<ArgOrigin<'_>> {
    let name = target.name.as_str();
    match target.family {
        FunctionFamily::Kprobe | FunctionFamily::Fentry | FunctionFamily::Fexit
            if index != RETURN_INDEX =>
        {
            Some(ArgOrigin::Function { name, index })
        }
        FunctionFamily::Lsm => Some(ArgOrigin::Lsm { hook: name, index }),
        FunctionFamily::RawTracepoint => Some(ArgOrigin::RawTracepoint { event: name, index }),
        _ => None,
    }
}

/// Where argument `arg` is in the program's context.
fn arg_offset(
    family: FunctionFamily,
    arg: &Arg,
    position: usize,
    return_offset: Option<u16>,
) -> Result<u16, String> {
    if arg.index == RETURN_INDEX {
        return return_offset.ok_or_else(|| "no return value here".to_string());
    }
    match family {
        FunctionFamily::Kprobe => ARG_REGISTERS
            .get(arg.index as usize)
            .copied()
            .ok_or_else(|| "only the 6 register arguments can be read by a kprobe".to_string()),
        // The return probe's only argument is its return value.
        FunctionFamily::Kretprobe if position == 0 => Ok(RETURN_REGISTER),
        FunctionFamily::Kretprobe => Err("a kretprobe sees only the return value".into()),
        FunctionFamily::Fentry
        | FunctionFamily::Fexit
        | FunctionFamily::Lsm
        | FunctionFamily::RawTracepoint => {
            if arg.index >= 12 {
                return Err("BPF trampolines pass at most 12 arguments".into());
            }
            Ok(8 * arg.index as u16)
        }
    }
}

/// The hook's args with `type: auto` replaced by the type BTF declares.
fn concrete_args(hook: &FunctionHook<'_>) -> Result<Vec<Arg>, CompileError> {
    let concrete = |(i, arg): (usize, &Arg)| {
        if arg.ty != ArgType::Auto {
            return Ok(arg.clone());
        }
        if data::is_data(arg) {
            return data::concrete(hook.what, arg, hook.btf);
        }
        let ty = arg_origin(&hook.target, arg.index)
            .ok_or_else(|| {
                "type auto takes an argument's type from BTF; a return value's type must be named"
                    .to_string()
            })
            .and_then(|origin| concrete_type(arg, origin, hook.btf))
            .map_err(|m| {
                unsupported_arg(hook.what, arg.index, m)
                    .within(NodePath::root().key("args").index(i).key("type"))
            })?;
        Ok(Arg { ty, ..arg.clone() })
    };
    hook.args.iter().enumerate().map(concrete).collect()
}

/// How `arg` (at position `i`) is read: its place in the context, then
/// the field behind it (`resolve`) and the member its type reads.
fn arg_spec(hook: &FunctionHook<'_>, i: usize, arg: &Arg) -> Result<ArgSpec, CompileError> {
    let what = hook.what;
    if data::is_data(arg) {
        return data::spec(what, arg, hook.btf);
    }
    let at = |key: &'static str| {
        move |m: String| {
            unsupported_arg(what, arg.index, m)
                .within(NodePath::root().key("args").index(i).key(key))
        }
    };
    let origin = arg_origin(&hook.target, arg.index);
    if let (Some(origin), None, false) = (origin, &arg.resolve, arg.ty == ArgType::Nop) {
        check_declared(arg, origin, hook.btf).map_err(|e| match e {
            DeclaredError::Index(m) => at("index")(m),
            DeclaredError::Type(m) => at("type")(m),
        })?;
    }
    let offset = arg_offset(hook.target.family, arg, i, hook.return_offset)
        .map_err(|m| unsupported_arg(what, arg.index, m))?;
    let mut spec = word_arg(arg.ty, offset, Memory::Kernel)
        .map_err(|m| unsupported_arg(what, arg.index, m))?;
    if arg.resolve.is_some() {
        arg_origin(&hook.target, arg.index)
            .ok_or_else(|| {
                "resolve follows the fields behind a function's arguments, not its return value"
                    .to_string()
            })
            .and_then(|origin| resolve_field(&mut spec, arg, origin, hook.btf))
            .map_err(at("resolve"))?;
    }
    read_member(&mut spec, arg.ty, hook.btf).map_err(at("type"))?;
    check_record(&spec, arg.ty, hook.btf).map_err(at("type"))?;
    check_iov_iter(arg.ty, hook.btf).map_err(at("type"))?;
    Ok(spec)
}

pub fn compile(
    policy: &TracingPolicy,
    hook: FunctionHook<'_>,
) -> Result<CompiledHook, CompileError> {
    let what = hook.what;
    OverLimit::Args
        .check(hook.args.len())
        .map_err(|e| CompileError::Invalid(format!("{what}: {e}")))?;
    let args = &concrete_args(&hook)?;
    let mut conf = HookConf {
        n_args: args.len() as u8,
        ..Default::default()
    };
    for (i, arg) in args.iter().enumerate() {
        conf.args[i] = arg_spec(&hook, i, arg)?;
    }
    let family = hook.target.family;
    link_sizes(what, &mut conf, args, |index| match family {
        FunctionFamily::Kprobe => ARG_REGISTERS.get(index as usize).copied(),
        FunctionFamily::Kretprobe => None,
        _ => (index < 12).then_some(8 * index as u16),
    })?;
    let hook_args = HookArgs {
        args,
        positional: hook.positional,
        syscall_id: vec![],
        memory: Some(Memory::Kernel),
        override_denied: hook.override_denied.clone(),
        positive: hook.positive,
        writable: None,
        regs: None,
    };
    let sel = compile_selectors(what, policy, hook.selectors, &hook_args, false)?;
    conf.n_selectors = sel.selectors.len() as u8;
    conf.selectors[..sel.selectors.len()].copy_from_slice(&sel.selectors);
    let arg_types = args
        .iter()
        .map(|a| (a.ty.as_str().to_string(), a.label.clone()))
        .collect();
    let function = hook.target.name.clone();
    let kind = match (hook.exported_as, hook.target.family) {
        (Some(kind), _) => kind,
        (None, FunctionFamily::Lsm) => HookKind::Lsm { function },
        (None, _) => HookKind::Kprobe { function },
    };
    Ok(CompiledHook {
        conf,
        sub_ids: vec![],
        entries: sel.entries,
        meta: HookMeta {
            message: hook.message,
            tags: hook.tags,
            daemon_actions: sel.daemon_actions,
            return_position: match hook.target.family {
                FunctionFamily::Kretprobe => Some(0),
                _ => hook.return_offset.map(|_| args.len().saturating_sub(1)),
            },
            data_from: hook.data_from,
            ..meta(policy, kind, arg_types)
        },
        attach: Attach::Function(hook.target),
    })
}

/// A return probe sees only the return value: `returnArg` is its one
/// arg, matchReturnArgs filter it and matchReturnActions run with
/// matchActions. Entry args cannot be read at return.
pub fn return_view(
    what: &str,
    args: &[Arg],
    return_arg: Option<&Arg>,
    selectors: &[Selector],
) -> Result<(Vec<Arg>, Vec<Selector>), CompileError> {
    if !args.is_empty() || selectors.iter().any(|s| !s.match_args.is_empty()) {
        return Err(CompileError::Unsupported(format!(
            "{what}: a return probe sees only the return value; drop args/matchArgs or hook the function's entry separately"
        )));
    }
    let index = return_arg.map_or(0, |a| a.index);
    with_return(what, &[], return_arg, selectors, index)
}

/// fexit sees the entry args and the return value: `returnArg` is read
/// after them (as `RETURN_INDEX`), matchReturnArgs filter it beside
/// matchArgs, and matchReturnActions run with matchActions.
pub fn return_with_args(
    what: &str,
    args: &[Arg],
    return_arg: Option<&Arg>,
    selectors: &[Selector],
) -> Result<(Vec<Arg>, Vec<Selector>), CompileError> {
    with_return(what, args, return_arg, selectors, RETURN_INDEX)
}

/// `args` then `returnArg` (given `index`), and the selectors with
/// matchReturnArgs (pointed at `index`) among their matchArgs and
/// matchReturnActions among their matchActions.
fn with_return(
    what: &str,
    args: &[Arg],
    return_arg: Option<&Arg>,
    selectors: &[Selector],
    index: u32,
) -> Result<(Vec<Arg>, Vec<Selector>), CompileError> {
    let mut ret = return_arg
        .cloned()
        .ok_or_else(|| CompileError::Invalid(format!("{what}: return: true needs returnArg")))?;
    ret.index = index;
    let mut all = args.to_vec();
    all.push(ret);
    let selectors = selectors
        .iter()
        .map(|s| {
            let mut s = s.clone();
            let returns = std::mem::take(&mut s.match_return_args);
            s.match_args.extend(returns.into_iter().map(|mut a| {
                a.index = index;
                a
            }));
            s.match_actions.append(&mut s.match_return_actions);
            s
        })
        .collect();
    Ok((all, selectors))
}
