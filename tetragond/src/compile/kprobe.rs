//! `kprobes`. Syscalls (`syscall: true`) are served by the syscall
//! tracepoints on every kernel: `raw_syscalls/sys_enter` listed under the
//! syscall's numbers, the 64-bit one and the i386 one (`int 0x80` and the
//! compat entries, keyed with `ABI_I386`; `i386/NAME`, `__ia32_sys_NAME`,
//! `x64/NAME` and `__x64_sys_NAME` name one entry), with arg `index: i`
//! read from the record's `args[i]` (the registers of the entry's
//! convention: rdi, rsi, rdx, r10, r8, r9 or ebx, ecx, edx, esi, edi, ebp).
//! Other kernel functions get a kprobe (kretprobe for `return: true`)
//! where the kernel has kprobes, else an fentry program. Override on a
//! `security_*` function is an fentry program that decides plus an
//! fmod_ret program that returns the errno (`sensors/fmod_ret.rs`).

use tetragond_ebpf::HookConf;

use super::{
    args::{unsupported_arg, Memory},
    function::{self, FunctionHook},
    meta,
    selectors::{compile_selectors, HookArgs},
    syscall_ids, Attach, CompiledHook, FormatSource, FunctionFamily, FunctionTarget, HookKind,
    HookMeta,
};
use crate::policy::limits::OverLimit;
use crate::{
    error::CompileError,
    kernel_info::KernelFunctions,
    policy::model::{KprobeSpec, Selector, TracingPolicy},
};

/// A syscall has at most six arguments.
const SYSCALL_ARGS: u32 = 6;

/// None when the hook is skipped (`ignore.callNotFound` on an unknown call).
pub fn compile(
    policy: &TracingPolicy,
    hook_index: usize,
    kp: &KprobeSpec,
    formats: &dyn FormatSource,
) -> Result<Option<CompiledHook>, CompileError> {
    let what = format!("kprobes[{hook_index}] {}", kp.call);
    if kp.call.starts_with("list:") {
        return Err(CompileError::Unsupported(format!(
            "{what}: calls from a list are not supported yet"
        )));
    }
    if kp.syscall {
        return syscall(policy, &what, kp, formats);
    }
    if kp.ignore.as_ref().is_some_and(|i| i.call_not_found) && !kernel_has_symbol(&kp.call) {
        tracing::warn!("{what}: no such kernel function; skipped (ignore.callNotFound)");
        return Ok(None);
    }
    kernel_function(policy, &what, kp, formats).map(Some)
}

/// Whether the running kernel has function `name` (from /proc/kallsyms).
/// When the list cannot be read the hook is tried, and attaching says.
fn kernel_has_symbol(name: &str) -> bool {
    let Ok(symbols) = std::fs::read_to_string("/proc/kallsyms") else {
        return true;
    };
    symbols.lines().any(|line| {
        let mut fields = line.split_whitespace().skip(2);
        fields.next() == Some(name)
    })
}

fn has_override(selectors: &[Selector]) -> bool {
    selectors
        .iter()
        .flat_map(|s| s.match_actions.iter().chain(&s.match_return_actions))
        .any(|a| a.action.as_str() == "Override")
}

fn kernel_function(
    policy: &TracingPolicy,
    what: &str,
    kp: &KprobeSpec,
    formats: &dyn FormatSource,
) -> Result<CompiledHook, CompileError> {
    let caps = formats.caps();
    let unsupported = |msg: String| CompileError::Unsupported(format!("{what}: {msg}"));
    let returns = kp.ret;
    let (family, name) = if has_override(&kp.selectors) {
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
        if returns {
            return Err(unsupported(
                "Override cannot be combined with a return probe".into(),
            ));
        }
        // The fentry program decides; an fmod_ret program on the same
        // function returns the errno (sensors/fmod_ret.rs).
        (FunctionFamily::Fentry, kp.call.clone())
    } else if returns {
        // fexit sees the args and the return value; a kretprobe only the latter.
        let params = caps
            .trampolines
            .then(|| formats.function_params(&kp.call))
            .flatten();
        if let Some(params) = params {
            let target = FunctionTarget {
                family: FunctionFamily::Fexit,
                name: kp.call.clone(),
            };
            return return_hook(policy, what, kp, target, Some(8 * params as u16));
        }
        if !caps.kprobes {
            return Err(unsupported(
                "return probes need BPF trampolines (fexit) or kprobes (kretprobe); this kernel has neither".into(),
            ));
        }
        (FunctionFamily::Kretprobe, kp.call.clone())
    } else if caps.kprobes
        && !(caps.trampolines && caps.kernel_functions == KernelFunctions::Fentry)
    {
        (FunctionFamily::Kprobe, kp.call.clone())
    } else if caps.trampolines {
        (FunctionFamily::Fentry, kp.call.clone())
    } else {
        return Err(unsupported(
            "kernel functions need kprobes (CONFIG_KPROBES) or BPF trampolines (fentry); this kernel has neither (see `tetra status`); only syscall hooks (syscall: true) can be served here".into(),
        ));
    };
    let target = FunctionTarget { family, name };
    if family == FunctionFamily::Kretprobe {
        return return_hook(policy, what, kp, target, None);
    }
    function::compile(
        policy,
        FunctionHook {
            what,
            target,
            args: &kp.args,
            selectors: &kp.selectors,
            message: kp.message.clone(),
            tags: kp.tags.clone(),
            override_denied: None,
            return_offset: None,
        },
    )
}

