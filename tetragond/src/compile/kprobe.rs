//! `kprobes`. Syscalls (`syscall: true`) are served by the syscall
//! tracepoints on every kernel: `raw_syscalls/sys_enter` listed under the
//! syscall's numbers, the 64-bit one and the i386 one (`int 0x80` and the
//! compat entries, keyed with `ABI_I386`; `i386/NAME`, `__ia32_sys_NAME`,
//! `x64/NAME` and `__x64_sys_NAME` name one entry), with arg `index: i`
//! read from the record's `args[i]` (the registers of the entry's
//! convention: rdi, rsi, rdx, r10, r8, r9 or ebx, ecx, edx, esi, edi, ebp).
//! `call: list:NAME` over a list of syscalls makes one such hook per value
//! (per syscall for `generated_syscalls`), each listed under the numbers
//! no earlier value covers, and each naming its syscall in its events.
//! Other kernel functions get a kprobe (kretprobe for `return: true`)
//! where the kernel has kprobes, else an fentry program. Override on a
//! `security_*` function is the BPF LSM program of the hook it calls where
//! the kernel runs one (`override_by_lsm`), else an fentry program that
//! decides plus an fmod_ret program that returns the errno
//! (`sensors/fmod_ret.rs`).

use tetragond_ebpf::{action, return_half, HookConf};

use super::{
    args::{unsupported_arg, Memory},
    data,
    function::{self, FunctionHook},
    meta, returns,
    selectors::{compile_selectors, HookArgs},
    syscall_ids, Attach, CompiledHook, FormatSource, FunctionFamily, FunctionTarget, HookKind,
    HookMeta, ReturnHalf,
};
use crate::{
    error::CompileError,
    kernel_info::{
        btf::{ArgOrigin, KernelBtf},
        HookCaps, KernelFunctions,
    },
    policy::model::{section, ActionType, KprobeSpec, ListSpec, ListType, Selector, TracingPolicy},
    syscalls::{self, Share},
};

/// A syscall has at most six arguments.
const SYSCALL_ARGS: u32 = 6;

/// Which section a kernel-function hook is written in: `kprobes` (a
/// kprobe where the kernel has kprobes) or `fentries` (BPF trampolines
/// only, as in Tetragon).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Kprobes,
    Fentries,
}

impl Section {
    pub fn key(self) -> &'static str {
        match self {
            Section::Kprobes => section::KPROBES,
            Section::Fentries => section::FENTRIES,
        }
    }
}

/// The hooks of one kprobe: none when it is skipped (`ignore.callNotFound`
/// on an unknown call), one per syscall for `call: list:NAME`.
pub fn compile(
    policy: &TracingPolicy,
    section: Section,
    hook_index: usize,
    kp: &KprobeSpec,
    formats: &dyn FormatSource,
) -> Result<Vec<CompiledHook>, CompileError> {
    let what = format!("{}[{hook_index}] {}", section.key(), kp.call);
    if let Some(name) = kp.call.strip_prefix("list:") {
        return call_list(policy, &what, kp, name, formats);
    }
    if kp.syscall {
        let Some(ids) = syscall_ids(&kp.call) else {
            if kp.ignore.as_ref().is_some_and(|i| i.call_not_found) {
                tracing::warn!("{what}: no such syscall; skipped (ignore.callNotFound)");
                return Ok(vec![]);
            }
            return Err(CompileError::Invalid(format!(
                "{what}: no such syscall on x86-64 (x86_64 or i386)"
            )));
        };
        return syscall(policy, &what, kp, &kp.call, ids, formats);
    }
    if !formats.has_function(&kp.call) {
        if kp.ignore.as_ref().is_some_and(|i| i.call_not_found) {
            tracing::warn!("{what}: no such kernel function; skipped (ignore.callNotFound)");
            return Ok(vec![]);
        }
        return Err(CompileError::Unsupported(format!(
            "{what}: this kernel has no function {} (not in /proc/kallsyms)",
            kp.call
        )));
    }
    kernel_function(policy, section, &what, kp, formats)
}

