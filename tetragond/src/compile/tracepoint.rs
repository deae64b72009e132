//! `tracepoints` hooks: arguments read at the offsets the tracepoint's
//! format gives, syscall tracepoints listed per syscall number.
//!
//! The kernel runs `syscalls/sys_enter_X` and `sys_exit_X` for 64-bit
//! syscalls only; a 32-bit (`int 0x80`, compat) call of X reaches
//! `raw_syscalls/sys_enter` and `sys_exit` alone. So a `syscalls` hook
//! gets a twin there, listed under X's i386 numbers: the two records have
//! one layout (the number at 8, each argument a register of 8 bytes from
//! 16, the return value at 16), so the twin reads the same offsets.

use tetragond_ebpf::{arg_kind, size_from, ArgSpec, HookConf, ABI_I386, STR_LEN};

use super::{
    args::Memory,
    function::{self, FunctionHook},
    meta,
    selectors::{compile_selectors, HookArgs},
    syscall_ids, Attach, CompiledHook, FormatSource, FunctionFamily, FunctionTarget, HookKind,
    HookMeta, COMMON_FIELDS,
};
use crate::policy::limits::OverLimit;
use crate::{
    error::CompileError,
    kernel_info::tracefs,
    policy::model::{ArgType, TracepointSpec, TracingPolicy},
};

const OVERRIDE_DENIED: &str = "Override cannot be honoured on a tracepoint: the kernel lets only LSM hooks, fmod_ret and kprobes with CONFIG_BPF_KPROBE_OVERRIDE change a return value";

/// The hook, and for a `syscalls` tracepoint its twin on the raw syscall
/// tracepoint for the 32-bit entry.
pub fn compile(
    policy: &TracingPolicy,
    hook_index: usize,
    tp: &TracepointSpec,
    formats: &dyn FormatSource,
) -> Result<Vec<CompiledHook>, CompileError> {
    if tp.raw {
        return raw(policy, hook_index, tp, formats).map(|hook| vec![hook]);
    }
    let what = format!("tracepoints[{hook_index}] {}/{}", tp.subsystem, tp.event);
    let format = formats.format(&tp.subsystem, &tp.event)?;
    OverLimit::Args
        .check(tp.args.len())
        .map_err(|e| CompileError::Invalid(format!("{what}: {e}")))?;
    let mut conf = HookConf {
        n_args: tp.args.len() as u8,
        ..Default::default()
    };
    let mut arg_types = Vec::new();
    // `auto` (Tetragon's default type) as the field's format gives it.
    let mut args = tp.args.clone();
    for (i, arg) in args.iter_mut().enumerate() {
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
        match arg.ty {
            ArgType::Auto => arg.ty = auto_type(&what, field)?,
            // As Tetragon: the array's format decides how it is decoded.
            ArgType::ConstBuf => {
                return Err(CompileError::Unsupported(format!(
                    "{what}: arg index {}: type const_buf cannot be given, as in Tetragon: it is what auto (or no type) makes of an array of long",
                    arg.index
                )))
            }
            _ => {}
        }
        conf.args[i] = arg_spec(&what, field, arg.ty)?;
        arg_types.push((arg.ty.as_str().to_string(), arg.label.clone()));
    }
    let syscall_id: Vec<usize> = args
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
    // The kernel side marks the number of a 32-bit syscall (ABI_I386).
    if matches!(tp.subsystem.as_str(), "raw_syscalls" | "syscalls") {
        for &i in &syscall_id {
            conf.args[i].kind = arg_kind::SYSCALL64;
        }
    }
    let hook_args = HookArgs {
        args: &args,
        positional: true,
        syscall_id,
        // Only strings are read through a pointer field (user or kernel
        // memory alike); no structure is followed.
        memory: Some(Memory::User),
        override_denied: Some(OVERRIDE_DENIED.into()),
        positive: None,
        writable: None,
        regs: None,
    };
    let sel = compile_selectors(
        &what,
        policy,
        &tp.selectors,
        &hook_args,
        tp.subsystem == "raw_syscalls",
    )?;
    let (sub_ids, i386_ids) = match syscall_of_event(&tp.subsystem, &tp.event) {
        Some(Ok(ids)) => ids,
        Some(Err(name)) => {
            return Err(CompileError::Unsupported(format!(
                "{what}: unknown syscall {name}"
            )))
        }
        None => (sel.sub_ids, vec![]),
    };
    conf.n_selectors = sel.selectors.len() as u8;
    conf.selectors[..sel.selectors.len()].copy_from_slice(&sel.selectors);
    let tracepoint = HookKind::Tracepoint {
        subsystem: tp.subsystem.clone(),
        event: tp.event.clone(),
    };
    let hook = CompiledHook {
        attach: Attach::Tracepoint {
            subsystem: tp.subsystem.clone(),
            event: tp.event.clone(),
        },
        conf,
        sub_ids,
        entries: sel.entries,
        meta: HookMeta {
            message: tp.message.clone(),
            tags: tp.tags.clone(),
            daemon_actions: sel.daemon_actions,
            ..meta(policy, tracepoint, arg_types)
        },
    };
    if i386_ids.is_empty() {
        return Ok(vec![hook]);
    }
    let twin = compat_twin(&what, &hook, &tp.event, &format, i386_ids, formats)?;
    Ok(vec![hook, twin])
}

