//! `loader: true`: Tetragon's `process_loader` events, one per executable
//! file a process maps (shared libraries, `dlopen`ed modules), with the
//! file's build ID. Tetragon reads them from perf's mmap events in a
//! kprobe (`perf_event_mmap_output`, Linux 5.19); here they are two syscall
//! hooks made like any policy's: mmap(2) (and i386 mmap2) with PROT_EXEC,
//! the mapped file read from the descriptor by the kernel's path walk.
//! The daemon then writes each (process, path) once, with the build ID
//! read from the file (see `crate::loader`).

use std::sync::LazyLock;

use super::{kprobe, CompiledHook, FormatSource, HookKind};
use crate::{
    error::CompileError,
    policy::model::{KprobeSpec, TracingPolicy},
};

/// The hooks, as a policy would write them: `fd` and `prot` of mmap
/// (args 4 and 2 of both entries), PROT_EXEC (4) set. The old i386 mmap
/// (90) passes a pointer to its arguments and is not hooked; glibc's i386
/// loader uses mmap2.
const LOADER_KPROBES: &str = r#"
- call: x64/mmap
  syscall: true
  args:
  - {index: 4, type: fd}
  - {index: 2, type: int}
  selectors:
  - matchArgs:
    - {index: 2, operator: Mask, values: ["4"]}
- call: i386/mmap2
  syscall: true
  args:
  - {index: 4, type: fd}
  - {index: 2, type: int}
  selectors:
  - matchArgs:
    - {index: 2, operator: Mask, values: ["4"]}
"#;

static KPROBES: LazyLock<Vec<KprobeSpec>> =
    LazyLock::new(|| serde_saphyr::from_str(LOADER_KPROBES).expect("the loader hooks parse"));

/// The loader's hooks, their events `process_loader`.
pub fn compile(
    policy: &TracingPolicy,
    formats: &dyn FormatSource,
) -> Result<Vec<CompiledHook>, CompileError> {
    let mut hooks = Vec::new();
    for (i, kp) in KPROBES.iter().enumerate() {
        for mut hook in kprobe::compile(policy, kprobe::Section::Kprobes, i, kp, formats)? {
            hook.meta.kind = HookKind::Loader;
            hooks.push(hook);
        }
    }
    Ok(hooks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::{tests::Fixed, Attach};

    #[test]
    fn executable_mappings_are_hooked_on_both_entries() {
        let yaml = "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: l\nspec:\n  loader: true\n";
        let tp = crate::policy::parse_policy(std::path::Path::new("l.yaml"), yaml).expect("parses");
        let hooks = compile(&tp, &Fixed).expect("compiles");
        let ids: Vec<Vec<u32>> = hooks.iter().map(|h| h.sub_ids.clone()).collect();
        assert_eq!(ids, [vec![9], vec![192 | tetragond_ebpf::ABI_I386]]);
        for h in &hooks {
            assert_eq!(h.meta.kind, HookKind::Loader);
            assert!(matches!(&h.attach, Attach::Tracepoint { event, .. } if event == "sys_enter"));
            assert_eq!(h.meta.args[0].0, "fd");
            assert_eq!(
                h.conf.selectors[0].arg_filters[0].op,
                tetragond_ebpf::op::MASK
            );
        }
    }
}