/// `call: list:NAME` over a list of syscalls: one syscall hook per value
/// (every syscall for `generated_syscalls`), as Tetragon makes one kprobe
/// per value, so each event names the syscall that was made. A number is
/// served by the first value that covers it only, so no call is hooked
/// twice. The policy checks refuse the rest with their place; the errors
/// here guard a policy that did not pass them.
fn call_list(
    policy: &TracingPolicy,
    what: &str,
    kp: &KprobeSpec,
    name: &str,
    formats: &dyn FormatSource,
) -> Result<Vec<CompiledHook>, CompileError> {
    let list = policy.spec.list(name).ok_or_else(|| {
        CompileError::Invalid(format!(
            "{what}: list {name:?} is not defined in spec.lists"
        ))
    })?;
    let members = match list.ty {
        Some(ListType::Syscalls) => list_members(what, list, skips_unknown(kp))?,
        Some(ListType::GeneratedSyscalls) => syscalls::every_syscall(),
        other => {
            let ty = other.map_or("(none)", |t| t.as_str());
            return Err(CompileError::Unsupported(format!(
                "{what}: list {name:?} of type {ty} cannot be hooked as calls; lists of type syscalls and generated_syscalls can"
            )));
        }
    };
    let mut hooks = Vec::new();
    for (call, ids) in members {
        let what = format!("{what} ({call})");
        hooks.extend(syscall(policy, &what, kp, &call, ids, formats)?);
    }
    Ok(hooks)
}

fn skips_unknown(kp: &KprobeSpec) -> bool {
    kp.ignore.as_ref().is_some_and(|i| i.call_not_found)
}

/// The values of a `syscalls` list with the numbers each one serves;
/// unknown ones are skipped with `skip_unknown` (`ignore.callNotFound`).
fn list_members(
    what: &str,
    list: &ListSpec,
    skip_unknown: bool,
) -> Result<Vec<(String, Vec<u32>)>, CompileError> {
    let shares = syscalls::share_out(list.values.iter().map(String::as_str));
    let mut members = Vec::new();
    for (value, share) in list.values.iter().zip(shares) {
        match share {
            Share::Ids(ids) => members.push((value.clone(), ids)),
            Share::Unknown if skip_unknown => {
                tracing::warn!("{what}: no such syscall {value:?}; skipped (ignore.callNotFound)");
            }
            Share::Unknown => {
                return Err(CompileError::Invalid(format!(
                    "{what}: {value:?} in list {:?} is not a syscall",
                    list.name
                )))
            }
            Share::Covered => {
                return Err(CompileError::Invalid(format!(
                    "{what}: {value:?} in list {:?} names syscalls the values before it cover",
                    list.name
                )))
            }
        }
    }
    Ok(members)
}

fn has_override<'a>(
    actions: impl IntoIterator<Item = &'a crate::policy::model::ActionSelector>,
) -> bool {
    actions
        .into_iter()
        .any(|a| a.action == crate::policy::model::ActionType::Override)
}

/// A kernel function's hooks: one at its entry, or for `return: true` the
/// entry half and the exit half (see [`ReturnHalf`]).
fn kernel_function(
    policy: &TracingPolicy,
    section: Section,
    what: &str,
    kp: &KprobeSpec,
    formats: &dyn FormatSource,
) -> Result<Vec<CompiledHook>, CompileError> {
    if !kp.ret {
        return function_entry(policy, section, what, kp, &kp.selectors, formats).map(|h| vec![h]);
    }
    let unsupported = |msg: &str| CompileError::Unsupported(format!("{what}: {msg}"));
    if has_override(kp.selectors.iter().flat_map(|s| &s.match_return_actions)) {
        return Err(unsupported(
            "Override in matchReturnActions: the call is over when they run; Override in matchActions acts at the call",
        ));
    }
    let (entry, copy) = returns::entry_half(what, kp, |kp, selectors| {
        function_entry(policy, section, what, kp, selectors, formats)
    })?;
    let caps = formats.caps();
    // fexit where the kernel has trampolines; a kretprobe sees the return
    // value as well, and serves it where kprobes are asked for
    // (`kernel_functions = "kprobe"`), and where fexit programs would
    // take numbered slots (trampoline links without cookies, before
    // 5.19), as kretprobes never do.
    let kretprobe = section == Section::Kprobes
        && caps.kprobes
        && (caps.kernel_functions == KernelFunctions::Kprobe || !caps.trampoline_cookies);
    let params = (caps.trampolines && !kretprobe)
        .then(|| formats.function_params(&kp.call))
        .flatten();
    let (family, return_offset) = match params {
        Some(params) => (FunctionFamily::Fexit, Some(8 * params as u16)),
        // `function_entry` refused a `fentries` hook without trampolines.
        None if section == Section::Fentries => {
            return Err(unsupported(
                "fexit needs the function's parameters in the kernel's BTF, which has none for it",
            ))
        }
        None if caps.kprobes => (FunctionFamily::Kretprobe, None),
        None => {
            return Err(unsupported(
                "return probes need BPF trampolines (fexit) or kprobes (kretprobe); this kernel has neither",
            ))
        }
    };
    let target = FunctionTarget {
        family,
        name: kp.call.clone(),
    };
    let mut exit = return_hook(policy, what, kp, target, return_offset, formats)?;
    exit.conf.return_half = return_half::EXIT;
    exit.meta.return_half = ReturnHalf::Exit;
    // The returned sock is the exit half's arg 0 (`policy/unsupported.rs`
    // checks returnArg is one).
    exit.conf.ret_sock_action = match kp.return_arg_action {
        Some(ActionType::TrackSock) => action::TRACK_SOCK,
        Some(ActionType::UntrackSock) => action::UNTRACK_SOCK,
        _ => 0,
    };
    if let Some(i) = copy {
        returns::read_copy_at_return(&mut exit.conf, &mut exit.meta.args, &kp.args[i]);
    }
    Ok(vec![entry, exit])
}

