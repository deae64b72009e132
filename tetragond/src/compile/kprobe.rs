//! `kprobes` on syscalls (`syscall: true`), served by the syscall
//! tracepoints: `raw_syscalls/sys_enter` listed under the syscall's number,
//! with kprobe arg `index: i` read from the record's `args[i]`. This works on
//! every kernel, including ones without kprobes or BPF trampolines (such as
//! the development VM). Other kprobes need those and fail with a message
//! that says so.

use tetragond_ebpf::{ArgSpec, HookConf, MAX_ARGS};

use super::{
    meta,
    selectors::{compile_selectors, syscall_number, HookArgs},
    CompiledHook, FormatSource,
};
use crate::{
    error::CompileError,
    events::HookMeta,
    policy::model::{KprobeSpec, TracingPolicy},
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
    let unsupported = |msg: String| Err(CompileError::Unsupported(format!("{what}: {msg}")));
    if !kp.syscall {
        return unsupported(
            "only syscall hooks (syscall: true) are served yet; kernel functions need kprobes or BPF trampolines".into(),
        );
    }
    if kp.ret || kp.return_arg.is_some() {
        return unsupported("return probes on syscalls are not supported yet".into());
    }
    if kp.call.starts_with("list:") {
        return unsupported("calls from a list are not supported yet".into());
    }
    let Some(nr) = syscall_number(&kp.call) else {
        if kp.ignore.as_ref().is_some_and(|i| i.call_not_found) {
            tracing::warn!("{what}: no such syscall; skipped (ignore.callNotFound)");
            return Ok(None);
        }
        return Err(CompileError::Invalid(format!(
            "{what}: no such syscall on x86-64"
        )));
    };
    let format = formats.format("raw_syscalls", "sys_enter")?;
    let args_field = format.field("args").ok_or_else(|| {
        CompileError::Unsupported(format!("{what}: raw_syscalls/sys_enter has no args field"))
    })?;
    if kp.args.len() > MAX_ARGS {
        return Err(CompileError::Invalid(format!(
            "{what}: at most {MAX_ARGS} args"
        )));
    }
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
        if !arg.ty.is_numeric() && arg.ty.as_str() != "fd" {
            return unsupported(format!(
                "arg {} of type {}: only integer args are supported through the syscall tracepoints so far",
                arg.index, arg.ty
            ));
        }
        conf.args[i] = ArgSpec {
            offset: args_field.offset + 8 * arg.index as u16,
            size: 8,
            signed: u8::from(
                arg.ty.as_str().starts_with("int")
                    || arg.ty.as_str().starts_with("sint")
                    || arg.ty.as_str() == "long",
            ),
        };
        arg_types.push((arg.ty.as_str().to_string(), arg.label.clone()));
    }
    let hook_args = HookArgs {
        args: &kp.args,
        positional: false,
        syscall_id: vec![],
    };
    let sel = compile_selectors(&what, policy, &kp.selectors, &hook_args, false)?;
    conf.n_selectors = sel.selectors.len() as u8;
    conf.selectors[..sel.selectors.len()].copy_from_slice(&sel.selectors);
    Ok(Some(CompiledHook {
        subsystem: "raw_syscalls".into(),
        event: "sys_enter".into(),
        conf,
        sub_ids: vec![nr],
        arg_values: sel.arg_values,
        binaries: sel.binaries,
        uprobe: None,
        meta: HookMeta {
            message: kp.message.clone(),
            tags: kp.tags.clone(),
            function_name: Some(kp.call.clone()),
            ..meta(policy, "raw_syscalls", "sys_enter", arg_types)
        },
    }))
}
