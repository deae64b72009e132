//! Selector compilation: a validated policy becomes the map entries the
//! kernel programs read ([`HookConf`] per hook, plus InMap value sets and
//! matchBinaries paths), and the dispatch keys it must be listed under.
//!
//! Whatever the kernel side cannot serve fails here with a message naming
//! the hook and the missing piece, so such a policy never loads silently.

mod selectors;
mod syscalls_x86_64;

use tetragond_ebpf::{ArgSpec, HookConf, MAX_ARGS, SUB_ANY};

use crate::{
    error::CompileError,
    events::HookMeta,
    policy::model::{TracepointSpec, TracingPolicy},
    sensors::tracefs::{self, Format},
};

pub use selectors::syscall_number;

/// common_type, common_flags, common_preempt_count, common_pid.
const COMMON_FIELDS: u32 = 4;

/// One compiled hook, not yet given kernel slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledHook {
    pub subsystem: String,
    pub event: String,
    /// `policy_slot` is filled in when installed.
    pub conf: HookConf,
    /// Syscall numbers to list the hook under; empty = every event.
    pub sub_ids: Vec<u32>,
    /// (selector, filter, value) for InMap / NotInMap.
    pub arg_values: Vec<(u8, u8, u64)>,
    /// (selector, path) for matchBinaries.
    pub binaries: Vec<(u32, String)>,
    pub meta: HookMeta,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledPolicy {
    pub hooks: Vec<CompiledHook>,
    /// Program families used, as `tetra tp list` names them.
    pub sensors: Vec<String>,
}

/// Reads tracepoint formats from the running kernel.
pub trait FormatSource {
    fn format(&self, subsystem: &str, event: &str) -> Result<Format, CompileError>;
}

/// The running kernel's tracefs.
pub struct Tracefs;

impl FormatSource for Tracefs {
    fn format(&self, subsystem: &str, event: &str) -> Result<Format, CompileError> {
        tracefs::read_format(subsystem, event).map_err(|e| CompileError::Unsupported(e.to_string()))
    }
}

pub fn compile(
    policy: &TracingPolicy,
    formats: &dyn FormatSource,
) -> Result<CompiledPolicy, CompileError> {
    reject_unsupported_sections(policy)?;
    let hooks = policy
        .spec
        .tracepoints
        .iter()
        .enumerate()
        .map(|(i, tp)| compile_tracepoint(policy, i, tp, formats))
        .collect::<Result<Vec<_>, _>>()?;
    let sensors = if hooks.is_empty() {
        vec![]
    } else {
        vec!["generic_tracepoint".to_string()]
    };
    Ok(CompiledPolicy { hooks, sensors })
}

/// Hook kinds the kernel side does not serve yet: a clear load error.
fn reject_unsupported_sections(policy: &TracingPolicy) -> Result<(), CompileError> {
    let spec = &policy.spec;
    let sections = [
        ("kprobes", spec.kprobes.len()),
        ("uprobes", spec.uprobes.len()),
        ("lsmhooks", spec.lsmhooks.len()),
        ("usdts", spec.usdts.len()),
        ("fentries", spec.fentries.len()),
        ("enforcers", spec.enforcers.len()),
    ];
    if let Some((name, _)) = sections.iter().find(|(_, n)| *n > 0) {
        return Err(CompileError::Unsupported(format!(
            "spec.{name}: this version of tetragond enforces only `tracepoints` hooks; {name} are not supported yet"
        )));
    }
    if spec.pod_selector.is_some() || spec.container_selector.is_some() {
        return Err(CompileError::Unsupported(
            "podSelector/containerSelector need Kubernetes pod information, which tetragond does not have".into(),
        ));
    }
    Ok(())
}

fn compile_tracepoint(
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
    let sel =
        selectors::compile_selectors(&what, policy, tp, &format, tp.subsystem == "raw_syscalls")?;
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
        meta: HookMeta {
            policy_name: policy.metadata.name.clone(),
            namespace: policy.metadata.namespace.clone().unwrap_or_default(),
            subsystem: tp.subsystem.clone(),
            event: tp.event.clone(),
            args: arg_types,
            message: tp.message.clone(),
            tags: tp.tags.clone(),
            monitor_only: !crate::policy::has_enforcement_action(policy),
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

fn arg_spec(what: &str, field: &tracefs::Field, ty: &str) -> Result<ArgSpec, CompileError> {
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
    })
}

impl CompiledHook {
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
mod tests;