/// Why a `fentries` hook cannot be served without trampolines.
const FENTRIES_NEED_TRAMPOLINES: &str =
    "fentries need BPF trampolines (fentry and fexit), which this kernel lacks (see `tetra status`); kprobes serve the same hooks where the kernel has them";

/// The hook at a kernel function's entry, with `selectors`.
fn function_entry(
    policy: &TracingPolicy,
    section: Section,
    what: &str,
    kp: &KprobeSpec,
    selectors: &[Selector],
    formats: &dyn FormatSource,
) -> Result<CompiledHook, CompileError> {
    let caps = formats.caps();
    let unsupported = |msg: String| CompileError::Unsupported(format!("{what}: {msg}"));
    if section == Section::Fentries && !caps.trampolines {
        return Err(unsupported(FENTRIES_NEED_TRAMPOLINES.into()));
    }
    let overrides = has_override(selectors.iter().flat_map(|s| &s.match_actions));
    let by_lsm = overrides
        .then(|| override_by_lsm(&kp.call, &caps, formats.btf()))
        .flatten();
    let family = if by_lsm.is_some() {
        FunctionFamily::Lsm
    } else if overrides {
        if !kp.call.starts_with("security_") {
            return Err(unsupported(
                "Override on a kernel function needs bpf_override_return or fmod_ret; tetragond honours Override on LSM hooks and, with fmod_ret, on security_* functions".into(),
            ));
        }
        if !caps.trampolines {
            return Err(unsupported(format!(
                "Override on {} needs BPF trampolines (fentry + fmod_ret), which this kernel lacks (see `tetra status`)",
                kp.call
            )));
        }
        // The fentry program decides; an fmod_ret program on the same
        // function returns the errno (sensors/fmod_ret.rs).
        FunctionFamily::Fentry
    } else if section == Section::Kprobes
        && caps.kprobes
        && !(caps.trampolines && caps.kernel_functions == KernelFunctions::Fentry)
    {
        FunctionFamily::Kprobe
    } else if caps.trampolines {
        FunctionFamily::Fentry
    } else {
        return Err(unsupported(
            "kernel functions need kprobes (CONFIG_KPROBES) or BPF trampolines (fentry); this kernel has neither (see `tetra status`); only syscall hooks (syscall: true) can be served here".into(),
        ));
    };
    let target = FunctionTarget {
        family,
        name: by_lsm.unwrap_or(&kp.call).to_string(),
    };
    let with = data::with_data(what, &kp.args, &kp.data, selectors)?;
    function::compile(
        policy,
        FunctionHook {
            what,
            target,
            args: &with.args,
            selectors: &with.selectors,
            message: kp.message.clone(),
            tags: kp.tags.clone(),
            override_denied: None,
            positive: super::positive::on(&kp.call, &caps),
            return_offset: None,
            // Events of a kprobe, whatever program serves it.
            exported_as: by_lsm.map(|_| HookKind::Kprobe {
                function: kp.call.clone(),
            }),
            positional: false,
            btf: formats.btf(),
            data_from: with.data_from,
        },
    )
}