/// `raw: true`: the tracepoint's own arguments (its `TP_PROTO`, which BTF
/// gives), read by a BTF tracepoint program as fentry reads a function's:
/// `args` indexes count those arguments, and kernel structures can be
/// followed. Its events are `process_tracepoint` like any tracepoint's.
fn raw(
    policy: &TracingPolicy,
    hook_index: usize,
    tp: &TracepointSpec,
    formats: &dyn FormatSource,
) -> Result<CompiledHook, CompileError> {
    let what = format!(
        "tracepoints[{hook_index}] {}/{} (raw)",
        tp.subsystem, tp.event
    );
    let n = formats.raw_tracepoint_args(&tp.event).ok_or_else(|| {
        CompileError::Unsupported(format!(
            "{what}: the kernel's BTF has no raw tracepoint {} (no btf_trace_{})",
            tp.event, tp.event
        ))
    })?;
    if let Some(arg) = tp.args.iter().find(|a| a.index >= n) {
        return Err(CompileError::Invalid(format!(
            "{what}: arg index {} is past the tracepoint's {n} arguments",
            arg.index
        )));
    }
    function::compile(
        policy,
        FunctionHook {
            what: &what,
            target: FunctionTarget {
                family: FunctionFamily::RawTracepoint,
                name: tp.event.clone(),
            },
            args: &tp.args,
            selectors: &tp.selectors,
            message: tp.message.clone(),
            tags: tp.tags.clone(),
            override_denied: Some(OVERRIDE_DENIED.into()),
            positive: None,
            return_offset: None,
            exported_as: Some(HookKind::Tracepoint {
                subsystem: tp.subsystem.clone(),
                event: tp.event.clone(),
            }),
            positional: true,
            btf: formats.btf(),
            data_from: None,
        },
    )
}

/// Syscall numbers: the x86_64 ones, the i386 ones (with `ABI_I386`).
type ByAbi = (Vec<u32>, Vec<u32>);

/// `syscalls/sys_enter_X` and `sys_exit_X` share one entry point: the
/// hook is listed under X's x86_64 number; its i386 numbers (32-bit, with
/// `ABI_I386`) are served by the raw syscall tracepoints.
fn syscall_of_event(subsystem: &str, event: &str) -> Option<Result<ByAbi, String>> {
    if subsystem != "syscalls" {
        return None;
    }
    let name = event
        .strip_prefix("sys_enter_")
        .or_else(|| event.strip_prefix("sys_exit_"))?;
    let ids = syscall_ids(name).unwrap_or_default();
    let (i386, x64): (Vec<u32>, Vec<u32>) = ids.into_iter().partition(|id| id & ABI_I386 != 0);
    // The kernel names these events after its 64-bit syscalls.
    if x64.is_empty() {
        return Some(Err(name.to_string()));
    }
    Some(Ok((x64, i386)))
}

/// The hook of a `syscalls/sys_{enter,exit}_X` tracepoint as
/// `raw_syscalls/sys_{enter,exit}` serves it for the 32-bit entry: the
/// same slots of the record (checked against the raw format), listed under
/// `ids`. Its events still name the policy's tracepoint (`syscall_event`).
fn compat_twin(
    what: &str,
    hook: &CompiledHook,
    syscall_event: &str,
    format: &tracefs::Format,
    ids: Vec<u32>,
    formats: &dyn FormatSource,
) -> Result<CompiledHook, CompileError> {
    let event = if syscall_event.starts_with("sys_enter_") {
        "sys_enter"
    } else {
        "sys_exit"
    };
    let raw = formats.format("raw_syscalls", event)?;
    let unservable = |field: &str| {
        CompileError::Unsupported(format!(
            "{what}: field `{field}` is not where raw_syscalls/{event} has it, so 32-bit (int 0x80) calls could not be matched"
        ))
    };
    let raw_id = raw.field("id").ok_or_else(|| unservable("id"))?;
    // sys_enter: `unsigned long args[6]`; sys_exit: `long ret`.
    let (lo, hi) = match raw.field(if event == "sys_enter" { "args" } else { "ret" }) {
        Some(f) => (f.offset, f.offset + f.size),
        None => return Err(unservable(event)),
    };
    for field in &format.fields[COMMON_FIELDS as usize..] {
        let ok = if field.name == "__syscall_nr" {
            field.offset == raw_id.offset
        } else {
            field.size == 8 && lo <= field.offset && field.offset + 8 <= hi
        };
        if !ok {
            return Err(unservable(&field.name));
        }
    }
    Ok(CompiledHook {
        attach: Attach::Tracepoint {
            subsystem: "raw_syscalls".into(),
            event: event.into(),
        },
        sub_ids: ids,
        ..hook.clone()
    })
}