/// A return probe: fexit when `return_offset` says where the return value
/// is after the args, else a kretprobe (the return value only).
fn return_hook(
    policy: &TracingPolicy,
    what: &str,
    kp: &KprobeSpec,
    target: FunctionTarget,
    return_offset: Option<u16>,
) -> Result<CompiledHook, CompileError> {
    let view = match return_offset {
        Some(_) => function::return_with_args,
        None => function::return_view,
    };
    let (args, selectors) = view(what, &kp.args, kp.return_arg.as_ref(), &kp.selectors)?;
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
            return_offset,
        },
    )
}

fn syscall(
    policy: &TracingPolicy,
    what: &str,
    kp: &KprobeSpec,
    formats: &dyn FormatSource,
) -> Result<Option<CompiledHook>, CompileError> {
    let unsupported = |msg: String| Err(CompileError::Unsupported(format!("{what}: {msg}")));
    if kp.ret {
        return unsupported("return probes on syscalls are not supported yet".into());
    }
    let Some(ids) = syscall_ids(&kp.call) else {
        if kp.ignore.as_ref().is_some_and(|i| i.call_not_found) {
            tracing::warn!("{what}: no such syscall; skipped (ignore.callNotFound)");
            return Ok(None);
        }
        return Err(CompileError::Invalid(format!(
            "{what}: no such syscall on x86-64 (x86_64 or i386)"
        )));
    };
    let format = formats.format("raw_syscalls", "sys_enter")?;
    let args_field = format.field("args").ok_or_else(|| {
        CompileError::Unsupported(format!("{what}: raw_syscalls/sys_enter has no args field"))
    })?;
    OverLimit::Args
        .check(kp.args.len())
        .map_err(|e| CompileError::Invalid(format!("{what}: {e}")))?;
    let mut conf = HookConf {
        n_args: kp.args.len() as u8,
        ..Default::default()
    };
    let mut arg_types = Vec::new();
    for (i, arg) in kp.args.iter().enumerate() {
        if arg.index >= SYSCALL_ARGS {
            return Err(CompileError::Invalid(format!(
                "{what}: arg index {} (a syscall has 6)",
                arg.index
            )));
        }
        conf.args[i] = super::args::word_arg(
            arg.ty,
            args_field.offset + 8 * arg.index as u16,
            Memory::User,
        )
        .map_err(|m| unsupported_arg(what, arg.index, m))?;
        arg_types.push((arg.ty.as_str().to_string(), arg.label.clone()));
    }
    let base = args_field.offset;
    super::args::link_sizes(what, &mut conf, &kp.args, |index| {
        (index < SYSCALL_ARGS).then_some(base + 8 * index as u16)
    })?;
    let hook_args = HookArgs {
        args: &kp.args,
        positional: false,
        syscall_id: vec![],
        memory: Some(Memory::User),
        override_denied: Some(
            "Override on a syscall needs bpf_override_return; tetragond serves syscall hooks through the syscall tracepoints, which cannot change a return value: use an LSM hook (lsmhooks) or a security_* kprobe to deny".into(),
        ),
    };
    let sel = compile_selectors(what, policy, &kp.selectors, &hook_args, false)?;
    conf.n_selectors = sel.selectors.len() as u8;
    conf.selectors[..sel.selectors.len()].copy_from_slice(&sel.selectors);
    let kind = HookKind::Kprobe {
        function: kp.call.clone(),
    };
    Ok(Some(CompiledHook {
        attach: Attach::Tracepoint {
            subsystem: "raw_syscalls".into(),
            event: "sys_enter".into(),
        },
        conf,
        sub_ids: ids,
        entries: sel.entries,
        meta: HookMeta {
            message: kp.message.clone(),
            tags: kp.tags.clone(),
            ..meta(policy, kind, arg_types)
        },
    }))
}