/// The LSM hook that serves an Override on `security_*` function `call`,
/// where this kernel runs BPF LSM programs and has the hook `call` calls
/// (`X` for `security_X`) with the same parameters (BTF): its program
/// returns the errno itself. An fentry program (which decides for an
/// fmod_ret program) is skipped by the kernel when it finds it running on
/// the CPU already, a run preempted there (Debian's 6.18 preempts, lazily)
/// or interrupted, and the call then goes through: 203 denied opens of a
/// thread that preempted another did on 6.18 before this (the guest case
/// now `override-preempt`; `fentry-skipped` checks such skips are
/// counted, `kernel_skipped`). LSM programs are never skipped so. Not where a positive `argError` is served (an
/// LSM program returns errnos only).
fn override_by_lsm<'a>(call: &'a str, caps: &HookCaps, btf: Option<&KernelBtf>) -> Option<&'a str> {
    let hook = call.strip_prefix("security_")?;
    if !(caps.lsm_programs && caps.lsm_active) || super::positive::on(call, caps).is_some() {
        return None;
    }
    let btf = btf?;
    let params = btf.function_params(call).ok()?;
    if btf.function_params(&format!("bpf_lsm_{hook}")).ok()? != params {
        return None;
    }
    let declared = |origin| btf.arg_type(origin).ok().map(|id| btf.type_name(id));
    (0..params)
        .all(|index| {
            let own = declared(ArgOrigin::Function { name: call, index });
            own.is_some() && own == declared(ArgOrigin::Lsm { hook, index })
        })
        .then_some(hook)
}

/// The exit half of a kernel function's return hook: the return value
/// alone, at fexit when `return_offset` says where it is after the args,
/// else at a kretprobe; each selector's matchReturnArgs and
/// matchReturnActions.
fn return_hook(
    policy: &TracingPolicy,
    what: &str,
    kp: &KprobeSpec,
    target: FunctionTarget,
    return_offset: Option<u16>,
    formats: &dyn FormatSource,
) -> Result<CompiledHook, CompileError> {
    let view = match return_offset {
        Some(_) => function::return_with_args,
        None => function::return_view,
    };
    let selectors = returns::return_selectors(&kp.selectors);
    let (args, selectors) = view(what, &[], kp.return_arg.as_ref(), &selectors)?;
    function::compile(
        policy,
        FunctionHook {
            what,
            target,
            args: &args,
            selectors: &selectors,
            message: kp.message.clone(),
            tags: kp.tags.clone(),
            override_denied: None,
            positive: None,
            return_offset,
            exported_as: None,
            positional: false,
            btf: formats.btf(),
            data_from: None,
        },
    )
}

/// The syscall tracepoints cannot change a return value, and an fmod_ret
/// program on the syscall's function (`__x64_sys_truncate`) is refused by
/// every kernel tried here ("is not modifiable": Debian builds 5.10, 6.1
/// and 6.12 without the error-injection list fmod_ret needs outside
/// `security_*`).
const SYSCALL_OVERRIDE_DENIED: &str = "Override on a syscall needs bpf_override_return, or fmod_ret on the syscall's function (a kernel built with CONFIG_FUNCTION_ERROR_INJECTION); tetragond serves syscall hooks through the syscall tracepoints, which cannot change a return value: use an LSM hook (lsmhooks) or a security_* kprobe to deny";

