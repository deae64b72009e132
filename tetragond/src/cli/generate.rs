//! `tetra tracingpolicy generate`: Tetragon's policy generators, printing a
//! policy to stdout that `tetra tp validate` accepts. The syscalls are the
//! ones tetragond knows on both entries (`syscalls::every_syscall`), not
//! the running kernel's BTF as in Tetragon, so the output does not depend
//! on the machine it is made on. Tetragon's `ftrace-list` is left out: a
//! list of kernel functions is not served as calls (see `tetra(1)`).

use std::fmt::Write as _;

use clap::Subcommand;

use crate::syscalls;

/// What `tetra tp generate` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Generate {
    /// A policy with no hooks
    Empty,
    /// A policy with one syscall kprobe per syscall
    AllSyscalls,
    /// A policy with one kprobe over a list of every syscall
    AllSyscallsList,
}

/// The policy `what` asks for, as YAML; with `match_binary`, each kprobe
/// has a selector limited to that binary.
pub fn policy(what: Generate, match_binary: Option<&str>) -> String {
    let name = match what {
        Generate::Empty => "empty",
        Generate::AllSyscalls | Generate::AllSyscallsList => "syscalls",
    };
    let mut yaml = format!(
        "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: {name}\nspec:"
    );
    let selector = match_binary.map(binary_selector).unwrap_or_default();
    match what {
        Generate::Empty => yaml.push_str(" {}\n"),
        Generate::AllSyscalls => {
            yaml.push_str("\n  kprobes:\n");
            for (call, _) in syscalls::every_syscall() {
                kprobe(&mut yaml, &call, &selector);
            }
        }
        Generate::AllSyscallsList => {
            yaml.push_str("\n  lists:\n  - name: syscalls\n    type: syscalls\n    values:\n");
            for (call, _) in syscalls::every_syscall() {
                let _ = writeln!(yaml, "    - {call}");
            }
            yaml.push_str("  kprobes:\n");
            kprobe(&mut yaml, "list:syscalls", &selector);
        }
    }
    yaml
}

fn kprobe(yaml: &mut String, call: &str, selector: &str) {
    let _ = writeln!(yaml, "  - call: {}\n    syscall: true", quote(call));
    yaml.push_str(selector);
}

/// A `selectors:` block, at a kprobe's field level, with matchBinaries In.
fn binary_selector(binary: &str) -> String {
    format!(
        "    selectors:\n    - matchBinaries:\n      - operator: In\n        values:\n        - {}\n",
        quote(binary)
    )
}

/// A YAML double-quoted scalar: any text stays the same text.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::{compile, policy::parse_policy};

    /// What validate does offline: the daemon's parse and compile.
    fn validate(yaml: &str) -> compile::CompiledPolicy {
        let tp = parse_policy(Path::new("generated.yaml"), yaml)
            .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        compile::compile(&tp, &compile::tests::Fixed).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn all_syscalls_validates_and_hooks_every_syscall() {
        let every = syscalls::every_syscall();
        for what in [Generate::AllSyscalls, Generate::AllSyscallsList] {
            let compiled = validate(&policy(what, None));
            assert_eq!(compiled.hooks.len(), every.len(), "{what:?}");
            let ids: usize = compiled.hooks.iter().map(|h| h.sub_ids.len()).sum();
            assert_eq!(ids, every.iter().map(|(_, i)| i.len()).sum::<usize>());
            assert_eq!(compiled.sensors, ["generic_kprobe"]);
        }
    }

    #[test]
    fn match_binary_limits_each_kprobe() {
        let yaml = policy(Generate::AllSyscallsList, Some("/usr/bin/we\"ird"));
        let tp = parse_policy(Path::new("g.yaml"), &yaml).unwrap_or_else(|e| panic!("{e}"));
        let selector = &tp.spec.kprobes[0].selectors[0];
        assert_eq!(selector.match_binaries[0].values, ["/usr/bin/we\"ird"]);
        validate(&yaml);
        let tp = parse_policy(
            Path::new("g.yaml"),
            &policy(Generate::AllSyscalls, Some("/x")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(tp.spec.kprobes.iter().all(|k| k.selectors.len() == 1));
    }

    #[test]
    fn empty_validates() {
        let compiled = validate(&policy(Generate::Empty, None));
        assert!(compiled.hooks.is_empty());
    }
}
