//! `tracepoints` hooks: arguments read at the offsets the tracepoint's
//! format gives, syscall tracepoints listed per syscall number.

use tetragond_ebpf::{ArgSpec, HookConf, MAX_ARGS};

use super::{
    meta,
    selectors::{compile_selectors, syscall_number, HookArgs},
    CompiledHook, FormatSource, COMMON_FIELDS,
};
use crate::{
    error::CompileError,
    events::HookMeta,
    policy::model::{TracepointSpec, TracingPolicy},
    sensors::tracefs,
};

pub fn compile(
    policy: &TracingPolicy,
    hook_index: usize,
    tp: &TracepointSpec,
    formats: &dyn FormatSource,
) -> Result<CompiledHook, CompileError> {
    let what = format!("tracepoints[{hook_index}] {}/{}", tp.subsystem, tp.event);
    let format = formats.format(&tp.subsystem, &tp.event)?;
    if tp.args.len() > MAX_ARGS {
        return Err(CompileError::Invalid(format!(
            "{what}: at most {MAX_ARGS} args"
        )));
    }
    let mut conf = HookConf {
        n_args: tp.args.len() as u8,
        ..Default::default()
    };
    let mut arg_types = Vec::new();
    for (i, arg) in tp.args.iter().enumerate() {
        if arg.index < COMMON_FIELDS {
            return Err(CompileError::Unsupported(format!(
                "{what}: arg index {}: the common fields (indexes 0-3) are overwritten by the kernel before BPF programs run",
                arg.index
            )));
        }
        let field = format.fields.get(arg.index as usize).ok_or_else(|| {
            CompileError::Invalid(format!(
                "{what}: arg index {} is past the tracepoint's {} fields",
                arg.index,
                format.fields.len()
            ))
        })?;
        conf.args[i] = arg_spec(&what, field, arg.ty.as_str())?;
        arg_types.push((arg.ty.as_str().to_string(), arg.label.clone()));
    }
    let syscall_id = tp
        .args
        .iter()
        .enumerate()
        .filter(|(_, a)| {
            format
                .fields
                .get(a.index as usize)
                .is_some_and(|f| f.name == "id" || f.name == "__syscall_nr")
        })
        .map(|(i, _)| i)
        .collect();
    let hook_args = HookArgs {
        args: &tp.args,
        positional: true,
        syscall_id,
        memory: None,
        override_denied: Some(
            "Override cannot be honoured on a tracepoint: the kernel lets only LSM hooks, fmod_ret and kprobes with CONFIG_BPF_KPROBE_OVERRIDE change a return value".into(),
        ),
    };
    let sel = compile_selectors(
        &what,
        policy,
        &tp.selectors,
        &hook_args,
        tp.subsystem == "raw_syscalls",
    )?;
    let sub_ids = match syscall_of_event(&tp.subsystem, &tp.event) {
        Some(Ok(nr)) => vec![nr],
        Some(Err(name)) => {
            return Err(CompileError::Unsupported(format!(
                "{what}: unknown syscall {name}"
            )))
        }
        None => sel.sub_ids,
    };
    conf.n_selectors = sel.selectors.len() as u8;
    conf.selectors[..sel.selectors.len()].copy_from_slice(&sel.selectors);
    Ok(CompiledHook {
        subsystem: tp.subsystem.clone(),
        event: tp.event.clone(),
        conf,
        sub_ids,
        arg_values: sel.arg_values,
        binaries: sel.binaries,
        strings: sel.strings,
        addrs: sel.addrs,
        substrings: sel.substrings,
        uprobe: None,
        function: None,
        meta: HookMeta {
            message: tp.message.clone(),
            tags: tp.tags.clone(),
            ..meta(policy, &tp.subsystem, &tp.event, arg_types)
        },
    })
}

/// `syscalls/sys_enter_X` and `sys_exit_X` share one entry point: the
/// hook is listed under X's number.
fn syscall_of_event(subsystem: &str, event: &str) -> Option<Result<u32, String>> {
    if subsystem != "syscalls" {
        return None;
    }
    let name = event
        .strip_prefix("sys_enter_")
        .or_else(|| event.strip_prefix("sys_exit_"))?;
    Some(syscall_number(name).ok_or_else(|| name.to_string()))
}

pub(super) fn arg_spec(
    what: &str,
    field: &tracefs::Field,
    ty: &str,
) -> Result<ArgSpec, CompileError> {
    const INTEGER_TYPES: &[&str] = &[
        "int",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "size_t",
        "long",
        "syscall64",
        "fd",
    ];
    if !INTEGER_TYPES.contains(&ty) {
        return Err(CompileError::Unsupported(format!(
            "{what}: arg `{}` of type {ty}: only integer arg types are supported on tracepoints so far",
            field.name
        )));
    }
    if !matches!(field.size, 1 | 2 | 4 | 8)
        || field.c_type.contains('[')
        || field.c_type.starts_with("__data_loc")
    {
        return Err(CompileError::Unsupported(format!(
            "{what}: field `{} {}` (size {}) is not an integer field",
            field.c_type, field.name, field.size
        )));
    }
    Ok(ArgSpec {
        offset: field.offset,
        size: field.size as u8,
        signed: field.signed as u8,
        ..Default::default()
    })
}