/// A syscall return probe (`return: true`), in two halves (see
/// [`ReturnHalf`]): the entry half on `raw_syscalls/sys_enter`, as any
/// syscall hook, and the exit half on `raw_syscalls/sys_exit`, both listed
/// under `ids`. The exit half reads the return value (`returnArg`, the
/// record's `ret`) and a `returnCopy` buffer; its events name `call`.
fn syscall_return(
    policy: &TracingPolicy,
    what: &str,
    kp: &KprobeSpec,
    call: &str,
    ids: Vec<u32>,
    formats: &dyn FormatSource,
) -> Result<Vec<CompiledHook>, CompileError> {
    let (entry, copy) = returns::entry_half(what, kp, |kp, selectors| {
        syscall_entry(policy, what, kp, call, ids.clone(), formats, selectors)
    })?;
    let format = formats.format("raw_syscalls", "sys_exit")?;
    let ret_field = format.field("ret").ok_or_else(|| {
        CompileError::Unsupported(format!("{what}: raw_syscalls/sys_exit has no ret field"))
    })?;
    let mut ret = kp
        .return_arg
        .clone()
        .ok_or_else(|| CompileError::Invalid(format!("{what}: return: true needs returnArg")))?;
    ret.index = 0;
    let mut conf = HookConf {
        n_args: 1,
        return_half: return_half::EXIT,
        ..Default::default()
    };
    conf.args[0] = super::args::word_arg(ret.ty, ret_field.offset, Memory::User)
        .map_err(|m| unsupported_arg(what, ret.index, m))?;
    let args = [ret];
    let selectors = returns::exit_selectors(&kp.selectors);
    let end = SyscallEnd {
        event: "sys_exit",
        args: &args,
        selectors: &selectors,
        return_position: Some(0),
        data_from: None,
    };
    let mut exit = syscall_hook(policy, what, kp, call, ids, conf, end)?;
    exit.meta.return_half = ReturnHalf::Exit;
    if let Some(i) = copy {
        returns::read_copy_at_return(&mut exit.conf, &mut exit.meta.args, &kp.args[i]);
    }
    Ok(vec![entry, exit])
}

/// A syscall hook on `raw_syscalls/sys_enter`, listed under `ids`; its
/// events name `call`.
fn syscall(
    policy: &TracingPolicy,
    what: &str,
    kp: &KprobeSpec,
    call: &str,
    ids: Vec<u32>,
    formats: &dyn FormatSource,
) -> Result<Vec<CompiledHook>, CompileError> {
    if kp.ret {
        return syscall_return(policy, what, kp, call, ids, formats);
    }
    syscall_entry(policy, what, kp, call, ids, formats, &kp.selectors).map(|h| vec![h])
}

/// The hook on `raw_syscalls/sys_enter` of a syscall hook with
/// `selectors` (a return hook's entry half has its own).
fn syscall_entry(
    policy: &TracingPolicy,
    what: &str,
    kp: &KprobeSpec,
    call: &str,
    ids: Vec<u32>,
    formats: &dyn FormatSource,
    selectors: &[Selector],
) -> Result<CompiledHook, CompileError> {
    let format = formats.format("raw_syscalls", "sys_enter")?;
    let args_field = format.field("args").ok_or_else(|| {
        CompileError::Unsupported(format!("{what}: raw_syscalls/sys_enter has no args field"))
    })?;
    let mut with = data::with_data(what, &kp.args, &kp.data, selectors)?;
    for arg in with.args.iter_mut().filter(|a| data::is_data(a)) {
        *arg = data::concrete(what, arg, formats.btf())?;
    }
    let mut conf = HookConf {
        n_args: with.args.len() as u8,
        ..Default::default()
    };
    for (i, arg) in with.args.iter().enumerate() {
        conf.args[i] = syscall_arg(what, arg, args_field.offset, formats)?;
    }
    let base = args_field.offset;
    super::args::link_sizes(what, &mut conf, &with.args, |index| {
        (index < SYSCALL_ARGS).then_some(base + 8 * index as u16)
    })?;
    let end = SyscallEnd {
        event: "sys_enter",
        args: &with.args,
        selectors: &with.selectors,
        return_position: None,
        data_from: with.data_from,
    };
    syscall_hook(policy, what, kp, call, ids, conf, end)
}

/// How a syscall hook's `arg` is read: a register of the record's
/// `args` (at `args_offset`), or a data value.
fn syscall_arg(
    what: &str,
    arg: &crate::policy::model::Arg,
    args_offset: u16,
    formats: &dyn FormatSource,
) -> Result<tetragond_ebpf::ArgSpec, CompileError> {
    if data::is_data(arg) {
        return data::spec(what, arg, formats.btf());
    }
    if arg.index >= SYSCALL_ARGS {
        return Err(CompileError::Invalid(format!(
            "{what}: arg index {} (a syscall has 6)",
            arg.index
        )));
    }
    super::args::word_arg(arg.ty, args_offset + 8 * arg.index as u16, Memory::User)
        .map_err(|m| unsupported_arg(what, arg.index, m))
}

/// Which end of a syscall a hook is on, and what it reads there.
struct SyscallEnd<'a> {
    /// `sys_enter` or `sys_exit` of `raw_syscalls`.
    event: &'static str,
    args: &'a [crate::policy::model::Arg],
    selectors: &'a [Selector],
    /// Where the return value is among `args`, at the exit.
    return_position: Option<usize>,
    /// Where the data values start among `args`, at the entry.
    data_from: Option<usize>,
}

