//! `lsmhooks`: a BPF LSM program on the named hook. Override is its return
//! value, so the hook denies the operation with the policy's errno.

use super::{
    function::{self, FunctionHook},
    CompiledHook, FormatSource, FunctionFamily, FunctionTarget,
};
use crate::{
    error::CompileError,
    kernel_info::{
        probe::{self, ACTIVE_LSMS},
        HookCaps,
    },
    policy::model::{LsmHookSpec, TracingPolicy},
};

pub fn compile(
    policy: &TracingPolicy,
    hook_index: usize,
    spec: &LsmHookSpec,
    formats: &dyn FormatSource,
) -> Result<CompiledHook, CompileError> {
    let what = format!("lsmhooks[{hook_index}] {}", spec.hook);
    if let Some(why) = lsm_unavailable(formats.caps()) {
        return Err(CompileError::Unsupported(format!("{what}: {why}")));
    }
    let hashes = spec
        .selectors
        .iter()
        .flat_map(|s| s.match_actions.iter())
        .any(|a| a.ima_hash);
    if hashes && !formats.caps().ima_file_hash {
        return Err(CompileError::Unsupported(format!(
            "{what}: imaHash needs sleepable LSM programs calling bpf_ima_file_hash (Linux 5.18), LSM links with BPF cookies (5.19) and a kernel built with IMA (CONFIG_IMA); see `tetra status`"
        )));
    }
    let name = spec.hook.strip_prefix("bpf_lsm_").unwrap_or(&spec.hook);
    function::compile(
        policy,
        FunctionHook {
            what: &what,
            target: FunctionTarget {
                family: FunctionFamily::Lsm,
                name: name.to_string(),
            },
            args: &spec.args,
            selectors: &spec.selectors,
            message: spec.message.clone(),
            tags: spec.tags.clone(),
            override_denied: None,
            positive: None,
            return_offset: None,
            exported_as: None,
            positional: false,
            btf: formats.btf(),
            data_from: None,
        },
    )
}

/// Why this kernel cannot run LSM programs, if it cannot.
pub fn lsm_unavailable(caps: HookCaps) -> Option<String> {
    if !caps.lsm_programs {
        return Some(
            "BPF LSM programs cannot be loaded on this kernel (they need CONFIG_BPF_LSM and BPF trampolines; see `tetra status`)".into(),
        );
    }
    if !caps.lsm_active {
        // Named in full: the user's fix is this list with `bpf` added.
        let active = probe::active_lsms();
        return Some(format!(
            "the BPF LSM is not active on this kernel (lsm={}, from {ACTIVE_LSMS}): add `bpf` to the `lsm=` boot parameter",
            active.trim()
        ));
    }
    None
}
