//! Selector compilation: a validated policy becomes the map entries the
//! kernel programs read ([`HookConf`] per hook, plus InMap value sets and
//! matchBinaries paths), and the dispatch keys it must be listed under.
//!
//! Whatever the kernel side cannot serve fails here with a message naming
//! the hook and the missing piece, so such a policy never loads silently.

mod kprobe;
mod selectors;
mod syscalls_x86_64;
mod tracepoint;
mod uprobe;

pub use uprobe::UprobeTarget;

use tetragond_ebpf::{HookConf, SUB_ANY};

use crate::{
    error::CompileError,
    events::HookMeta,
    policy::model::TracingPolicy,
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
    /// Set for uprobe hooks, which attach per hook instead of being listed.
    pub uprobe: Option<UprobeTarget>,
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
    let spec = &policy.spec;
    let mut hooks = Vec::new();
    let mut sensors = Vec::new();
    for (i, tp) in spec.tracepoints.iter().enumerate() {
        hooks.push(tracepoint::compile(policy, i, tp, formats)?);
        push_once(&mut sensors, "generic_tracepoint");
    }
    for (i, up) in spec.uprobes.iter().enumerate() {
        hooks.extend(uprobe::compile(policy, i, up)?);
        push_once(&mut sensors, "generic_uprobe");
    }
    for (i, kp) in spec.kprobes.iter().enumerate() {
        if let Some(hook) = kprobe::compile(policy, i, kp, formats)? {
            hooks.push(hook);
            push_once(&mut sensors, "generic_kprobe");
        }
    }
    Ok(CompiledPolicy { hooks, sensors })
}

fn push_once(sensors: &mut Vec<String>, name: &str) {
    if !sensors.iter().any(|s| s == name) {
        sensors.push(name.to_string());
    }
}

/// The common part of a hook's event metadata.
fn meta(
    policy: &TracingPolicy,
    subsystem: &str,
    event: &str,
    args: Vec<(String, Option<String>)>,
) -> HookMeta {
    HookMeta {
        policy_name: policy.metadata.name.clone(),
        namespace: policy.metadata.namespace.clone().unwrap_or_default(),
        subsystem: subsystem.to_string(),
        event: event.to_string(),
        args,
        message: None,
        tags: vec![],
        monitor_only: !crate::policy::has_enforcement_action(policy),
        function_name: None,
    }
}

/// Hook kinds the kernel side does not serve yet: a clear load error.
fn reject_unsupported_sections(policy: &TracingPolicy) -> Result<(), CompileError> {
    let spec = &policy.spec;
    let sections = [
        ("lsmhooks", spec.lsmhooks.len()),
        ("usdts", spec.usdts.len()),
        ("fentries", spec.fentries.len()),
        ("enforcers", spec.enforcers.len()),
    ];
    if let Some((name, _)) = sections.iter().find(|(_, n)| *n > 0) {
        return Err(CompileError::Unsupported(format!(
            "spec.{name}: this version of tetragond serves `tracepoints`, `uprobes` and syscall `kprobes` only; {name} are not supported yet"
        )));
    }
    if spec.pod_selector.is_some() || spec.container_selector.is_some() {
        return Err(CompileError::Unsupported(
            "podSelector/containerSelector need Kubernetes pod information, which tetragond does not have".into(),
        ));
    }
    Ok(())
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