/// A syscall hook whose args are read (`conf.args`): its selectors, and
/// the hook on `raw_syscalls/<end.event>`, listed under `ids`, whose events
/// name `call`.
fn syscall_hook(
    policy: &TracingPolicy,
    what: &str,
    kp: &KprobeSpec,
    call: &str,
    ids: Vec<u32>,
    mut conf: HookConf,
    end: SyscallEnd<'_>,
) -> Result<CompiledHook, CompileError> {
    let hook_args = HookArgs {
        args: end.args,
        positional: false,
        syscall_id: vec![],
        memory: Some(Memory::User),
        override_denied: Some(SYSCALL_OVERRIDE_DENIED.into()),
        positive: None,
        writable: None,
        regs: None,
    };
    let sel = compile_selectors(what, policy, end.selectors, &hook_args, false)?;
    conf.n_selectors = sel.selectors.len() as u8;
    conf.selectors[..sel.selectors.len()].copy_from_slice(&sel.selectors);
    let arg_types = end
        .args
        .iter()
        .map(|a| (a.ty.as_str().to_string(), a.label.clone()))
        .collect();
    let kind = HookKind::Kprobe {
        function: call.to_string(),
    };
    Ok(CompiledHook {
        attach: Attach::Tracepoint {
            subsystem: "raw_syscalls".into(),
            event: end.event.into(),
        },
        conf,
        sub_ids: ids,
        entries: sel.entries,
        meta: HookMeta {
            message: kp.message.clone(),
            tags: kp.tags.clone(),
            return_position: end.return_position,
            data_from: end.data_from,
            daemon_actions: sel.daemon_actions,
            ..meta(policy, kind, arg_types)
        },
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use tetragond_ebpf::{action, return_half, size_from, ABI_I386};

    use crate::compile::{
        compile, tests::Fixed, Attach, CompiledHook, CompiledPolicy, HookKind, ReturnHalf,
    };
    use crate::policy::{parse_policy, PolicyError};
    use crate::syscalls::every_syscall;

    fn list_policy(list: &str, kprobe: &str) -> String {
        format!(
            "apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: lists
spec:
  lists:
{list}  kprobes:
{kprobe}"
        )
    }

    const DUPS: &str = "  - name: dups
    type: syscalls
    values: [sys_dup, getppid]
";

    const KILL_TEST: &str = "  - call: list:dups
    args:
    - index: 0
      type: int
    selectors:
    - matchBinaries:
      - operator: In
        values: [/usr/bin/test-bin]
      matchActions:
      - action: Sigkill
";

    fn compiled(yaml: &str) -> CompiledPolicy {
        let tp = parse_policy(Path::new("t.yaml"), yaml).unwrap_or_else(|e| panic!("{e}"));
        compile(&tp, &Fixed).unwrap_or_else(|e| panic!("{e}"))
    }

    fn refused(yaml: &str) -> PolicyError {
        parse_policy(Path::new("t.yaml"), yaml).expect_err("refused")
    }

    /// (line, column) of the first line holding `text`, 1-based.
    fn at(yaml: &str, text: &str) -> (usize, usize) {
        yaml.lines()
            .enumerate()
            .find_map(|(i, l)| l.find(text).map(|c| (i + 1, c + 1)))
            .unwrap_or_else(|| panic!("{text} not in\n{yaml}"))
    }

    #[test]
    fn a_list_of_syscalls_is_one_syscall_hook_per_value() {
        let c = compiled(&list_policy(DUPS, KILL_TEST));
        assert_eq!(c.hooks.len(), 2);
        let (dup, getppid) = (&c.hooks[0], &c.hooks[1]);
        assert_eq!(dup.sub_ids, vec![32, 41 | ABI_I386]);
        assert_eq!(getppid.sub_ids, vec![110, 64 | ABI_I386]);
        for (hook, name) in [(dup, "sys_dup"), (getppid, "getppid")] {
            let raw = Attach::Tracepoint {
                subsystem: "raw_syscalls".into(),
                event: "sys_enter".into(),
            };
            assert_eq!(hook.attach, raw);
            // Events name the syscall, not the list.
            let function = name.to_string();
            assert_eq!(hook.meta.kind, HookKind::Kprobe { function });
            assert_eq!(hook.conf.n_args, 1);
            assert_eq!(hook.conf.n_selectors, 1);
            assert_eq!(hook.conf.selectors[0].actions[0].kind, action::SIGKILL);
            // Each hook has its own matchBinaries entry.
            assert_eq!(hook.entries.len(), 1, "{:?}", hook.entries);
        }
        assert_eq!(c.sensors, ["generic_kprobe"]);
    }

    #[test]
    fn a_number_is_served_by_the_first_value_that_covers_it() {
        let list = "  - name: dups\n    type: syscalls\n    values: [i386/setuid32, setuid]\n";
        let c = compiled(&list_policy(list, "  - call: list:dups\n"));
        assert_eq!(c.hooks[0].sub_ids, vec![213 | ABI_I386]);
        assert_eq!(c.hooks[1].sub_ids, vec![105, 23 | ABI_I386]);
    }

    #[test]
    fn generated_syscalls_hook_every_syscall_once() {
        let list = "  - name: all\n    type: generated_syscalls\n";
        let c = compiled(&list_policy(list, "  - call: list:all\n"));
        let every = every_syscall();
        assert_eq!(c.hooks.len(), every.len());
        let mut ids: Vec<u32> = c.hooks.iter().flat_map(|h| h.sub_ids.clone()).collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "a syscall hooked twice");
        assert!(ids.contains(&272) && ids.contains(&(310 | ABI_I386)));
        let names: Vec<_> = c.hooks.iter().map(|h| h.meta.kind.clone()).collect();
        assert!(names.contains(&HookKind::Kprobe {
            function: "sys_unshare".into()
        }));
    }

    #[test]
    fn generated_syscalls_serve_in_map() {
        let yaml = "apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: lists
spec:
  lists:
  - name: all
    type: generated_syscalls
  tracepoints:
  - subsystem: raw_syscalls
    event: sys_enter
    args: [{index: 4, type: syscall64}]
    selectors:
    - matchArgs: [{index: 0, operator: InMap, values: [\"list:all\"]}]
";
        let c = compiled(yaml);
        let every: usize = every_syscall().iter().map(|(_, ids)| ids.len()).sum();
        assert_eq!(c.hooks[0].entries.len(), every);
    }

    #[test]
    fn list_calls_are_refused_with_their_place() {
        let cases = [
            (
                list_policy(DUPS, "  - call: list:nope\n"),
                "list:nope",
                "list \"nope\" is not defined in spec.lists",
            ),
            (
                list_policy("  - name: dups\n    values: [sys_dup]\n", "  - call: list:dups\n"),
                "list:dups",
                "has no type, so its values are kernel functions",
            ),
            (
                list_policy(
                    "  - name: ksys\n    type: generated_ftrace\n    pattern: ^ksys_\n",
                    "  - call: list:ksys\n",
                ),
                "generated_ftrace",
                "generated_ftrace lists are not supported by tetragond: each function the pattern matches needs a kernel-function program of its own",
            ),
            (
                list_policy(
                    "  - name: dups\n    type: syscalls\n    values: [sys_dup, sys_nope]\n",
                    "  - call: list:dups\n",
                ),
                "sys_nope",
                "unknown syscall \"sys_nope\" in list \"dups\"",
            ),
            (
                list_policy(
                    "  - name: dups\n    type: syscalls\n    values: [sys_dup, \"42\"]\n",
                    "  - call: list:dups\n",
                ),
                "\"42\"",
                "\"42\" is not a syscall name",
            ),
            (
                list_policy(
                    "  - name: dups\n    type: syscalls\n    values: [setuid, setuid32]\n",
                    "  - call: list:dups\n",
                ),
                "setuid32",
                "\"setuid32\" names syscalls the values before it in list \"dups\" already cover",
            ),
            (
                list_policy(DUPS, "  - call: list:dups\n    syscall: false\n"),
                "false",
                "`syscall: false` contradicts it",
            ),
            (
                list_policy(
                    "  - name: all\n    type: generated_syscalls\n    values: [sys_dup]\n",
                    "  - call: list:all\n",
                ),
                "values",
                "generated_syscalls, which holds every syscall: it takes no values",
            ),
            (
                list_policy(
                    "  - name: all\n    type: generated_syscalls\n    pattern: dup\n",
                    "  - call: list:all\n",
                ),
                "pattern",
                "pattern is read by generated_ftrace lists only",
            ),
        ];
        for (yaml, place, text) in cases {
            let err = refused(&yaml);
            assert!(err.message().contains(text), "{err}\n{yaml}");
            let position = err.position().unwrap_or_else(|| panic!("{err}"));
            assert_eq!(position, at(&yaml, place), "{err}\n{yaml}");
        }
    }

    #[test]
    fn call_not_found_skips_unknown_values() {
        let list = "  - name: dups\n    type: syscalls\n    values: [sys_dup, sys_nope]\n";
        let kprobe = "  - call: list:dups\n    ignore: {callNotFound: true}\n";
        let c = compiled(&list_policy(list, kprobe));
        assert_eq!(c.hooks.len(), 1);
        let function = "sys_dup".to_string();
        assert_eq!(c.hooks[0].meta.kind, HookKind::Kprobe { function });
    }

    /// Each syscall of the list gets an entry half on sys_enter (the args,
    /// matchArgs, matchActions) followed by its exit half on sys_exit (the
    /// return value, the selector's matchReturnArgs and matchReturnActions,
    /// the returnCopy buffer read from the pointer the entry half keeps).
    #[test]
    fn syscall_return_probes_split_into_an_entry_and_an_exit_half() {
        let ret = "  - call: list:dups
    return: true
    args: [{index: 0, type: int}, {index: 1, type: char_buf, returnCopy: true}]
    returnArg: {index: 0, type: int}
    selectors:
    - matchArgs: [{index: 0, operator: Equal, values: [\"3\"]}]
      matchActions: [{action: Sigkill}]
      matchReturnArgs: [{index: 0, operator: Equal, values: [\"-9\"]}]
    - matchArgs: [{index: 0, operator: Equal, values: [\"4\"]}]
";
        let tp = parse_policy(Path::new("t.yaml"), &list_policy(DUPS, ret))
            .unwrap_or_else(|e| panic!("{e}"));
        let c = compile(&tp, &Fixed).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.hooks.len(), 4, "two halves per syscall");
        for pair in c.hooks.chunks(2) {
            let [entry, exit] = pair else { unreachable!() };
            let on = |hook: &CompiledHook| match &hook.attach {
                Attach::Tracepoint { event, .. } => event.clone(),
                other => panic!("{other:?}"),
            };
            assert_eq!(
                (on(entry).as_str(), on(exit).as_str()),
                ("sys_enter", "sys_exit")
            );
            assert_eq!(entry.sub_ids, exit.sub_ids);
            assert_eq!(entry.conf.return_half, return_half::ENTRY);
            assert_eq!(entry.conf.copy_arg, 2);
            assert_eq!(entry.meta.return_half, ReturnHalf::Entry { copy: Some(1) });
            assert_eq!(
                entry.conf.args[1].size_from,
                size_from::NONE,
                "the pointer only"
            );
            assert_eq!(entry.conf.n_selectors, 2);
            assert_eq!(entry.conf.selectors[0].arg_filters[0].values[0], 3);
            assert_eq!(entry.conf.selectors[0].actions[0].kind, action::SIGKILL);
            assert_eq!(exit.conf.return_half, return_half::EXIT);
            assert_eq!(exit.meta.return_half, ReturnHalf::Exit);
            assert_eq!(exit.meta.return_position, Some(0));
            assert_eq!(exit.conf.n_args, 2);
            assert_eq!(exit.conf.args[1].size_from, size_from::RETURN_COPY);
            assert_eq!(exit.conf.args[1].size_offset, exit.conf.args[0].offset);
            assert_eq!(exit.conf.n_selectors, 2);
            assert_eq!(exit.conf.selectors[0].arg_filters[0].values[0] as i64, -9);
            assert_eq!(
                exit.conf.selectors[0].n_actions, 0,
                "posts, as any selector without actions"
            );
            assert_eq!(exit.conf.selectors[1].n_arg_filters, 0);
        }
        // Without returnArg it is refused with the reason.
        let tp = parse_policy(
            Path::new("t.yaml"),
            &list_policy(DUPS, "  - call: list:dups\n    return: true\n"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let err = compile(&tp, &Fixed).expect_err("refused");
        assert!(
            err.to_string().contains("return: true needs returnArg"),
            "{err}"
        );
    }
}