/// The type Tetragon gives a tracepoint field for `auto` (or no `type`),
/// from its format: an integer by its size and sign, `size_t`, a
/// `__data_loc` string, an array of longs (`const_buf`). Another array or
/// a pointer (a buffer, with a size argument) is refused with the reason.
fn auto_type(what: &str, field: &tracefs::Field) -> Result<ArgType, CompileError> {
    let c_type = field.c_type.trim();
    let refuse = |why: &str| {
        Err(CompileError::Unsupported(format!(
            "{what}: arg `{}` of type auto: field `{c_type} {}{}` {why}",
            field.name,
            field.name,
            if field.array { "[]" } else { "" }
        )))
    };
    if c_type.starts_with("__data_loc") {
        return Ok(ArgType::DataLoc);
    }
    if field.array {
        if is_long_array(field) {
            return Ok(ArgType::ConstBuf);
        }
        return refuse("is an array, which Tetragon reads as const_buf and decodes for arrays of long only (it leaves others out of its events): not served (give no such arg, or a raw: true tracepoint's argument)");
    }
    if c_type.contains('*') {
        return refuse("is a pointer: give its type (string, or char_buf with sizeArgIndex), as Tetragon needs");
    }
    if c_type == "size_t" {
        return Ok(ArgType::SizeT);
    }
    Ok(match (field.size, field.signed) {
        (1, true) => ArgType::Int8,
        (1, false) => ArgType::Uint8,
        (2, true) => ArgType::Int16,
        (2, false) => ArgType::Uint16,
        (4, true) => ArgType::Int32,
        (4, false) => ArgType::Uint32,
        (8, true) => ArgType::Int64,
        (8, false) => ArgType::Uint64,
        _ => return refuse("is not an integer of 1, 2, 4 or 8 bytes"),
    })
}

/// A string field: a `__data_loc` one (the string is in the record), or,
/// for `string`, where a pointer field points (`const char * filename`),
/// read as the kprobe on the same syscall reads it.
fn string_field(
    what: &str,
    field: &tracefs::Field,
    arg_type: ArgType,
) -> Result<ArgSpec, CompileError> {
    let (size, kind) = if field.c_type.starts_with("__data_loc") && field.size == 4 {
        (4, arg_kind::DATA_LOC)
    } else if arg_type == ArgType::String && field.size == 8 && field.c_type.contains('*') {
        (8, arg_kind::STRING)
    } else {
        return Err(CompileError::Unsupported(format!(
            "{what}: arg `{}` of type {}: field `{} {}` is neither a `__data_loc` string nor{} a pointer",
            field.name,
            arg_type.as_str(),
            field.c_type,
            field.name,
            if arg_type == ArgType::DataLoc { " (for type string)" } else { "" }
        )));
    };
    Ok(ArgSpec {
        offset: field.offset,
        size,
        kind,
        ..Default::default()
    })
}

/// Whether a field is an array of `long` or `unsigned long`, the arrays
/// Tetragon's `const_buf` decodes (its elements exported one by one, as
/// `size_arg`s), that fits a data slot.
fn is_long_array(field: &tracefs::Field) -> bool {
    let long = matches!(field.c_type.trim(), "long" | "unsigned long");
    let bytes = usize::from(field.size);
    field.array && long && bytes % 8 == 0 && bytes > 0 && bytes < STR_LEN
}

/// An array of longs (`auto` made it const_buf), read whole from the
/// record into the data slot.
fn const_buf_field(field: &tracefs::Field) -> ArgSpec {
    ArgSpec {
        offset: field.offset,
        size: 8,
        kind: arg_kind::CONST_BUF,
        size_from: size_from::CONSTANT,
        size_offset: field.size,
        ..Default::default()
    }
}

pub(super) fn arg_spec(
    what: &str,
    field: &tracefs::Field,
    arg_type: ArgType,
) -> Result<ArgSpec, CompileError> {
    if matches!(arg_type, ArgType::String | ArgType::DataLoc) {
        return string_field(what, field, arg_type);
    }
    if arg_type == ArgType::ConstBuf {
        return Ok(const_buf_field(field));
    }
    let ty = arg_type.as_str();
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
            "{what}: arg `{}` of type {ty}: only integer, string and data_loc arg types are supported on tracepoints so far",
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
    // A type narrower than its field (`int dfd` in an 8-byte syscall
    // slot) is read as that type; else as the field is.
    let (size, signed) = match super::args::int_width(arg_type) {
        Some(width) if width < field.size as u8 => (width, super::args::is_signed(arg_type)),
        _ => (field.size as u8, field.signed),
    };
    Ok(ArgSpec {
        offset: field.offset,
        size,
        signed: u8::from(signed),
        ..Default::default()
    })
}
